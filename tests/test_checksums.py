"""A dataset is the dataset it is named: files are known by checksum, not by their (shared) names."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aebench import checksums, data
from aebench.cli.app import app
from aebench.errors import DataCorrupt, DataMismatch
from tests.conftest import MNIST_DIR

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
    assert remembered == {f"fashion-mnist/{p.name[:-3]}" for p in FASHION.iterdir()}

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
