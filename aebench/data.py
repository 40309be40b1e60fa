"""Datasets as whole tensors: found on disk (or downloaded by torchvision), read once from IDX.

A split is one uint8 tensor (N, C, H, W) plus labels; the engine converts it once and
keeps it on the training device, so there are no per-item transforms or DataLoaders.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aebench import checksums, user_data
from aebench.errors import TITLES, BadInput, DataCorrupt, DataMismatch, DataNotFound, DataUnknown
from aebench.splits import Dataset as Dataset  # re-exported: `data.Dataset` is what callers name
from aebench.splits import Split as Split
from aebench.splits import unit_float

# name -> torchvision class (whose `raw/` folder holds the same IDX files)
DATASETS: dict[str, str] = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}
# (C, H, W) as published, for showing model sizes without reading the files
PUBLISHED_SHAPES: dict[str, tuple[int, int, int]] = dict.fromkeys(DATASETS, (1, 28, 28))
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def how_to_get(name: str) -> str:
    """The ways to get dataset `name`: only Fashion-MNIST has a Debian package."""
    package = "`apt-get install dataset-fashion-mnist`, or " if name == "fashion-mnist" else ""
    return (
        f"get it with {package}`aebench train --dataset {name}` once with network access (torchvision downloads "
        "it), or pass --data-dir to a folder holding its IDX files"
    )


# IDX element types by the magic number's third byte
_IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


IDX_PREFIX = "idx:"  # --dataset idx:FOLDER: a user's own IDX files, under a name of their own


def check_name(name: str) -> str:
    """A published dataset's name, `idx:FOLDER` naming a folder that holds the four IDX files, or a user's
    `npz:FILE` or `images:FOLDER` (`aebench.user_data`)."""
    if user_data.is_user_data(name):
        return user_data.check(name)
    if name.startswith(IDX_PREFIX):
        folder = Path(name[len(IDX_PREFIX) :])
        missing = [stem for stems in SPLIT_FILES.values() for stem in stems if _file(folder, stem) is None]
        if missing:
            raise BadInput(
                f"--dataset {name}: {folder} has no {missing[0]}(.gz); an idx: folder holds the four IDX files"
            )
        return name
    if name not in DATASETS:
        choices = ", ".join(DATASETS)
        raise BadInput(
            f"unknown dataset {name!r}; choose from: {choices}, or your own as idx:FOLDER (IDX files), npz:FILE "
            "(NumPy arrays) or images:FOLDER (PNG or JPEG, a folder per class)"
        )
    return name


def image_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of one image, without reading the data: as published, or from an idx: folder's header."""
    if check_name(name) in PUBLISHED_SHAPES:
        return PUBLISHED_SHAPES[name]
    if user_data.is_user_data(name):  # read whole: a folder of images has no header to peek at
        return user_data.load(name).input_shape
    path = _file(Path(name[len(IDX_PREFIX) :]), SPLIT_FILES["train"][0])
    assert path is not None  # check_name made sure
    with gzip.open(path) if path.suffix == ".gz" else path.open("rb") as fh:
        header = fh.read(16)
    return (1, int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big"))


def cache_root() -> Path:
    """The user cache dir (XDG on Linux), where torchvision downloads go."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aebench"


def search_roots(data_dir: str | Path | None = None) -> list[Path]:
    """Where datasets are looked for, in order: --data-dir, $AEBENCH_DATA, the cache, /usr/share/datasets."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get("AEBENCH_DATA"):
        roots.append(Path(os.environ["AEBENCH_DATA"]))
    return [*roots, cache_root(), Path("/usr/share/datasets")]


def _candidates(root: Path, name: str) -> Iterator[Path]:
    yield root / name
    yield root / DATASETS[name] / "raw"  # torchvision's layout
    yield root


def _file(folder: Path, stem: str) -> Path | None:
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.is_file():
            return path
    return None


def _folders(name: str, data_dir: str | Path | None, splits: tuple[str, ...] = ("train", "test")) -> Iterator[Path]:
    """Every folder, in search order, that holds the IDX files of `splits` by name (what they hold is read later)."""
    stems = [stem for split in splits for stem in SPLIT_FILES[split]]
    for root in search_roots(data_dir):
        for folder in _candidates(root, name):
            if all(_file(folder, stem) for stem in stems):
                yield folder


def find(name: str, data_dir: str | Path | None = None, splits: tuple[str, ...] = ("train", "test")) -> Path | None:
    """The first folder that holds every IDX file of `splits` by name, or None (`load` checks what they hold)."""
    check_name(name)
    return next(_folders(name, data_dir, splits), None)


@dataclass(frozen=True)
class Place:
    """Where one dataset is: its folder, or None with `hint` saying how to get it."""

    name: str
    folder: Path | None
    hint: str | None


@dataclass(frozen=True)
class Places:
    """Every known dataset's place, and the roots searched for them in order (`aebench datasets`)."""

    searched: list[Path]
    datasets: list[Place]

    def to_json(self) -> dict[str, Any]:
        """The record `aebench datasets --json` prints: the roots, and each name with its folder or null."""
        return {
            "searched": [str(p) for p in self.searched],
            "datasets": [
                {"name": d.name, "folder": None if d.folder is None else str(d.folder)} for d in self.datasets
            ],
        }


def locate(data_dir: str | Path | None = None) -> Places:
    """Look for every dataset without reading it, so a user sees at once what is on disk and what is not."""
    places = []
    for name in DATASETS:
        folder = find(name, data_dir)
        places.append(Place(name, folder, None if folder else how_to_get(name)))
    return Places(search_roots(data_dir), places)


def _verified(path: Path, data: bytes, raw: bytes, expected: str | None, stamps: checksums.Stamps | None) -> str:
    """The MD5 of `raw` (the IDX bytes); with `expected` ('dataset/stem'), refuse a file that is not that file.

    Under a published name only a published file passes, known by its .gz or by its content (`checksums`):
    another dataset's file is a `DataMismatch`, content aebench does not know is a `DataUnknown`.
    """
    stamp = stamps.get(path) if stamps and expected else None
    if stamp is not None:
        verdict, content = stamp
    else:
        content = hashlib.md5(raw).hexdigest()
        if expected is None:
            return content
        verdict = (checksums.lookup(data) if raw is not data else None) or checksums.known(content) or ""
        if stamps:
            stamps.put(path, verdict, content)
    if expected is None or verdict == expected:
        return content
    name, stem = expected.split("/")
    title = TITLES.get(name, name)
    if not verdict:
        raise DataUnknown(
            f"{path}: not the published {name} file {stem} (aebench knows {title}'s files by checksum and this "
            f"content is none of them); {how_to_get(name)}; to train on these files as they are, use "
            f"--dataset idx:{path.parent}"
        )
    actual, actual_stem = verdict.split("/")
    if actual == name:
        raise DataCorrupt(f"{path}: holds {title}'s {actual_stem}, not its {stem} (misnamed); name it {actual_stem}")
    raise DataMismatch(name, path.parent, actual)


def _read(path: Path, expected: str | None, stamps: checksums.Stamps | None) -> tuple[np.ndarray, str]:
    """`read_idx`, and the MD5 of the file's IDX bytes (what a run records of its data)."""
    try:
        data = path.read_bytes()
        raw = gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataCorrupt(f"{path}: cannot be read as IDX ({exc})") from None
    content = _verified(path, data, raw, expected, stamps)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataCorrupt(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataCorrupt(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected_size = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected_size:
        raise DataCorrupt(f"{path}: truncated or padded IDX file ({len(raw)} bytes, header says {expected_size})")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape), content


def read_idx(path: Path, expected: str | None = None, stamps: checksums.Stamps | None = None) -> np.ndarray:
    """Read one IDX file (optionally gzipped), checking its header against its size, and, when `expected`
    ('dataset/stem') is given, that it is that published file (`_verified`)."""
    return _read(path, expected, stamps)[0]


def read_split(folder: Path, split: str, name: str | None = None, stamps: checksums.Stamps | None = None) -> Split:
    """One split of the files in `folder`; with a published `name`, each file checked to be that dataset's."""
    image_stem, label_stem = SPLIT_FILES[split]
    image_path, label_path = _file(folder, image_stem), _file(folder, label_stem)
    if image_path is None or label_path is None:
        raise DataNotFound(f"{folder} has no {split} split ({image_stem}, {label_stem})")
    published = name in DATASETS
    images, image_md5 = _read(image_path, f"{name}/{image_stem}" if published else None, stamps)
    labels, label_md5 = _read(label_path, f"{name}/{label_stem}" if published else None, stamps)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataCorrupt(f"{folder}: {split} images {images.shape} do not match labels {labels.shape}")
    # (N, H, W) grey images -> (N, 1, H, W); copy so the tensor owns writable memory
    return Split(
        torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)), (image_md5, label_md5)
    )


