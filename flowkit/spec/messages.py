"""Wording shared by every check, so the same thing is always said the same way."""

from __future__ import annotations

import difflib
from typing import Any, Iterable


def dotted(path: Iterable[Any]) -> str:
    """`agents.trader.inputs[0]`: how messages name a place in the file."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def closest(word: str, options: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(word: str, options: Iterable[str]) -> str:
    """` (did you mean 'x'?)`, or nothing when no option is close."""
    close = closest(word, options)
    return f" (did you mean '{close}'?)" if close else ""


def and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe(value: Any) -> str:
    """A value as a message quotes it: short, and in YAML's words."""
    if isinstance(value, str):
        text = value if value.isprintable() else repr(value)[1:-1]  # show "\n", not a line break
        return f"'{text}'" if len(text) < 40 else f"'{text[:37]}...'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))  # 1000000000000, not 1000000000000.0
    return str(value)
