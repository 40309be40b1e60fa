"""A user's own data, `npz:FILE` and `images:FOLDER`: real images (scikit-learn's digits and sample photographs)
train through fc and conv and are reported; malformed files are refused in one line, nothing written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images
from typer.testing import CliRunner

from aebench import data
from aebench.cli.app import app
from aebench.grid.store import open_store

runner = CliRunner()
QUICK = ["--epochs", "1", "--device", "cpu", "--depths", "shallow", "--latent-dims", "8"]


def _digits(path: Path, labels: bool = True) -> Path:
    """scikit-learn's 1,797 handwritten digits (8 x 8, 17 grey levels) as floats in [0, 1]."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    arrays = {"x_train": x[:1500], "x_test": x[1500:]}
    if labels:
        arrays |= {"y_train": digits.target[:1500], "y_test": digits.target[1500:]}
    np.savez(path, **arrays)
    return path


def _tiles(root: Path) -> Path:
    """32 x 32 colour tiles cut from scikit-learn's two sample photographs, a class per photograph; every fifth
    tile is a test image."""
    photos = load_sample_images()
    for name, photo in zip(("china", "flower"), photos.images, strict=True):
        tiles = [photo[i : i + 32, j : j + 32] for i in range(0, 416, 32) for j in range(0, 640, 32)]
        for k, tile in enumerate(tiles):
            folder = root / ("test" if k % 5 == 0 else "train") / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(tile).save(folder / f"{k:03d}.png")
    return root


def _compare(dataset: str, results: Path, *extra: str) -> dict[str, object]:
    res = runner.invoke(app, ["compare", "--archs", "fc,conv", *QUICK, "--datasets", dataset, "--results",
                              str(results), "--json", *extra])  # fmt: skip
    assert res.exit_code == 0, res.output
    out: dict[str, object] = json.loads(res.stdout)
    return out


@pytest.mark.slow
def test_digits_as_npz_train_through_fc_and_conv_and_report(tmp_path: Path) -> None:
    path = _digits(tmp_path / "digits.npz")
    name = f"npz:{path}"
    ds = data.load(name)
    assert ds.input_shape == (1, 8, 8) and len(ds.train.images) == 1500 and ds.num_classes == 10
    runs = _compare(name, tmp_path / "r")["runs"]
    assert isinstance(runs, list) and [r["arch"] for r in runs] == ["fc", "conv", "pca"]
    assert all(r["status"] == "done" and 0 < r["test_mse"] < 0.2 and r["probe_acc"] > 0.2 for r in runs)
    with np.load(path) as arrays:
        want = hashlib.md5(np.ascontiguousarray(arrays["x_train"]).tobytes()).hexdigest()
    assert all(r["data_digest"].split(",")[0] == want for r in runs)  # the arrays' own content, recorded
    rep = runner.invoke(app, ["report", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "rep"),
                              "--format", "md", "--figures", "png"])  # fmt: skip
    assert rep.exit_code == 0, rep.output
    assert (tmp_path / "rep" / "reconstructions.png").is_file() and "digits.npz" in (
        tmp_path / "rep" / "report.md"
    ).read_text()


@pytest.mark.slow
def test_colour_tiles_as_images_train_through_fc_and_conv_and_report(tmp_path: Path) -> None:
    root = _tiles(tmp_path / "tiles")
    name = f"images:{root}"
    ds = data.load(name)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 2 and ds.train.images.dtype.is_floating_point is False
    runs = _compare(name, tmp_path / "r")["runs"]
    assert isinstance(runs, list) and [r["arch"] for r in runs] == ["fc", "conv", "pca"]
    assert all(r["status"] == "done" and 0 < r["test_mse"] < 0.3 for r in runs)
    assert runs[0]["params"] > 2 * 3 * 32 * 32 * 128  # fc's first and last layers take the 3,072 colour values
    rep = runner.invoke(app, ["report", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "rep"),
                              "--format", "md", "--figures", "png", "--only", "reconstructions"])  # fmt: skip
    assert rep.exit_code == 0, rep.output
    assert (tmp_path / "rep" / "reconstructions.png").is_file()


def test_data_without_labels_trains_and_has_no_probe(tmp_path: Path) -> None:
    path = _digits(tmp_path / "digits.npz", labels=False)
    res = runner.invoke(app, ["train", "--arch", "fc", "--depth", "shallow", "--latent-dim", "8", "--epochs", "1",
                              "--device", "cpu", "--dataset", f"npz:{path}", "--results", str(tmp_path / "r"),
                              "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)
    assert run["status"] == "done" and run["probe_acc"] is None and run["test_mse"] > 0


def _bad_npz(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


def _bad_images(tmp_path: Path, kind: str) -> str:
    root = _tiles(tmp_path / "tiles")
    if kind == "unreadable":
        (root / "train" / "china" / "000.png").write_bytes(b"not a png")
    elif kind == "sizes":
        Image.new("RGB", (16, 16)).save(root / "train" / "china" / "999.png")
    elif kind == "no test":
        for f in (root / "test").rglob("*.png"):
            f.unlink()
        for d in sorted((root / "test").glob("*")):
            d.rmdir()
        (root / "test").rmdir()
    return f"images:{root}"


x8 = np.zeros((10, 8, 8), np.float32)
MALFORMED = {
    "no x_test": (lambda t: _bad_npz(t, x_train=x8), "no array x_test"),
    "mixed shapes": (lambda t: _bad_npz(t, x_train=x8, x_test=np.zeros((5, 9, 9), np.float32)), "need one shape"),
    "outside [0, 1]": (lambda t: _bad_npz(t, x_train=x8 + 2, x_test=x8), "outside [0, 1]"),
    "text arrays": (lambda t: _bad_npz(t, x_train=np.full((10, 8, 8), "a"), x_test=x8), "give uint8"),
    "labels too few": (lambda t: _bad_npz(t, x_train=x8, x_test=x8, y_train=np.zeros(3, np.int64)), "labels"),
    "not an npz": (lambda t: (t / "bad.npz").write_text("no") and f"npz:{t / 'bad.npz'}", "cannot be read as .npz"),
    "missing file": (lambda t: f"npz:{t / 'none.npz'}", "no file"),
    "unreadable image": (lambda t: _bad_images(t, "unreadable"), "cannot be read as an image"),
    "two sizes": (lambda t: _bad_images(t, "sizes"), "more than one size"),
    "no test folder": (lambda t: _bad_images(t, "no test"), "has no test/ folder"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_data_is_one_line_exit_2_nothing_written(tmp_path: Path, case: str) -> None:
    make, says = MALFORMED[case]
    name = make(tmp_path)
    results = tmp_path / "r"
    res = runner.invoke(app, ["compare", "--archs", "fc", *QUICK, "--datasets", name, "--results", str(results)])
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and says in res.stderr and "Traceback" not in res.stderr
    assert not results.exists()  # nothing written


def test_a_seed_model_that_cannot_take_the_shape_is_refused_in_one_line(tmp_path: Path) -> None:
    name = f"npz:{_digits(tmp_path / 'digits.npz')}"
    res = runner.invoke(app, ["train", "--arch", "seed-deepconv", "--epochs", "1", "--dataset", name, "--device",
                              "cpu", "--results", str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.output
    assert "seed-deepconv" in res.stderr and not (tmp_path / "r").exists()
    with open_store(tmp_path / "x") as store:  # an unrelated store is untouched by the refusal
        assert store.runs().empty
