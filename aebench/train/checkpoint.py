"""Checkpoints that rebuild their model, written atomically, loaded without running code."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import torch

from aebench.config import RunConfig
from aebench.errors import AebenchError, NoSpace, Unwritable, first_line, no_space
from aebench.models.base import Autoencoder
from aebench.models.registry import create_model

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"


def check_writable(folder: str | Path, flag: str, given: str | Path | None = None) -> Path:
    """Refuse, before any work, a folder aebench would write into that cannot be: `folder` (or the first
    of its parents that exists) is a file, or a folder this process may not write. Missing folders are
    fine: they are created when written to. Every writer checks its folders here, so each refusal reads
    the same: `--results r: r/runs is a file, not a folder`.

    Args:
        folder: where files will be written.
        flag: the option that chose it, for the message (`--results`, `--out`).
        given: the option's own value when `folder` lies under it (`<results>/runs`); default `folder`.
    """
    folder = Path(folder)
    head = f"{flag} {given if given is not None else folder}"
    probe = folder
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        if probe == folder:
            raise Unwritable(f"{head}: {folder} is a file, not a folder")
        raise Unwritable(f"{head}: {probe} is a file, so no folder can be made under it")
    if not probe.exists():
        raise Unwritable(f"{head}: {probe} is a broken link")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == folder else f" (to create {folder} in)"
        raise Unwritable(f"{head}: no permission to write to the folder {probe}{where}")
    return folder


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary file beside `path`, then rename: a crash never leaves half a file.

    A full disk raises `NoSpace` naming `path`, with nothing left behind (the old file, if any, stays).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise no_space(exc, path) or exc from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        full = no_space(exc, path)
        if full is not None:
            raise NoSpace(path) from None
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def run_dir(results: Path, run_id: str) -> Path:
    return results / "runs" / run_id


def save(results: Path, config: RunConfig, model: Autoencoder) -> Path:
    """Save `{state_dict, run_config, input_shape}` and `config.json` under runs/<run_id>/."""
    return save_state(results, config, model.state_dict(), model.input_shape)


def save_state(
    results: Path, config: RunConfig, state_dict: Mapping[str, torch.Tensor], input_shape: Sequence[int]
) -> Path:
    """`save` from the weights alone: what a grid's driver holds of a run a worker trained."""
    folder = run_dir(results, config.run_id)
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "run_config": config.to_dict(),
        "input_shape": list(input_shape),
    }
    atomic_write(folder / CHECKPOINT, lambda fh: torch.save(payload, fh))
    text = json.dumps({"run_id": config.run_id, **config.to_dict()}, indent=2, sort_keys=True) + "\n"

    def write_text(fh: IO[bytes]) -> None:
        fh.write(text.encode())

    atomic_write(folder / CONFIG, write_text)
    return folder / CHECKPOINT


def load(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[RunConfig, Autoencoder]:
    """Rebuild a model from its checkpoint; weights_only refuses pickles that carry code."""
    try:
        payload: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        reason = first_line(exc, type(exc).__name__)
        raise AebenchError(f"{path}: refused, not a plain aebench checkpoint ({reason})") from None
    config = RunConfig.from_dict(payload["run_config"])
    model = create_model(config.model.arch, tuple(payload["input_shape"]), **config.model.builder_options())
    model.load_state_dict(payload["state_dict"])
    return config, model.eval()
