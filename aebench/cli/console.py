"""Where a command's output goes and how a command ends: the consoles, one error line, the exit codes.

Apart from `app` so that the commands read as parse, call, print, and kept light (no torch) so
that a usage error or `aebench --help` costs no library import. The consoles are made when a
command prints, not at import, so each sees the stdout it has then (a terminal, a pipe, a test's).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from aebench.errors import AebenchError, failure_reason

if TYPE_CHECKING:  # annotations only: importing the grid at start-up would import torch
    from aebench.grid.cells import Outcome


def stdout() -> Console:
    """The console for results. Piped output (CI logs, files) has no terminal width: give tables room instead
    of rich's 80."""
    return Console(width=None if sys.stdout.isatty() else 200)


def stderr() -> Console:
    """The console for progress, warnings and errors: stderr, so `--json` on stdout stays clean."""
    return Console(stderr=True)


def fail(message: str, code: int) -> None:
    """End the command with one `aebench: error:` line on stderr and `code`."""
    stderr().print(f"aebench: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def print_outcomes(outcomes: Sequence[Outcome], as_json: bool) -> None:
    """A grid's outcomes: one JSON list, or the grid table (nothing where there are none)."""
    from aebench.cli.render import outcome_record, run_table  # deferred: render imports torch via the config

    if as_json:
        print(json.dumps([outcome_record(o) for o in outcomes], default=str))
    elif outcomes:
        stdout().print(run_table(outcomes))


@contextmanager
def errors(debug: bool, as_json: bool = False) -> Iterator[None]:
    """Library errors become one line and an exit code; tracebacks only with --debug."""
    from aebench.cli.render import interrupted_line  # deferred: render imports torch via the config
    from aebench.grid.executors import GridInterrupted  # deferred: the grid imports torch

    try:
        yield
    except typer.Exit:
        raise  # the command's own exit code (a run that did not finish): not an error, no line
    except GridInterrupted as exc:
        print_outcomes(exc.outcomes, as_json)
        stderr().print(interrupted_line(exc.outcomes, exc.total), highlight=False)
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
        fail(f"internal error: {failure_reason(exc)} (rerun with --debug for the traceback)", 1)
