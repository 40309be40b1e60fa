"""What a report covers and what it wrote: the records `build` fills in and `pages` renders.

They live apart from both so that `pages` can read a `Report` without importing `build`,
which imports `pages` to write them: the two modules would otherwise import each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aebench.grid.baselines import BASELINE
from aebench.report.convergence import RULE, converged_count
from aebench.report.stats import Answer


@dataclass(frozen=True)
class Finding:
    """One line of "At a glance": what the runs show, and the comparison it ends on (None for the Pareto front)."""

    text: str
    answer: Answer | None

    def sentence(self) -> str:
        """'Depth (Ex. 5), ...: test MSE ...; best: medium, ahead of shallow (...)', or 'not settled: ...'."""
        a = self.answer
        if a is None:
            return f"{self.text}."
        said = a.sentence() if a.runner_up is not None and not a.settled else f"best: {a.sentence()}"
        return f"{self.text}; {said}."

    def to_json(self) -> dict[str, Any]:
        return {"finding": self.sentence(), "answer": None if self.answer is None else self.answer.to_json()}


@dataclass
class Selection:
    """The runs a report covers: the `done` ones, their epochs, and what was left out."""

    results: Path
    runs: pd.DataFrame
    epochs: pd.DataFrame
    left_out: pd.DataFrame
    where: dict[str, tuple[str, ...]]


@dataclass
class Drawn:
    """One figure the report wrote: its plot name, its caption and its files (PNG and SVG)."""

    name: str
    caption: str
    files: list[Path]


@dataclass
class Report:
    """What `build_report` wrote and why some plots are missing; `summary` is the table shown everywhere."""

    out: Path
    selection: Selection
    configs: pd.DataFrame
    summary: pd.DataFrame
    best: pd.DataFrame
    answers: pd.DataFrame
    findings: list[Finding]
    drawn: list[Drawn] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    answer_list: list[Answer] = field(default_factory=list)  # `answers` as records, with their statistics
    not_ranked: str | None = None  # why some configs are left out of "best" (other training settings)
    baseline: pd.DataFrame | None = None  # each config against a published study (`aebench.report.baseline`)
    environment: list[tuple[str, str]] = field(default_factory=list)  # where and when (`report.environment`)

    def convergence(self) -> dict[str, Any]:
        """How many trained configs had converged, by the stated rule (baselines are fitted, not trained)."""
        done, judged = converged_count(_trained(self.configs))
        return {"converged": done, "judged": judged, "rule": RULE}

    def to_json(self) -> dict[str, Any]:
        left = self.selection.left_out
        return {
            "out": str(self.out),
            "runs": len(self.selection.runs),
            "configs": len(self.configs),
            "left_out": {str(k): int(v) for k, v in left["status"].value_counts().items()},
            "where": {k: list(v) for k, v in self.selection.where.items()},
            "files": [str(p) for p in self.files],
            "plots": [{"name": d.name, "caption": d.caption, "files": [str(p) for p in d.files]} for d in self.drawn],
            "skipped": [{"plot": k, "reason": v} for k, v in self.skipped.items()],
            "answers": [a.to_json() for a in self.answer_list],
            "findings": [f.to_json() for f in self.findings],
            "not_ranked": self.not_ranked,
            "convergence": self.convergence(),
            "environment": dict(self.environment),
            "baseline": None
            if self.baseline is None
            else [
                {k: (_finite(v) if isinstance(v, float) else v) for k, v in row.items()}
                for row in self.baseline.to_dict("records")
            ],  # fmt: skip
        }


def _trained(configs: pd.DataFrame) -> pd.DataFrame:
    return configs[configs["arch"] != BASELINE] if "arch" in configs.columns else configs


def _finite(value: float) -> float | None:
    """A JSON number, or null for NaN (one seed has no interval)."""
    return None if math.isnan(value) else value
