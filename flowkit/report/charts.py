"""The report's charts: inline SVG line charts (no scripts, no fonts) and the PNG equity chart
(matplotlib's Agg canvas)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowkit.report.fmt import qty, stamp, utc

BUY, SELL = "#16a34a", "#dc2626"

@dataclass
class Curve:
    name: str
    t: np.ndarray  # datetime64[s]
    y: np.ndarray
    color: str
    dash: str = "solid"
    width: float = 1.5

    def drawdown(self) -> Curve:
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = self.y / np.maximum.accumulate(self.y) - 1 if len(self.y) else self.y
        return Curve(self.name, self.t, dd, self.color, self.dash, self.width)


_W, _H = 960, 300
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 70, 18, 14, 30
_DASHES = {"solid": "", "dashed": ' stroke-dasharray="6 4"'}


def chart(chart_id: str, title: str, curves: Sequence[Curve], kind: str, *,
           markers: Sequence[Mapping[str, Any]] = (), area: Curve | None = None,
           legend_extra: Sequence[tuple[str, str, str]] = ()) -> dict[str, Any]:
    """A chart section for the template: legend entries plus the inline SVG. `area` (one of
    `curves`) is shaded down to zero, as the firm's drawdown is."""
    from markupsafe import Markup

    return {"id": chart_id, "title": title,
            "legend": [(c.name, c.color, c.dash) for c in curves] + list(legend_extra),
            "svg": Markup(_svg(curves, kind, markers, area)), "notes": []}


def _svg(curves: Sequence[Curve], kind: str, markers: Sequence[Mapping[str, Any]],
         area: Curve | None) -> str:
    from markupsafe import escape

    xs = [epoch(c.t) for c in curves]
    mx = epoch(np.array([utc(m["time"]) for m in markers], "datetime64[s]"))
    my = np.array([m["price"] for m in markers], float)
    all_x = np.concatenate([*xs, mx])
    all_y = np.concatenate([*(c.y for c in curves), my, [0.0] if area is not None else []])
    all_y = all_y[np.isfinite(all_y)]
    if not len(all_x) or not len(all_y):
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} 60" role="img">'
                '<text x="12" y="34" fill="#64748b" font-size="13">No data recorded.</text>'
                "</svg>")
    x0, x1 = all_x.min(), all_x.max()
    if x1 == x0:
        x0, x1 = x0 - 43_200, x1 + 43_200
    yticks, ystep = _nice_ticks(float(all_y.min()), float(all_y.max()))
    y0, y1 = yticks[0], yticks[-1]
    pw, ph = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def px(x: Any) -> Any:
        return _PAD_L + (x - x0) / (x1 - x0) * pw

    def py(y: Any) -> Any:
        return _PAD_T + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" role="img" '
             'font-size="11">']
    for v in yticks:
        gy = py(v)
        grid = "#94a3b8" if v == 0 and y0 < 0 else "#e2e8f0"  # a darker zero line
        parts.append(f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{gy:.1f}" y2="{gy:.1f}" '
                     f'stroke="{grid}"/><text x="{_PAD_L - 8}" y="{gy + 4:.1f}" '
                     f'text-anchor="end" fill="#64748b">{_tick_label(v, ystep, kind)}</text>')
    for tick, label in _time_ticks(x0, x1):
        tx = px(tick)
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{_PAD_T}" y2="{_H - _PAD_B}" '
                     f'stroke="#f1f5f9"/><text x="{tx:.1f}" y="{_H - _PAD_B + 18}" '
                     f'text-anchor="middle" fill="#64748b">{label}</text>')
    parts.append(f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{pw}" height="{ph}" fill="none" '
                 'stroke="#cbd5e1"/>')
    if area is not None and len(area.y):
        ax = px(epoch(area.t))
        parts.append(f'<path class="area" d="{_path(ax, py(np.nan_to_num(area.y)))} '
                     f'L{ax[-1]:.1f},{py(0.0):.1f} L{ax[0]:.1f},{py(0.0):.1f} Z" '
                     f'fill="{area.color}" fill-opacity="0.12" stroke="none"/>')
    for c, x in zip(curves, xs, strict=True):
        if len(c.y):
            parts.append(f'<path class="series" data-name="{escape(c.name)}" '
                         f'd="{_path(px(x), py(c.y))}" fill="none" stroke="{c.color}" '
                         f'stroke-width="{c.width}" stroke-linejoin="round"{_DASHES[c.dash]}>'
                         f"<title>{escape(c.name)}</title></path>")
    for m, x, y in zip(markers, px(mx), py(my), strict=True):
        buy = m["side"] == "buy"  # a triangle pointing at the fill price
        shape = f"M{x:.1f},{y:.1f} l-5,{9 if buy else -9} h10 z"
        tip = (f"{m['side']} {qty(m['quantity'])} {m['symbol']} @ {m['price']:,.2f} on "
               f"{stamp(m['time'])} (fee {m['fee'] or 0:,.2f})")
        parts.append(f'<path class="fill-marker {escape(m["side"])}" d="{shape}" '
                     f'fill="{BUY if buy else SELL}" stroke="#fff" stroke-width="0.8">'
                     f"<title>{escape(tip)}</title></path>")
    parts.append("</svg>")
    return "".join(parts)


