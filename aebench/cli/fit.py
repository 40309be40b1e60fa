"""Tables that fit the terminal: the columns that fit whole, most important first, and a note of the rest.

A number cut to `0.01…` is worse than no number: rich shrinks a table wider than the terminal by
cropping its cells, so every table the commands print goes through `fit_table`, which keeps, in the
order of importance the command gives, the columns whose cells fit whole (rich measures them,
borders and padding included), and says which it left out and where to see them. `--wide` keeps
every column and widens the console instead, so the terminal wraps the lines and nothing is cut.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Col:
    """One column: its header, its cells (rendered text, one per row) and how they align.

    The first column of a table (its row label) may wrap onto more lines, never be cut; the others
    (numbers, short words) stay on one line and are shown whole or not at all.
    """

    header: str
    cells: Sequence[str | Text]
    justify: JustifyMethod = "left"


@dataclass
class Fitted:
    """A table ready to print: the columns kept, the headers left out, the console width it was fit to."""

    table: Table
    width: int  # the table's natural width: what a console needs to show it uncut
    left_out: list[str] = field(default_factory=list)
    fit_to: int = 0
    wide: bool = False

    def note(self, how: str) -> str | None:
        """'not shown at 80 columns: PSNR dB, SSIM; <how>', or None when every column is shown."""
        if not self.left_out:
            return None
        return f"not shown at {self.fit_to} columns: {', '.join(self.left_out)}; {how}"


_MEASURE = Console(file=io.StringIO(), width=100_000, color_system=None)


def _table(columns: Sequence[Col], rows: int, title: str | None, caption: str | None) -> Table:
    table = Table(title=title, caption=caption)
    for i, col in enumerate(columns):
        first = i == 0
        table.add_column(col.header, justify=col.justify, no_wrap=not first, overflow="fold")
    for r in range(rows):
        table.add_row(*[col.cells[r] for col in columns])
    return table


def natural_width(table: Table) -> int:
    """The width `table` takes with nothing wrapped or cut, borders and padding included (rich's measure)."""
    return Measurement.get(_MEASURE, _MEASURE.options, table).maximum


def fit_table(
    columns: Sequence[Col],
    width: int,
    *,
    order: Sequence[str] | None = None,
    keep: int = 2,
    wide: bool = False,
    title: str | None = None,
    caption: str | None = None,
) -> Fitted:
    """The table of `columns` that fits `width` terminal columns with every cell whole.

    Args:
        columns: in order of importance: the row label first, then the headline number (test MSE), ...
            The first `keep` are always shown (the label wraps if the terminal is narrower than them);
            each further one is shown if it fits beside those already kept, else left out.
        width: the console's width.
        order: the headers in the order to show them (default: `columns`' order); those left out are skipped.
        wide: keep every column (`--wide`): the caller prints at `Fitted.width` and the terminal wraps.
        title, caption: the table's, wrapped to its width.
    """
    rows = len(columns[0].cells) if columns else 0
    kept: list[Col] = []
    left_out: list[str] = []
    for i, col in enumerate(columns):
        trial = [*kept, col]
        if wide or i < keep or natural_width(_table(trial, rows, None, None)) <= width:
            kept = trial
        else:
            left_out.append(col.header)
    if order is not None:
        rank = {header: i for i, header in enumerate(order)}
        kept.sort(key=lambda c: rank.get(c.header, len(rank)))
    table = _table(kept, rows, title, caption)
    return Fitted(table, natural_width(table), left_out, width, wide)


def print_fitted(console: Console, fitted: Fitted, how: str) -> None:
    """Print a fitted table, then the note of what it left out (on the same console); a `--wide` table wider
    than the console is printed at its own width, for the terminal to wrap, not cut."""
    if fitted.wide and fitted.width > console.width:
        console.width = fitted.width
    console.print(fitted.table)
    note = fitted.note(how)
    if note:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
