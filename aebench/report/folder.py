"""Where a report goes, and which files of an earlier report there it may replace.

A full report (every plot, every run) goes to `<results>/report`; a partial one (`--only`, `--where`)
with no `--out` goes beside it, to `<results>/report-<what it selects>`, so that drawing one plot never
replaces the full report. Each report leaves a manifest of the files it wrote; the next report in the
same folder removes only the files the manifest lists and it did not write again (so the folder agrees
with its index), never a file no report listed. A partial report is refused a folder holding a full one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aebench.errors import Unwritable
from aebench.train.checkpoint import atomic_write, check_writable

MANIFEST = ".aebench-report.json"
_MAX_NAME = 80


def is_full(only: Sequence[str], where: Mapping[str, Sequence[str]], plots: Sequence[str]) -> bool:
    """Every plot over every run: the report `aebench report` writes with neither --only nor --where."""
    return set(only) >= set(plots) and not where


def default_folder(
    results: str | Path, only: Sequence[str], where: Mapping[str, Sequence[str]], plots: Sequence[str]
) -> Path:
    """`<results>/report`, or for a partial report `<results>/report-<where>-<only>`: `report-arch=conv`,
    `report-mse_vs_latent`, `report-arch=conv-reconstructions+feature_maps` (long names end in a hash)."""
    if is_full(only, where, plots):
        return Path(results) / "report"
    parts = [",".join(f"{k}={'|'.join(v)}" for k, v in where.items())] if where else []
    if set(only) < set(plots):
        parts.append("+".join(only))
    name = re.sub(r"[^A-Za-z0-9_.=+-]+", "+", "-".join(parts)).strip("+.") or "partial"
    if len(name) > _MAX_NAME:
        name = name[: _MAX_NAME - 9] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return Path(results) / f"report-{name}"


def prepare(
    results: str | Path,
    out: str | Path | None,
    only: Sequence[str],
    where: Mapping[str, Sequence[str]],
    plots: Sequence[str],
) -> tuple[Path, dict[str, Any] | None]:
    """The report's folder, checked and made before anything is drawn, and the manifest of the report
    already there (None where there is none). Refuses a folder that cannot be written (or is a file), and
    a partial report into a folder that holds a full one."""
    folder = Path(out) if out is not None else default_folder(results, only, where, plots)
    flag, given = ("--out", out) if out is not None else ("--results", results)
    check_writable(folder, flag, given)
    previous = read_manifest(folder)
    if previous is not None and previous.get("full") and not is_full(only, where, plots):
        raise Unwritable(
            f"--out {folder} holds a full report, which this partial one (--only/--where) would replace; "
            f"give another --out, or drop --out to write to {default_folder(results, only, where, plots)}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder, previous


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), list) else None


def finish(
    folder: Path,
    written: Iterable[Path],
    previous: dict[str, Any] | None,
    selection: Mapping[str, Any],
    ours: Iterable[str] = (),
) -> None:
    """Remove the files the previous report here listed and this one did not write, then list this one's.

    `ours`: aebench's own file names, removed when stale from a folder with no manifest (a report written
    before manifests), and only when this report is a full one.
    """
    names = {p.name for p in written}
    if previous is not None:
        stale = {str(n) for n in previous["files"]}
    elif selection.get("full"):
        stale = set(ours)
    else:
        stale = set()
    for name in sorted(stale - names):
        if name == Path(name).name and not name.startswith("."):  # a plain file name of this folder, no path
            (folder / name).unlink(missing_ok=True)
    text = json.dumps({**selection, "files": sorted(names)}, indent=2, sort_keys=True) + "\n"

    def write(fh: Any) -> None:
        fh.write(text.encode())

    atomic_write(folder / MANIFEST, write)
