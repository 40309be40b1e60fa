"""Rich progress for grids and runs, on stderr so `--json` output stays clean."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aebench.config import RunConfig
from aebench.grid.cells import Outcome
from aebench.grid.executors import GridEvents
from aebench.train.loop import Progress as ProgressFn


class RichEvents(GridEvents):
    """A grid bar plus a bar for the run in flight, and one line per finished run."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.grid: TaskID | None = None
        self.runs: dict[str, TaskID] = {}  # run_id -> its bar; several at once on the Ray executor

    def __enter__(self) -> RichEvents:
        return self  # the bars start with the grid: input refused before it leaves stderr one line, no bar

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.progress.live.is_started:
            self.progress.stop()

    def grid_start(self, total: int, todo: int) -> None:
        self.progress.start()
        if total - todo:
            self.console.print(f"{total - todo} of {total} runs already done in the store: skipped", highlight=False)
        if total > 1:
            self.grid = self.progress.add_task("grid", total=total, completed=0)

    def run_start(self, index: int, config: RunConfig) -> ProgressFn:
        label = config.label()
        task = self.progress.add_task(label, total=None)
        self.runs[config.run_id] = task

        def update(completed: int, total: int, message: str) -> None:
            self.progress.update(task, completed=completed, total=total, description=f"{label}  {message}")

        return update

    def run_end(self, outcome: Outcome) -> None:
        task = self.runs.pop(outcome.run_id, None)
        if task is not None:
            self.progress.remove_task(task)
        if self.grid is not None:
            self.progress.advance(self.grid)
        row = outcome.row
        if outcome.skipped:
            note = f"skipped: already {outcome.status}"
        elif outcome.status == "done":
            note = f"test MSE {row.get('test_mse', float('nan')):.5f}, {row.get('wall_seconds', 0):.1f} s"
        else:
            note = outcome.error or ""
        colour = {"done": "green", "diverged": "yellow", "failed": "red"}.get(outcome.status, "white")
        self.console.print(
            f"[{colour}]{outcome.status:>8}[/{colour}] {outcome.config.label()}  [dim]{note}[/dim]", highlight=False
        )
