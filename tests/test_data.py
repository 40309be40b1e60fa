"""The IDX reader against the real MNIST test split, the lookup order, and the refusals."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from aebench import checksums, data
from aebench.cli.app import app
from aebench.errors import DataCorrupt, DataNotFound
from aebench.grid.store import open_store
from tests.conftest import MNIST_DIR, ROOT

MNIST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_reads_the_real_mnist_test_split() -> None:
    split = data.read_split(MNIST_DIR, "test")
    assert split.images.shape == (10_000, 1, 28, 28)
    assert split.images.dtype == torch.uint8
    assert torch.bincount(split.labels).tolist() == MNIST_LABEL_COUNTS
    assert int(split.images.max()) == 255 and int(split.images.min()) == 0


def test_reads_uncompressed_idx(tmp_path: Path) -> None:
    for stem in data.SPLIT_FILES["test"]:
        (tmp_path / stem).write_bytes(gzip.decompress((MNIST_DIR / f"{stem}.gz").read_bytes()))
    assert torch.bincount(data.read_split(tmp_path, "test").labels).tolist() == MNIST_LABEL_COUNTS


def test_fashion_mnist_is_complete(fashion_mnist: data.Dataset) -> None:
    assert fashion_mnist.train.images.shape == (60_000, 1, 28, 28)
    assert fashion_mnist.test.images.shape == (10_000, 1, 28, 28)
    assert torch.bincount(fashion_mnist.test.labels).tolist() == [1000] * 10
    assert fashion_mnist.input_shape == (1, 28, 28) and fashion_mnist.num_classes == 10


def _mnist_copy(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for f in MNIST_DIR.glob("*.gz"):
        shutil.copy(f, folder / f.name)
    return folder


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_root, cache_home = tmp_path / "env", tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    cached = _mnist_copy(cache_home / "aebench" / "MNIST" / "raw")  # torchvision's layout in the cache
    assert data.find("mnist", splits=("test",)) == cached
    in_env = _mnist_copy(env_root / "mnist")
    monkeypatch.setenv("AEBENCH_DATA", str(env_root))
    assert data.find("mnist", splits=("test",)) == in_env
    explicit = _mnist_copy(tmp_path / "mine")
    assert data.find("mnist", explicit, splits=("test",)) == explicit
    assert data.search_roots(explicit)[:3] == [explicit, env_root, cache_home / "aebench"]
    assert data.search_roots()[-1] == Path("/usr/share/datasets")


def test_not_found_says_where_it_looked_and_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as info:
        data.load("kmnist", tmp_path / "nowhere", allow_download=False)
    message = str(info.value)
    assert "kmnist" in message and str(tmp_path / "nowhere") in message and "/usr/share/datasets" in message
    assert "aebench train --dataset kmnist" in message and "\n" not in message
    assert "apt-get" not in message  # only Fashion-MNIST has a package
    assert "apt-get install dataset-fashion-mnist" in data.how_to_get("fashion-mnist")


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    folder = _mnist_copy(tmp_path / "mnist")
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-100]))
    with pytest.raises(DataCorrupt, match="truncated"):
        data.read_split(folder, "test")


@pytest.mark.parametrize("payload", [b"", b"hello world, not idx", gzip.compress(b"\x00\x00\x08")])
def test_non_idx_file_is_refused(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DataCorrupt):
        data.read_idx(path)


def test_broken_gzip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()[:200])
    with pytest.raises(DataCorrupt, match="cannot be read"):
        data.read_idx(path)


def test_to_device_scales_for_the_output_activation() -> None:
    images = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert data.to_device(images, torch.device("cpu"), "sigmoid").flatten().tolist() == [0.0, 1.0]
    assert data.to_device(images, torch.device("cpu"), "tanh").flatten().tolist() == [-1.0, 1.0]


def test_mnist_from_the_shared_folder_trains_and_records_where_its_data_came_from(
    shared_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--data-dir ../shared/data/mnist` from the checkout: the run records the folder (absolute) and the four
    files' content MD5s, in the store, in the report's runs.csv and in its Environment section."""
    monkeypatch.chdir(ROOT)
    results, out = tmp_path / "results", tmp_path / "report"
    res = CliRunner().invoke(app, ["train", "--arch", "seed-ae", "--dataset", "mnist", "--data-dir",
                                   "../shared/data/mnist", "--epochs", "1", "--train-size", "2000", "--device", "cpu",
                                   "--results", str(results)])  # fmt: skip
    assert res.exit_code == 0, res.output
    digest = ",".join(checksums.CONTENT["mnist", stem] for pair in data.SPLIT_FILES.values() for stem in pair)
    with open_store(results, create=False) as store:
        [row] = store.runs().to_dict("records")
    assert row["status"] == "done" and row["data_dir"] == str(shared_mnist) and row["data_digest"] == digest
    report = CliRunner().invoke(app, ["report", "--results", str(results), "--out", str(out), "--only", "throughput",
                                      "--figures", "png"])  # fmt: skip
    assert report.exit_code == 0, report.output
    assert pd.read_csv(out / "runs.csv")[["data_dir", "data_digest"]].values.tolist() == [[str(shared_mnist), digest]]
    md = (out / "report.md").read_text()
    assert f"| data folder | {shared_mnist} |" in md and f"| {digest} |" in md
