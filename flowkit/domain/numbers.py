"""Reading numbers from untrusted values: what counts as a number and as a price."""

from __future__ import annotations

import math


def finite_number(value: object) -> float | None:
    """`value` as a float if it is a finite real number (booleans are not), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def usable_price(value: object) -> float | None:
    """`value` as a price if it is a finite positive number, else None."""
    number = finite_number(value)
    return number if number is not None and number > 0 else None
