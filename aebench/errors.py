"""Typed errors: the library raises these, the CLI turns each into one stderr line.

Exit codes follow the Unix convention the CLI promises: 2 for bad input (nothing was
trained or written), 1 for a failure while working.
"""

from __future__ import annotations

import errno
import sqlite3


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


class DataUnknown(DataCorrupt):
    """A file under a published dataset's name whose content is no published file: changed, damaged, or a user's own.

    A subclass of DataCorrupt because to the search it is one: it stops there, since passing over a damaged copy
    would hide it. A user's own files train under a name of their own (`--dataset idx:FOLDER`).
    """


# how each dataset is written in a sentence
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "kmnist": "KMNIST"}


class DataMismatch(BadInput):
    """A folder found under one dataset's name holds another published dataset's files: not corrupt, another
    dataset, so the search of the default places goes on past it; under an explicit --data-dir it is refused."""

    TITLES = TITLES

    def __init__(self, name: str, folder: object, actual: str, data_dir: object = None) -> None:
        title, actual_title = TITLES.get(name, name), TITLES.get(actual, actual)
        where = (
            f"--data-dir {data_dir} is used as given, never passed over: give the folder that holds {title}'s "
            "files, or leave out --data-dir to look in $AEBENCH_DATA, the cache and /usr/share/datasets"
            if data_dir is not None
            else f"{title} is looked for in --data-dir, $AEBENCH_DATA, the cache and /usr/share/datasets"
        )
        super().__init__(
            f"--dataset {name}: {folder} holds {actual_title}'s files, not {title}'s (checked by checksum); "
            f"{where}, each as <root>/{name}/, torchvision's <root>/<Class>/raw/ or <root> itself (`aebench "
            f"datasets` shows where); for these files use --dataset {actual}, or --dataset idx:{folder} for IDX "
            "files of your own"
        )
        self.name, self.folder, self.actual, self.data_dir = name, folder, actual, data_dir


class StoreError(AebenchError):
    """The results store cannot be used (not an aebench store, corrupt, unwritable)."""

    exit_code = 2


class Unwritable(BadInput):
    """A place aebench would write to (a results folder, a report's folder) is a file, or cannot be written."""


class NoSpace(AebenchError):
    """The disk filled up while aebench wrote `path`; what was written before it is intact."""

    def __init__(self, path: object) -> None:
        super().__init__(f"no space left on device writing {path}")
        self.path = path


def no_space(exc: BaseException, path: object = None) -> NoSpace | None:
    """`exc` as a NoSpace when it says the disk is full (ENOSPC, EDQUOT, SQLite's SQLITE_FULL), else None.

    `path` names what was being written where the error does not (SQLite's errors name no file).
    """
    if isinstance(exc, NoSpace):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(exc.filename or path or "a file")
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return NoSpace(path or "the results store")
    return None


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
