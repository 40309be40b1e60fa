"""A user's own images: `npz:FILE` (NumPy arrays) and `images:FOLDER` (PNG or JPEG files, a folder per class).

Why: a benchmark of autoencoders is only worth as much as the data it can take, and a researcher's data is
rarely MNIST-family IDX files. Both formats end as the same `Dataset` the published sets give (uint8 or
float images as one tensor per split), so every model, measure and report treats them alike; each split's
content digest is recorded as for the published files. A malformed file is refused in one line naming the
file and what is wrong with it, before anything trains.

- `npz:FILE`: arrays `x_train`, `x_test` (uint8, or floats in [0, 1]; N x H x W or N x C x H x W) and
  optionally `y_train`, `y_test` (integer class labels; without them the linear probe is not measured).
- `images:FOLDER`: `FOLDER/train/<class>/*.png|jpg` and `FOLDER/test/<class>/*`, as torchvision's
  `ImageFolder` reads them (classes sorted by name, the same classes in both splits). Greyscale files give
  one channel; if any file has colour, every image is read as RGB. Every image must have one size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from aebench.errors import BadInput, DataCorrupt
from aebench.splits import Dataset, Split

NPZ_PREFIX = "npz:"
IMAGES_PREFIX = "images:"
PREFIXES = (NPZ_PREFIX, IMAGES_PREFIX)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def is_user_data(name: str) -> bool:
    return name.startswith(PREFIXES)


def check(name: str) -> str:
    """Refuse, by name, a `npz:` file or `images:` folder that is not there (its content is read by `load`)."""
    path = Path(name.split(":", 1)[1])
    if name.startswith(NPZ_PREFIX) and not path.is_file():
        raise BadInput(f"--dataset {name}: no file {path}; npz: names a .npz file with x_train and x_test")
    if name.startswith(IMAGES_PREFIX):
        for split in ("train", "test"):
            if not (path / split).is_dir():
                raise BadInput(f"--dataset {name}: {path} has no {split}/ folder; images: names a folder with "
                               "train/ and test/, a subfolder per class")  # fmt: skip
    return name


def load(name: str) -> Dataset:
    """Both splits of a user's `npz:` file or `images:` folder, checked."""
    check(name)
    path = Path(name.split(":", 1)[1])
    train, test = _npz(path) if name.startswith(NPZ_PREFIX) else _image_folder(path)
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataCorrupt(f"{path}: train images are {tuple(train.images.shape[1:])} (C, H, W) but test images "
                          f"{tuple(test.images.shape[1:])}; both splits need one shape")  # fmt: skip
    return Dataset(name, path, train, test)


def _md5(array: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(array).tobytes()).hexdigest()


def _images(path: Path, key: str, x: np.ndarray) -> torch.Tensor:
    """One split's image array as (N, C, H, W): uint8 kept, floats checked to lie in [0, 1] and kept as float32."""
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or len(x) == 0:
        raise DataCorrupt(f"{path}: {key} has shape {x.shape}; give N x H x W or N x C x H x W images")
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x).copy())
    if not np.issubdtype(x.dtype, np.floating):
        raise DataCorrupt(f"{path}: {key} is {x.dtype}; give uint8 (0-255) or floats in [0, 1]")
    x = x.astype(np.float32)
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise DataCorrupt(f"{path}: {key} holds values outside [0, 1] (from {np.nanmin(x):g} to {np.nanmax(x):g}); "
                          "scale float images to [0, 1], or give uint8")  # fmt: skip
    return torch.from_numpy(x.copy())


def _labels(path: Path, key: str, y: np.ndarray | None, n: int) -> torch.Tensor:
    if y is None:
        return torch.zeros(n, dtype=torch.int64)
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DataCorrupt(f"{path}: {key} must be {n} non-negative integer labels, one an image; it is "
                          f"{y.dtype} {y.shape}")  # fmt: skip
    return torch.from_numpy(y.astype(np.int64))


def _npz(path: Path) -> tuple[Split, Split]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            held = {k: arrays[k] for k in arrays.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DataCorrupt(f"{path}: cannot be read as .npz ({exc})") from None
    splits = []
    for split in ("train", "test"):
        key = f"x_{split}"
        if key not in held:
            have = ", ".join(sorted(held)) or "no arrays"
            raise DataCorrupt(f"{path}: no array {key} (it holds {have}); an npz: file needs x_train and x_test")
        x = held[key]
        images = _images(path, key, x)
        labels = _labels(path, f"y_{split}", held.get(f"y_{split}"), len(images))
        splits.append(Split(images, labels, (_md5(x), _md5(labels.numpy()))))
    return splits[0], splits[1]


def _image_folder(root: Path) -> tuple[Split, Split]:
    from PIL import Image, UnidentifiedImageError  # torchvision's own dependency; only this format needs it

    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise DataCorrupt(f"{root / 'train'}: no class folders; put each class's images in a folder of its own")
    files: dict[str, list[tuple[Path, int]]] = {}
    for split in ("train", "test"):
        found = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
        if split == "test" and not set(found) <= set(classes):
            extra = sorted(set(found) - set(classes))
            raise DataCorrupt(f"{root / 'test'}: classes {', '.join(extra)} have no training images")
        files[split] = [(f, classes.index(c)) for c in found for f in sorted((root / split / c).iterdir())
                        if f.suffix.lower() in IMAGE_SUFFIXES]  # fmt: skip
        if not files[split]:
            raise DataCorrupt(f"{root / split}: no PNG or JPEG images in its class folders")
    opened: dict[str, list[np.ndarray]] = {}
    colour = False
    for split, entries in files.items():
        arrays = []
        for f, _ in entries:
            try:
                with Image.open(f) as im:
                    im.load()
                    colour = colour or im.mode not in ("1", "L", "I", "I;16", "F")
                    arrays.append(np.asarray(im.convert("RGB") if im.mode not in ("1", "L") else im.convert("L")))
            except (OSError, UnidentifiedImageError) as exc:
                raise DataCorrupt(f"{f}: cannot be read as an image ({exc})") from None
        opened[split] = arrays
    splits = []
    for split, arrays in opened.items():
        shaped = [a if a.ndim == 3 else (np.repeat(a[..., None], 3, axis=2) if colour else a[..., None])
                  for a in arrays]  # fmt: skip
        sizes = {a.shape for a in shaped}
        if len(sizes) > 1:
            first, other = sorted(sizes)[:2]
            raise DataCorrupt(f"{root / split}: images of more than one size ({first[1]}x{first[0]} and "
                              f"{other[1]}x{other[0]}); resize them to one")  # fmt: skip
        x = np.stack(shaped).transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        y = np.array([label for _, label in files[split]], dtype=np.int64)
        digest = hashlib.md5()
        for f, _ in files[split]:
            digest.update(f"{f.parent.name}/{f.name}".encode())
            digest.update(f.read_bytes())
        splits.append(Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y),
                            (digest.hexdigest(), _md5(y))))  # fmt: skip
    return splits[0], splits[1]
