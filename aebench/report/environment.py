"""Where and when a report's runs were measured: what a reader needs before trusting a published study.

The store records each run's provenance (device, torch, commit, host, data folder and its files' MD5s,
start, finish, wall time), so a report can state it without the person who ran the study writing it
down: a study resumed over several sittings shows its span and the sum of its runs apart, since the
span then includes the gaps; a study whose runs read different data (another copy, a changed file)
shows each folder and digest with its count of runs.
"""

from __future__ import annotations

import pandas as pd

# what `data_digest` holds, in its order (`aebench.data.Dataset.digest`)
DIGEST_ROW = "data MD5s (IDX bytes: train images, train labels, test images, test labels)"


def _counted(values: pd.Series) -> str:
    """`a` when every run has it, else `a (40 runs), b (4 runs)`; runs without a value are not counted."""
    seen = values.dropna().astype(str)
    counts = seen.value_counts()
    if len(counts) == 1:
        return str(counts.index[0])
    return ", ".join(f"{value} ({n} run{'s' if n > 1 else ''})" for value, n in counts.items())


def duration(seconds: float) -> str:
    """`1 h 07 min`, `4 min 12 s`, `9.3 s`: wall times as a person reads them."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest:02d} min"
    if seconds >= 60:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    return f"{seconds:.1f} s"


def environment(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(what, value) rows: devices, torch, commits, hosts, data, and the study's time, from its runs' records."""
    rows: list[tuple[str, str]] = []
    for column, what in (("device_name", "device"), ("torch_version", "torch"), ("git_commit", "aebench commit"),
                         ("host", "host"), ("data_dir", "data folder"),
                         ("data_digest", DIGEST_ROW)):  # fmt: skip
        if column in runs.columns and runs[column].notna().any():
            rows.append((what, _counted(runs[column])))
    if {"started_at", "finished_at"} <= set(runs.columns):
        start = pd.to_datetime(runs["started_at"], utc=True, errors="coerce").min()
        end = pd.to_datetime(runs["finished_at"], utc=True, errors="coerce").max()
        if not (pd.isna(start) or pd.isna(end)):
            span = (end - start).total_seconds()
            rows.append(("study wall time", f"{duration(span)}, from the first run's start "
                         f"({start.isoformat(timespec='seconds')}) to the last run's end "
                         f"({end.isoformat(timespec='seconds')})"))  # fmt: skip
    if "wall_seconds" in runs.columns and runs["wall_seconds"].notna().any():
        total = float(runs["wall_seconds"].sum())
        rows.append(
            (
                "runs' own wall time",
                f"{duration(total)} over {int(runs['wall_seconds'].notna().sum())} runs "
                "(training, measuring and saving each, summed: less than the span when the study paused, "
                "more when runs trained at once)",
            )
        )
    return rows