def _path(x: np.ndarray, y: np.ndarray) -> str:
    """SVG path data; non-finite values break the line."""
    out, pen = [], "M"
    for a, b in zip(x, y, strict=True):
        if math.isfinite(a) and math.isfinite(b):
            out.append(f"{pen}{a:.1f},{b:.1f}")
            pen = "L"
        else:
            pen = "M"
    return " ".join(out)


def _nice_ticks(lo: float, hi: float, target: int = 5) -> tuple[list[float], float]:
    """Round-numbered ticks (steps of 1, 2, 2.5 or 5 x 10^k) framing [lo, hi], and the step."""
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        pad = abs(hi) * 0.01 or 0.01
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [k * step for k in range(math.floor(lo / step), math.ceil(hi / step) + 1)], step


def _tick_label(v: float, step: float, kind: str) -> str:
    if kind == "pct":
        return f"{v * 100:.{_decimals(step * 100)}f}%"
    if kind == "money" and max(abs(v), step) >= 1e4:
        scale, suffix = (1e6, "M") if max(abs(v), step) >= 1e6 else (1e3, "k")
        return f"{v / scale:,.{_decimals(step / scale)}f}{suffix}"
    return f"{v:,.{_decimals(step)}f}"


def _decimals(step: float) -> int:
    """Decimals that show a tick step exactly (0.25 -> 2, 5 -> 0)."""
    d = max(0, -math.floor(math.log10(step) + 1e-9))
    return d + (abs(round(step * 10**d) - step * 10**d) > 1e-6)


def _time_ticks(x0: float, x1: float, most: int = 8) -> list[tuple[float, str]]:
    """Calendar-aligned ticks (years, months, Mondays, days or hours) for the span, thinned."""
    span, day = x1 - x0, 86_400
    unit = ("Y" if span > 3 * 365 * day else "M" if span > 240 * day else "D" if span > 3 * day
            else "h")
    lo = np.datetime64(int(x0), "s").astype(f"datetime64[{unit}]")
    hi = np.datetime64(int(x1), "s").astype(f"datetime64[{unit}]")
    ticks = np.arange(lo, hi + 1).astype("datetime64[s]")
    ticks = ticks[(epoch(ticks) >= x0) & (epoch(ticks) <= x1)]
    if unit == "D" and span > 20 * day:
        ticks = ticks[(ticks.astype("datetime64[D]").astype("int64") + 3) % 7 == 0]  # Mondays
    ticks = ticks[:: max(1, math.ceil(len(ticks) / most))]
    out = []
    for k, t in enumerate(ticks):
        w = t.astype(dt.datetime)
        label = {"Y": f"{w:%Y}", "M": f"{w:%b}", "D": f"{w:%b} {w.day}",
                 "h": f"{w:%b} {w.day} {w:%H:%M}"}[unit]
        if unit == "M" and (w.month == 1 or k == 0):
            label += f" {w:%Y}"
        out.append((float(epoch(t)), label))
    return out


def epoch(t: np.ndarray | np.datetime64) -> np.ndarray:
    return np.asarray(t, dtype="datetime64[s]").astype("int64").astype(float)


def write_png(path: Path, curves: Sequence[Curve], title: str) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure  # no pyplot: an Agg canvas, no global backend state
    from matplotlib.ticker import StrMethodFormatter

    fig = Figure(figsize=(10, 4.2), dpi=120, layout="constrained")
    ax = fig.subplots()
    for c in curves:
        ax.plot(c.t.astype(dt.datetime), c.y, label=c.name, color=c.color,
                linewidth=c.width * 0.8, linestyle="--" if c.dash == "dashed" else "-")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylabel("Equity")
    ax.grid(True, color="#e2e8f0", linewidth=0.8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=9)
    fig.savefig(path, facecolor="white")
