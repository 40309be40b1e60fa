"""The published datasets' files, known by checksum, so a folder is trusted for what it holds, not its names.

MNIST, Fashion-MNIST and KMNIST share their file names, so a folder of one passes for another
by name alone. Each file is known two ways: the MD5 of the published `.gz` (torchvision's
dataset classes list them) and the MD5 of the IDX bytes inside, which survives recompression
(Debian's `dataset-fashion-mnist` recompresses: its `.gz` sums differ, its bytes do not) and
covers uncompressed files. The content sums were computed once from the real files: Debian's
Fashion-MNIST, and MNIST's both splits in `../shared/data/mnist` (its README lists them; the test
split is also in `tests/data/mnist`). KMNIST could not be had here, so for it only the published
`.gz` is known: its own `.gz` files pass, and a recompressed or uncompressed copy is refused as
unknown content (it can still train as `idx:FOLDER`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path

# (dataset, file stem) -> MD5 of the published .gz (torchvision.datasets.MNIST/FashionMNIST/KMNIST.resources)
PUBLISHED_GZ: dict[tuple[str, str], str] = {
    ("mnist", "train-images-idx3-ubyte"): "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ("mnist", "train-labels-idx1-ubyte"): "d53e105ee54ea40749a09fcbcd1e9432",
    ("mnist", "t10k-images-idx3-ubyte"): "9fb629c4189551a2d022fa330f9573f3",
    ("mnist", "t10k-labels-idx1-ubyte"): "ec29112dd5afa0611ce80d1b7f02629c",
    ("fashion-mnist", "train-images-idx3-ubyte"): "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ("fashion-mnist", "train-labels-idx1-ubyte"): "25c81989df183df01b3e8a0aad5dffbe",
    ("fashion-mnist", "t10k-images-idx3-ubyte"): "bef4ecab320f06d8554ea6380940ec79",
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): "bb300cfdad3c16e7a12a480ee83cd310",
    ("kmnist", "train-images-idx3-ubyte"): "bdb82020997e1d708af4cf47b453dcf7",
    ("kmnist", "train-labels-idx1-ubyte"): "e144d726b3acfaa3e44228e80efcd344",
    ("kmnist", "t10k-images-idx3-ubyte"): "5c965bf0a639b31b8f53240b1b52f4d7",
    ("kmnist", "t10k-labels-idx1-ubyte"): "7320c461ea6c1c855c0b718fb2a4b134",
}
# (dataset, file stem) -> MD5 of the decompressed IDX bytes, from the real files (see the module docstring)
CONTENT: dict[tuple[str, str], str] = {
    ("mnist", "train-images-idx3-ubyte"): "6bbc9ace898e44ae57da46a324031adb",
    ("mnist", "train-labels-idx1-ubyte"): "a25bea736e30d166cdddb491f175f624",
    ("mnist", "t10k-images-idx3-ubyte"): "2646ac647ad5339dbf082846283269ea",
    ("mnist", "t10k-labels-idx1-ubyte"): "27ae3e4e09519cfbb04c329615203637",
    ("fashion-mnist", "train-images-idx3-ubyte"): "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ("fashion-mnist", "train-labels-idx1-ubyte"): "9018921c3c673c538a1fc5bad174d6f9",
    ("fashion-mnist", "t10k-images-idx3-ubyte"): "8181f5470baa50b63fa0f6fddb340f0a",
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): "15d484375f8d13e6eb1aabb0c3f46965",
}
_BY_SUM = {md5: key for table in (PUBLISHED_GZ, CONTENT) for key, md5 in table.items()}
CONTENT_BY_SUM = {md5: key for key, md5 in CONTENT.items()}
STAMPS = "verified.json"  # in the cache folder: path -> (size, mtime, what it was found to be, its content MD5)


def lookup(data: bytes) -> str | None:
    """'dataset/stem' of the published file (or its content) these bytes are, or None."""
    found = _BY_SUM.get(hashlib.md5(data).hexdigest())
    return None if found is None else "/".join(found)


def known(content: str) -> str | None:
    """'dataset/stem' of the published file whose IDX bytes have MD5 `content`, or None."""
    found = CONTENT_BY_SUM.get(content)
    return None if found is None else "/".join(found)


def identify(path: Path) -> str | None:
    """'dataset/stem' of a published file this is, by its bytes (and, for a .gz, the bytes inside); None if none."""
    data = path.read_bytes()
    found = lookup(data)
    if found is None and path.suffix == ".gz":
        try:
            found = lookup(gzip.decompress(data))
        except (OSError, EOFError):
            return None  # not gzip at all: reading it says so
    return found


class Stamps:
    """What each file was found to be, remembered in the cache so a folder is checked once, not every run.

    A stamp is keyed by the file's resolved path and holds its size and modification time: a file
    replaced since is checked again. It also holds the MD5 of the file's IDX bytes, which a run records
    (`aebench.data.Dataset.digest`), so that costs nothing either. A stamp of an older aebench, without
    that MD5, is checked again. A cache that cannot be written costs a check per run, nothing else.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / STAMPS
        try:
            self.stamps: dict[str, list[object]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.stamps = {}

    @staticmethod
    def _key(path: Path) -> tuple[str, list[object]]:
        st = path.stat()
        return str(path.resolve()), [st.st_size, st.st_mtime_ns]

    def get(self, path: Path) -> tuple[str, str] | None:
        """(what the file was found to be, '' for unknown; the MD5 of its IDX bytes), or None if not stamped."""
        key, sig = self._key(path)
        entry = self.stamps.get(key)
        if not entry or entry[:2] != sig or len(entry) < 4:
            return None
        return str(entry[2]), str(entry[3])

    def put(self, path: Path, verdict: str, content: str) -> None:
        key, sig = self._key(path)
        self.stamps[key] = [*sig, verdict, content]

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump(self.stamps, fh)
            os.replace(tmp, self.path)
        except OSError:
            pass  # see the class docstring: remembering is an optimisation
