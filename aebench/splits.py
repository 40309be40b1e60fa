"""A dataset as the engine holds it: both splits as whole tensors, and where they came from.

Apart from `aebench.data` (which finds and reads the published datasets) so that every reader of a format,
published or a user's own (`aebench.user_data`), builds the same thing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, C, H, W): uint8 (0-255), or float32 in [0, 1] from a user's float arrays
    labels: torch.Tensor  # int64 (N,); all 0 where the data has none
    digests: tuple[str, str] = ("", "")  # MD5 of the images' and the labels' bytes (IDX: inside any .gz)


@dataclass(frozen=True)
class Dataset:
    """Both splits of a dataset, and where they came from, which each run records (`provenance`)."""

    name: str
    folder: Path
    train: Split
    test: Split

    @property
    def digest(self) -> str:
        """The MD5s of its four files' IDX bytes, comma-joined: train images, train labels, test images, test labels.

        The bytes inside a .gz, not the .gz, since a recompressed copy (Debian's) is the same data. One MD5 per
        file rather than one hash over them: each can be checked without aebench (`zcat FILE | md5sum`, or a
        dataset's published table), and a run that used a changed file shows which.
        """
        return ",".join((*self.train.digests, *self.test.digests))

    def provenance(self) -> dict[str, str]:
        """The store's `data_dir` (the folder, absolute but not through symlinks) and `data_digest` columns."""
        return {"data_dir": os.path.abspath(self.folder), "data_digest": self.digest}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return int(self.train.labels.max()) + 1


def unit_float(images: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: uint8 divided by 255, floats (already in [0, 1]) as they are."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
