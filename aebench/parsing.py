"""Comma lists from the command line (`--latent-dims 2,16,32`) as checked tuples, shared by the CLI and tests."""

from __future__ import annotations

from collections.abc import Iterable

from aebench.errors import BadInput
from aebench.numbers import check_choice, check_number


def split_list(flag: str, text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise BadInput(f"{flag}: {text!r} is not a comma list of values")
    return items


def parse_choices(flag: str, text: str, allowed: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(check_choice(flag, v, allowed) for v in split_list(flag, text)))


def parse_ints(flag: str, text: str, low: int = 1) -> tuple[int, ...]:
    values = []
    for item in split_list(flag, text):
        try:
            value = int(item)
        except ValueError:
            raise BadInput(f"{flag}: {item!r} is not a whole number") from None
        check_number(flag, value, low=low)
        values.append(value)
    return tuple(dict.fromkeys(values))


def parse_floats(flag: str, text: str) -> tuple[float, ...]:
    values = []
    for item in split_list(flag, text):
        try:
            values.append(float(item))
        except ValueError:
            raise BadInput(f"{flag}: {item!r} is not a number") from None
    return tuple(dict.fromkeys(values))
