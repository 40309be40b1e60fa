#!/usr/bin/env bash
# The GPU checks in one call (a lent GPU's time is short): CUDA tests, `aebench bench` with a
# stack of 12, and a stacked compare grid. Usage, from the repo root on a CUDA machine:
#   DATA=<folder holding fashion-mnist/> OUT=<folder for logs and JSON> bash benchmarks/cuda_checks.sh
# Every step runs even if one before it failed; each has its own time limit.
set -u
: "${DATA:?set DATA to a folder holding fashion-mnist/}" "${OUT:?set OUT to a folder for the results}"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 COLUMNS=170 AEBENCH_DATA=$DATA
mkdir -p /usr/share/datasets 2>/dev/null && cp -rn "$DATA/fashion-mnist" /usr/share/datasets/ 2>/dev/null  # for the tests
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
step() { local name=$1 limit=$2; shift 2; echo "== $name"; local t0=$SECONDS
  timeout "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1; echo "== $name: exit $? in $((SECONDS - t0)) s"; }
step cuda_tests 150 python -m pytest tests/test_cuda.py -q -p no:cacheprovider
step bench 330 python -m aebench bench --device cuda --epochs 3 --stack 12 --results "$OUT/bench"
step compare 120 python -m aebench compare --archs seed-ae --seeds 12 --lrs 0.001,0.003 --epochs 3 \
  --device cuda --results "$OUT/compare" --json
rm -rf "$OUT/compare/runs"  # checkpoints: not needed back
