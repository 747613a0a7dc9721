"""How the report writes values: numbers, money, quantities, times and JSON."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_OUTPUT_CHARS = 20_000  # one step's output in the drill-down; keeps huge runs openable


def cell(value: Any, kind: str) -> tuple[str, str]:
    v = num(value)
    sign = " pos" if v > 0 else " neg" if v < 0 else ""  # NaN compares False: no colour
    return fmt(v, kind), "num" + (sign if kind in ("spct", "spp") else "")


def fmt(value: Any, kind: str) -> str:
    v = num(value)
    if not math.isfinite(v):
        return "—"
    return {"pct": f"{v * 100:.2f}%", "spct": f"{v * 100:+.2f}%", "spp": f"{v * 100:+.2f} pp",
            "ratio": f"{v:.2f}",
            "int": f"{v:,.0f}", "money": f"{v:,.2f}"}[kind]


def usd(v: float) -> str:
    return f"${v:,.4f}"


def qty(v: Any) -> str:
    v = num(v)
    return "—" if not math.isfinite(v) else f"{v:,.0f}" if v == int(v) else f"{v:,.6g}"


def duration(ms: Any) -> str:
    v = num(ms)
    return "—" if not math.isfinite(v) else f"{v:.0f} ms" if v < 1000 else f"{v / 1000:.1f} s"


def stamp(t: Any) -> str:
    if t is None:
        return "—"
    s = str(utc(t)).replace("T", " ")
    return s.removesuffix(" 00:00:00")


def day(t: np.datetime64 | None) -> str:
    return "—" if t is None else str(np.asarray(t, dtype="datetime64[D]"))


def num(v: Any) -> float:
    return math.nan if v is None else float(v)


def loads(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def pretty(text: Any) -> str:
    if text is None:
        return ""
    try:
        s = json.dumps(loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON: show it as it is
        s = str(text)
    if len(s) > MAX_OUTPUT_CHARS:
        s = s[:MAX_OUTPUT_CHARS] + f"\n… truncated ({len(s):,} characters in the event log)"
    return s


def series(points: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """[[time, value], ...] -> (datetime64[s] array, float array)."""
    t = np.array([utc(p[0]) for p in points], dtype="datetime64[s]")
    return t, np.array([num(p[1]) for p in points], dtype=float)


def utc(t: Any) -> np.datetime64:
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))  # 3.10 rejects a bare Z
    if isinstance(t, dt.datetime) and t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return np.datetime64(t, "s")
