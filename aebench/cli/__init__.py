"""The `aebench` command line: parsing (`options`), the commands (`app`), and what they print (`render`, `progress`)."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """`aebench.cli:main`, the entry point of installs made before the CLI became a package; the same as
    `aebench.cli.app:main`, which pyproject names now."""
    # deferred: importing `aebench.cli.render` or `options` alone must not build the Typer app
    from aebench.cli.app import main as run

    run(argv)