def download(name: str) -> Path | None:
    """Let torchvision fetch the dataset into the cache; None where there is no network."""
    from torchvision import datasets  # imported here: only this path needs it

    root = cache_root()
    try:
        for train in (True, False):
            getattr(datasets, DATASETS[name])(str(root), train=train, download=True)
    except Exception:  # torchvision raises assorted URL/OS errors when offline
        return None
    return find(name, root)


def _first(name: str, folders: list[Path], stamps: checksums.Stamps) -> tuple[Dataset | None, DataMismatch | None]:
    """The first of `folders` whose files are `name`'s, or None and the first folder that held another dataset's.

    Only a mismatch is passed over: a damaged or unknown file stops the search, since reading on would hide it.
    """
    mismatch: DataMismatch | None = None
    for folder in folders:
        try:
            train = read_split(folder, "train", name, stamps)
            return Dataset(name, folder, train, read_split(folder, "test", name, stamps)), None
        except DataMismatch as exc:
            mismatch = mismatch or exc
    return None, mismatch


def _from_data_dir(name: str, root: Path, stamps: checksums.Stamps) -> Dataset:
    """Dataset `name` from the folder the user named, or a refusal: never another folder in its place."""
    stems = [stem for pair in SPLIT_FILES.values() for stem in pair]
    places = list(_candidates(root, name))
    folders = [f for f in places if all(_file(f, stem) for stem in stems)]
    ds, mismatch = _first(name, folders, stamps)
    if ds is not None:
        return ds
    if mismatch is not None:
        raise DataMismatch(name, mismatch.folder, mismatch.actual, root)
    looked = ", ".join(str(p) for p in places[:-1])
    raise DataNotFound(
        f"--data-dir {root}: no {name} IDX files there (looked in {looked} and {root} itself); it is used as given, "
        f"never passed over: leave it out to look in $AEBENCH_DATA, the cache and /usr/share/datasets, or "
        f"{how_to_get(name)}"
    )


