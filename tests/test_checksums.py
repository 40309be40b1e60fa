"""A dataset is the dataset it is named: files are known by checksum, not by their (shared) names."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aebench import checksums, data
from aebench.cli.app import app
from aebench.errors import DataCorrupt, DataMismatch, DataUnknown
from tests.conftest import MNIST_DIR, ROOT

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def flat_fashion(tmp_path: Path) -> Path:
    """Fashion-MNIST's four files in one flat folder: by name alone, they pass for MNIST's or KMNIST's."""
    folder = tmp_path / "flat"
    folder.mkdir()
    for path in FASHION.glob("*.gz"):
        shutil.copy(path, folder / path.name)
    return folder


def test_the_real_files_are_recognised() -> None:
    for stem in data.SPLIT_FILES["test"]:
        assert checksums.identify(MNIST_DIR / f"{stem}.gz") == f"mnist/{stem}"  # the published .gz
        assert checksums.identify(FASHION / f"{stem}.gz") == f"fashion-mnist/{stem}"  # Debian's, by content
    assert checksums.identify(MNIST_DIR / "README.md") is None


def test_uncompressed_files_are_recognised_by_content(tmp_path: Path) -> None:
    for stem in data.SPLIT_FILES["test"]:
        (tmp_path / stem).write_bytes(gzip.decompress((MNIST_DIR / f"{stem}.gz").read_bytes()))
        assert checksums.identify(tmp_path / stem) == f"mnist/{stem}"
    with pytest.raises(DataMismatch, match="holds MNIST's files, not Fashion-MNIST's"):
        data.read_split(tmp_path, "test", "fashion-mnist")


def test_mnist_test_split_reads_as_mnist_and_not_as_another(tmp_path: Path) -> None:
    assert len(data.read_split(MNIST_DIR, "test", "mnist").labels) == 10_000
    for other in ("fashion-mnist", "kmnist"):
        with pytest.raises(DataMismatch) as info:
            data.read_split(MNIST_DIR, "test", other)
        assert info.value.actual == "mnist" and f"--dataset idx:{MNIST_DIR}" in str(info.value)


@pytest.mark.parametrize("name", ["mnist", "kmnist"])
def test_fashion_files_are_refused_under_another_name(flat_fashion: Path, tmp_path: Path, name: str) -> None:
    results = tmp_path / "results"
    res = CliRunner().invoke(app, ["train", "--arch", "seed-ae", "--dataset", name, "--data-dir", str(flat_fashion),
                                   "--epochs", "1", "--train-size", "256", "--results", str(results)])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and "holds Fashion-MNIST's files" in res.stderr
    assert "--dataset fashion-mnist" in res.stderr and "/usr/share/datasets" in res.stderr  # what, and where to look
    assert not results.exists()  # nothing written


def test_fashion_files_load_as_fashion_and_are_remembered(flat_fashion: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = data.load("fashion-mnist", flat_fashion, allow_download=False)
    assert first.folder == flat_fashion and len(first.train.labels) == 60_000
    stamps = checksums.Stamps(data.cache_root())
    remembered = {stamps.get(p) for p in flat_fashion.iterdir()}
    assert remembered == {(f"fashion-mnist/{p.name[:-3]}", checksums.CONTENT["fashion-mnist", p.name[:-3]])
                          for p in FASHION.iterdir()}  # fmt: skip

    def no_second_check(data_: bytes) -> str | None:
        raise AssertionError("checked again")

    monkeypatch.setattr(checksums, "lookup", no_second_check)
    assert len(data.load("fashion-mnist", flat_fashion, allow_download=False).test.labels) == 10_000
    # a file replaced since is checked again
    labels = flat_fashion / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())))
    with pytest.raises(AssertionError, match="checked again"):
        data.load("fashion-mnist", flat_fashion, allow_download=False)


def test_a_changed_published_file_is_refused(flat_fashion: Path) -> None:
    path = flat_fashion / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # one label changed: still a valid IDX file
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataCorrupt, match="not the published fashion-mnist file t10k-labels-idx1-ubyte"):
        data.load("fashion-mnist", flat_fashion, allow_download=False)


