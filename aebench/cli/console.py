"""Where a command's output goes and how a command ends: the consoles, one error line, the exit codes.

Apart from `app` so that the commands read as parse, call, print, and kept light (no torch) so
that a usage error or `aebench --help` costs no library import. The consoles are made when a
command prints, not at import, so each sees the stdout it has then (a terminal, a pipe, a test's).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer._click.exceptions import ClickException  # typer vendors click since 0.25
from typer.core import TyperGroup
from typer.exceptions import Abort

from aebench.errors import AebenchError, failure_reason, no_space

if TYPE_CHECKING:  # annotations only: importing the grid at start-up would import torch
    from aebench.grid.cells import Outcome


def stdout() -> Console:
    """The console for results, as wide as the terminal, or `$COLUMNS` where set (as for any terminal program).
    Piped output (CI logs, files) with no `$COLUMNS` has no width: give tables room instead of rich's 80."""
    sized = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(width=None if sized else 200)


def stderr() -> Console:
    """The console for progress, warnings and errors: stderr, so `--json` on stdout stays clean."""
    return Console(stderr=True)


def strict(value: Any, key: str | None = None) -> Any:
    """`value` as strict JSON with the declared types (`aebench.columns`): NaN and infinity as null (SQLite's NULL
    comes back as NaN), a whole-number float in an INTEGER column as an int (`latent_dim` 2, not 2.0; a flag 0,
    not 0.0), numpy scalars as Python numbers, paths and times as text."""
    from aebench.columns import COLUMNS  # deferred: light, but only a --json command needs it

    if isinstance(value, dict):
        return {str(k): strict(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v, key) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy and torch scalars
        value = value.item()
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        column = COLUMNS.get(key or "")
        return int(value) if column is not None and column.sql == "INTEGER" and value.is_integer() else value
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def print_json(value: Any) -> None:
    """Print `value` as one line of strict JSON (`strict`); a NaN left in it would be a bug, refused here."""
    print(json.dumps(strict(value), allow_nan=False))


def fail(message: str, code: int) -> None:
    """End the command with one `aebench: error:` line on stderr and `code`."""
    stderr().print(f"aebench: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def print_outcomes(outcomes: Sequence[Outcome], as_json: bool, total: int | None = None, wide: bool = False) -> None:
    """A grid's outcomes: one JSON list, or the grid table of the columns that fit (every one with `wide`) and
    a line naming those left out; nothing where there are none. `total`: the grid's cells, run or not."""
    from aebench.cli.fit import print_fitted  # deferred: rich's tables are not needed for a usage error
    from aebench.cli.render import GRID_HOW, grid_table, outcome_record  # deferred: render imports torch (config)

    if as_json:
        print_json([outcome_record(o) for o in outcomes])
    elif outcomes:
        out = stdout()
        print_fitted(out, grid_table(outcomes, total, out.width, wide), GRID_HOW)


class OneLineErrors(TyperGroup):
    """Usage errors as one stderr line with exit code 2, instead of click's usage panel."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except ClickException as exc:
            if not exc.format_message().strip():  # no arguments: the help was printed, nothing went wrong
                sys.exit(0)
            fail(exc.format_message(), exc.exit_code)
        except Abort:
            fail("aborted", 1)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


@contextmanager
def errors(debug: bool, as_json: bool = False, wide: bool = False) -> Iterator[None]:
    """Library errors become one line and an exit code; tracebacks only with --debug. An interrupted grid
    prints what it finished (as `print_outcomes`, `wide` as there) before its line."""
    from aebench.cli.render import interrupted_line  # deferred: render imports torch via the config
    from aebench.grid.executors import GridInterrupted  # deferred: the grid imports torch

    try:
        yield
    except typer.Exit:
        raise  # the command's own exit code (a run that did not finish): not an error, no line
    except GridInterrupted as exc:
        print_outcomes(exc.outcomes, as_json, exc.total, wide)
        stderr().print(interrupted_line(exc.outcomes, exc.total), highlight=False, soft_wrap=True)
        sys.exit(130)
    except AebenchError as exc:
        if debug:
            raise
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        stderr().print("interrupted", highlight=False)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        full = no_space(exc)  # a full disk is the machine's state, not aebench's bug: one plain line
        if full is not None:
            fail(str(full), full.exit_code)
        fail(f"internal error: {failure_reason(exc)} (rerun with --debug for the traceback)", 1)
