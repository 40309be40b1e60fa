"""Checkpoints rebuild their model and never run code on load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from aebench.config import RunConfig, model_spec
from aebench.errors import AebenchError
from aebench.models.registry import create_model
from aebench.train import checkpoint


def test_roundtrip_rebuilds_the_same_model(tmp_path: Path) -> None:
    cfg = RunConfig(model=model_spec("conv", depth="shallow", downsample="stride", latent_dim=4))
    model = create_model("conv", (1, 28, 28), **cfg.model.builder_options()).eval()
    path = checkpoint.save(tmp_path, cfg, model)
    assert path == tmp_path / "runs" / cfg.run_id / "checkpoint.pt"
    assert (path.parent / "config.json").is_file()
    assert not list(path.parent.glob("*.tmp"))
    loaded_cfg, loaded = checkpoint.load(path)
    assert loaded_cfg == cfg
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Evil(marker)}, path)
    with pytest.raises(AebenchError, match="refused"):
        checkpoint.load(path)
    assert not marker.exists()


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def explode(fh: object) -> None:
        fh.write(b"half")  # type: ignore[attr-defined]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_write(target, explode)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