def load(name: str, data_dir: str | Path | None = None, allow_download: bool = True) -> Dataset:
    """Find (or download) and read both splits of dataset `name`, each file checked to be that dataset's.

    An explicit `data_dir` is the only place looked: files there that are not `name`'s are refused, never
    passed over for a folder the user did not name. In the default places a folder whose files are another
    dataset's is passed over for the next, and named in the error if no place holds the right files; torchvision
    downloads the dataset when no place holds its files at all. What each file was found to be is remembered
    in the cache.
    """
    if user_data.is_user_data(check_name(name)):
        return user_data.load(name)
    if name.startswith(IDX_PREFIX):
        folder = Path(name[len(IDX_PREFIX) :])
        return Dataset(name, folder, read_split(folder, "train"), read_split(folder, "test"))
    stamps = checksums.Stamps(cache_root())
    try:
        if data_dir:
            return _from_data_dir(name, Path(data_dir), stamps)
        folders = list(_folders(name, None))
        if not folders and allow_download and (fetched := download(name)) is not None:
            folders = [fetched]
        ds, mismatch = _first(name, folders, stamps)
    finally:
        stamps.save()
    if ds is not None:
        return ds
    if mismatch is not None:
        raise mismatch
    looked = ", ".join(str(r) for r in search_roots(None))
    raise DataNotFound(f"dataset {name!r} not found (looked in {looked}); {how_to_get(name)}")


def test_split(name: str, data_dir: str | Path | None = None) -> Split | None:
    """Only the test split of dataset `name` (what the report's pictures read), None where it is not on this
    machine; reading the training images too would double a report's start-up."""
    if user_data.is_user_data(name) or name.startswith(IDX_PREFIX):
        try:
            return load(name, allow_download=False).test  # a user's own files are where their name says
        except BadInput:
            return None
    folder = find(name, data_dir, splits=("test",))
    return None if folder is None else read_split(folder, "test")


def to_device(images: torch.Tensor, device: torch.device, output: str) -> torch.Tensor:
    """Convert uint8 images once to floats in the output activation's range, on `device`."""
    x = unit_float(images.to(device, non_blocking=True))
    if x.data_ptr() == images.data_ptr():  # float images on their own device: do not scale the dataset in place
        x = x.clone()
    return x.mul_(2.0).sub_(1.0) if output == "tanh" else x


def to_unit(x: torch.Tensor, output: str) -> torch.Tensor:
    """The inverse of `to_device`'s scaling: data or reconstructions from the output activation's range to [0, 1],
    the scale every measure and picture uses, so runs with tanh outputs compare with sigmoid ones."""
    return (x + 1.0) / 2.0 if output == "tanh" else x