def test_own_idx_files_are_used_under_their_own_name(flat_fashion: Path, tmp_path: Path) -> None:
    name = f"idx:{flat_fashion}"
    ds = data.load(name, allow_download=False)
    assert ds.name == name and ds.input_shape == (1, 28, 28) and data.image_shape(name) == (1, 28, 28)
    res = CliRunner().invoke(app, ["train", "--arch", "seed-ae", "--dataset", f"idx:{tmp_path / 'none'}",
                                   "--results", str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 2 and "an idx: folder holds the four IDX files" in res.stderr
    assert not (tmp_path / "r").exists()


# ---- MNIST's training split by content; unknown content refused; an explicit --data-dir used or refused ----

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # from its README
# the MD5s of its IDX bytes, from its README: train images, train labels, test images, test labels
MNIST_CONTENT = ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
                 "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637")  # fmt: skip


def _own_idx(folder: Path, n: int = 64) -> Path:
    """Four valid IDX files whose content aebench does not know: real MNIST test images, a few pixels changed."""
    folder.mkdir(parents=True)
    split = data.read_split(MNIST_DIR, "test")
    images = split.images[:n, 0].numpy().copy()
    images[:, 0, :4] = 7
    labels = split.labels[:n].numpy().astype(np.uint8)
    image_bytes = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes()
    label_bytes = bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + labels.tobytes()
    for image_stem, label_stem in data.SPLIT_FILES.values():
        (folder / f"{image_stem}.gz").write_bytes(gzip.compress(image_bytes))
        (folder / f"{label_stem}.gz").write_bytes(gzip.compress(label_bytes))
    return folder


def _aebench(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """A real `aebench` process running this checkout's code (PYTHONPATH first), in the test's cache."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "aebench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip


def test_the_tables_name_each_checksum_once() -> None:
    sums = [md5 for table in (checksums.PUBLISHED_GZ, checksums.CONTENT) for md5 in table.values()]
    assert len(sums) == len(set(sums))  # no file can be taken for two


def test_mnist_training_split_is_known_by_content(shared_mnist: Path) -> None:
    for stem in data.SPLIT_FILES["train"]:
        assert checksums.identify(shared_mnist / f"{stem}.gz") == f"mnist/{stem}"  # recompressed: by content
    ds = data.load("mnist", shared_mnist, allow_download=False)
    assert torch.bincount(ds.train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert ds.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.digest == ",".join(MNIST_CONTENT)
    assert ds.provenance() == {"data_dir": str(shared_mnist.resolve()), "data_digest": ds.digest}


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_unknown_content_is_refused_under_every_published_name(tmp_path: Path, name: str) -> None:
    folder = _own_idx(tmp_path / "own")
    with pytest.raises(DataUnknown) as info:
        data.load(name, folder, allow_download=False)
    message = str(info.value)
    assert f"not the published {name} file train-images-idx3-ubyte" in message and "\n" not in message
    assert f"--dataset idx:{folder}" in message
    own = data.load(f"idx:{folder}", allow_download=False)  # under a name of its own it trains
    assert len(own.train.labels) == 64 and len(own.digest.split(",")) == 4


def test_a_misnamed_file_of_the_same_dataset_is_refused_as_misnamed(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    shutil.copy(MNIST_DIR / "t10k-labels-idx1-ubyte.gz", path)
    with pytest.raises(DataCorrupt, match="holds MNIST's t10k-labels-idx1-ubyte, not its train-labels-idx1-ubyte"):
        data.read_idx(path, "mnist/train-labels-idx1-ubyte")


def test_another_datasets_files_in_a_default_place_are_passed_over(
    shared_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MNIST's files under Fashion-MNIST's name in $AEBENCH_DATA are a mismatch, so the search goes on to Debian's."""
    mislabelled = tmp_path / "env" / "fashion-mnist"
    mislabelled.mkdir(parents=True)
    for path in shared_mnist.glob("*.gz"):
        (mislabelled / path.name).symlink_to(path)
    monkeypatch.setenv("AEBENCH_DATA", str(tmp_path / "env"))
    assert data.find("fashion-mnist") == mislabelled  # first by name
    assert data.load("fashion-mnist", allow_download=False).folder == FASHION  # but not by content
    with pytest.raises(DataMismatch, match="holds MNIST's files, not Fashion-MNIST's"):
        data.load("fashion-mnist", mislabelled, allow_download=False)  # named by the user: refused, not passed over


def _refused(res: subprocess.CompletedProcess[str], results: Path, *expected: str) -> None:
    """Exit 2, one line on stderr holding each of `expected`, nothing on stdout, nothing written."""
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aebench: error: "), res.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert not res.stdout and not results.exists()


def test_unknown_content_as_mnist_is_refused_in_a_real_process(tmp_path: Path) -> None:
    folder, results = _own_idx(tmp_path / "own"), tmp_path / "results"
    res = _aebench("train", "--arch", "seed-ae", "--dataset", "mnist", "--data-dir", str(folder), "--epochs", "1",
                   "--results", str(results))  # fmt: skip
    _refused(res, results, "not the published mnist file train-images-idx3-ubyte", f"--dataset idx:{folder}")


def test_mnist_files_as_fashion_mnist_are_refused_in_a_real_process(shared_mnist: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    res = _aebench("train", "--arch", "seed-ae", "--dataset", "fashion-mnist", "--data-dir", str(shared_mnist),
                   "--epochs", "1", "--results", str(results))  # fmt: skip
    _refused(res, results, "holds MNIST's files, not Fashion-MNIST's", "--dataset mnist",
             f"--data-dir {shared_mnist} is used as given, never passed over")  # fmt: skip
    assert "get it again" not in res.stderr  # another dataset, not a damaged copy


def test_a_data_dir_without_the_dataset_is_refused_not_passed_over_in_a_real_process(tmp_path: Path) -> None:
    """Fashion-MNIST is in /usr/share/datasets, but the user named another folder: that one, or a refusal."""
    assert data.find("fashion-mnist") == FASHION
    empty, results = tmp_path / "empty", tmp_path / "results"
    empty.mkdir()
    res = _aebench("train", "--arch", "seed-ae", "--dataset", "fashion-mnist", "--data-dir", str(empty),
                   "--epochs", "1", "--results", str(results))  # fmt: skip
    _refused(res, results, f"--data-dir {empty}: no fashion-mnist IDX files there", "never passed over")
