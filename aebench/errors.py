"""Typed errors: the library raises these, the CLI turns each into one stderr line.

Exit codes follow the Unix convention the CLI promises: 2 for bad input (nothing was
trained or written), 1 for a failure while working.
"""

from __future__ import annotations


class AebenchError(Exception):
    """Base of every error aebench reports to a user as one line."""

    exit_code = 1


class BadInput(AebenchError):
    """The user asked for something that is not allowed; nothing has been done yet."""

    exit_code = 2


class DataNotFound(BadInput):
    """A dataset is not on disk where aebench looks, and could not be downloaded."""


class DataCorrupt(BadInput):
    """A dataset file exists but is truncated or not in the IDX format."""


class StoreError(AebenchError):
    """The results store cannot be used (not an aebench store, corrupt, unwritable)."""

    exit_code = 2


class Diverged(AebenchError):
    """Training produced a non-finite loss; the run is recorded as diverged."""

    def __init__(self, epoch: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}")
        self.epoch = epoch
        self.loss = loss


def first_line(exc: BaseException, default: str = "") -> str:
    """The first line of an exception's message (`default` when it has none): errors are one line here."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else default


def failure_reason(exc: BaseException) -> str:
    """`Type: first line of the message`: what a failed run's `error` column holds."""
    return f"{type(exc).__name__}: {first_line(exc)}"
