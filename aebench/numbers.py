"""The two checks every option goes through: one of the allowed choices, or a number within its bounds; each
refusal is one line naming the flag and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable

from aebench.errors import BadInput


def check_choice(flag: str, value: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise BadInput(f"{flag}: unknown value {value!r}; choose from: {', '.join(allowed)}")
    return value


def check_number(flag: str, value: float, *, low: float, low_open: bool = False, high: float | None = None) -> None:
    bad = not math.isfinite(value) or value < low or (low_open and value == low)
    bad = bad or (high is not None and value >= high)
    if bad:
        bound = f"> {low}" if low_open else f">= {low}"
        if high is not None:
            bound += f" and < {high}"
        raise BadInput(f"{flag}: {value} is not allowed; it must be {bound}")
