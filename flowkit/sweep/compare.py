"""From cell records to the comparison a reviewer reads: each variant's metrics across cells,
paired differences against buy-and-hold and between variants on the same cells, the deflated
Sharpe ratio over every variant tried, cost and calls, and the warnings the evidence owes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from flowkit.sweep import stats
from flowkit.sweep.cutoff import SIDES
from flowkit.sweep.stats import Estimate, SharpeTest

BUY_AND_HOLD = "buy-and-hold"


@dataclass
class VariantResult:
    name: str
    cells: int
    failed: int
    metrics: dict[str, Estimate]                  # metric -> across cells
    vs_buy_and_hold: dict[str, Estimate]          # metric -> paired (variant - buy-and-hold)
    values: dict[str, list[float | None]]         # metric -> per cell, for plots
    sharpe_test: SharpeTest | None
    model_calls: float                            # summed over cells
    cost_usd: float
    decisions: float


@dataclass
class Comparison:
    metrics: list[str]
    variants: list[VariantResult]
    buy_and_hold: dict[str, Estimate]
    pairs: list[tuple[str, str, dict[str, Estimate]]]   # (a, b, metric -> paired a - b)
    seeds: int
    windows: int
    warnings: list[str] = field(default_factory=list)
    # (variant, side of the knowledge cutoff, metric -> paired variant - buy-and-hold on those
    # cells): is an edge still there on windows the models cannot have seen?
    by_cutoff: list[tuple[str, str, dict[str, Estimate]]] = field(default_factory=list)


def _key(record: dict[str, Any]) -> tuple:
    """What makes two variants' cells comparable: the same symbols, window and seed."""
    cell = record["cell"]
    return tuple(cell["symbols"]), cell["start"], cell["end"], cell["seed"]


def _by_date(cells: list[list[list[Any]]]) -> list[float]:
    """A variant's return series: one return per decision time, the mean over its cells trading
    then. Cells that run side by side (other symbols, other seeds of a window) move together,
    so they count as one observation of the variant, not as independent evidence; pooling
    them would inflate the deflated Sharpe ratio's n."""
    by_time: dict[str, list[float]] = {}
    for returns in cells:
        for t, r in returns:
            by_time.setdefault(t, []).append(r)
    return [sum(rs) / len(rs) for _, rs in sorted(by_time.items())]


def compare(records: list[dict[str, Any]], metrics: list[str],
            sides: dict[str, str] | None = None) -> Comparison:
    """`sides`: cell id -> its side of the models' knowledge cutoff (flowkit.sweep.cutoff),
    to split each variant's results by it."""
    by_variant: dict[str, dict[tuple, dict[str, Any]]] = {}
    for r in records:
        by_variant.setdefault(r["cell"]["variant"], {})[_key(r)] = r
    keys = sorted({_key(r) for r in records}, key=str)
    ok = {v: {k: r for k, r in cells.items() if r["status"] == "completed"}
          for v, cells in by_variant.items()}

    def column(variant: str, metric: str, side: str = "metrics",
               only: str | None = None) -> list[float | None]:
        return [ok[variant][k][side].get(metric) if k in ok[variant]
                and (only is None or (sides or {}).get(ok[variant][k]["cell"]["id"]) == only)
                else None for k in keys]

    deflated = stats.deflate({v: _by_date([ok[v][k]["returns"] for k in keys if k in ok[v]])
                              for v in by_variant})
    variants = []
    for v, cells in by_variant.items():
        done = ok[v].values()
        variants.append(VariantResult(
            v, len(cells), len(cells) - len(ok[v]),
            {m: stats.summarize(column(v, m)) for m in metrics},
            {m: stats.paired(column(v, m), column(v, m, "buy_and_hold")) for m in metrics},
            {m: column(v, m) for m in metrics}, deflated.get(v),
            sum(r["metrics"].get("model_calls") or 0 for r in done),
            sum(r["metrics"].get("cost_usd") or 0.0 for r in done),
            sum(r["metrics"].get("decisions") or 0 for r in done)))
    # Buy-and-hold on each cell's symbols and window (any variant's copy: they are the same).
    hold = {k: ok[v][k]["buy_and_hold"] for v in ok for k in ok[v]}
    baseline = {m: stats.summarize([hold[k].get(m) if k in hold else None for k in keys])
                for m in metrics}
    pairs = [(a, b, {m: stats.paired(column(a, m), column(b, m)) for m in metrics})
             for a, b in itertools.combinations(by_variant, 2)]
    seeds = len({k[3] for k in keys})
    windows = len({(k[1], k[2]) for k in keys})
    out = Comparison(metrics, variants, baseline, pairs, seeds, windows)
    for v in by_variant:
        present = {sides.get(r["cell"]["id"]) for r in ok[v].values()} if sides else set()
        out.by_cutoff += [(v, s, {m: stats.paired(column(v, m, only=s),
                                                  column(v, m, "buy_and_hold", only=s))
                                  for m in metrics}) for s in SIDES if s in present]
    thin = stats.thin_evidence(seeds, windows)
    if thin:
        out.warnings.append(thin)
    failed = sum(v.failed for v in variants)
    if failed:
        out.warnings.append(f"{failed} cell{'s' * (failed != 1)} failed and are left out of the "
                            f"statistics; re-run the sweep to retry them")
    return out


def _num(x: float, pct: bool) -> str:
    if x != x:  # NaN
        return "–"
    return f"{x * 100:+.2f}%" if pct else f"{x:+.3f}"


PERCENT = {"cumulative_return", "annual_return", "annual_volatility", "max_drawdown",
           "win_rate", "exposure"}


def cell_text(e: Estimate, metric: str) -> str:
    """`mean ± se [low, high]`, with a star when the interval excludes zero."""
    pct = metric in PERCENT
    if e.n == 0:
        return "–"
    se = "" if e.stderr != e.stderr else f" ± {_num(e.stderr, pct).lstrip('+')}"
    star = " *" if e.excludes_zero else ""
    return f"{_num(e.mean, pct)}{se} [{_num(e.low, pct)}, {_num(e.high, pct)}]{star}"


Table = tuple[str, list[str], list[list[str]]]   # title, header, rows


def tables(c: Comparison) -> list[Table]:
    """The comparison as the terminal shows it: metrics, paired differences, cost and the DSR."""
    rows = [[v.name, str(v.cells - v.failed), *(cell_text(v.metrics[m], m) for m in c.metrics)]
            for v in c.variants]
    rows.append([BUY_AND_HOLD, str(max((e.n for e in c.buy_and_hold.values()), default=0)),
                 *(cell_text(c.buy_and_hold[m], m) for m in c.metrics)])
    out = [("mean ± std. error [95% bootstrap CI] across cells", ["variant", "cells", *c.metrics],
            rows)]
    rows = [[f"{v.name} − {BUY_AND_HOLD}", *(cell_text(v.vs_buy_and_hold[m], m) for m in c.metrics)]
            for v in c.variants]
    rows += [[f"{a} − {b}", *(cell_text(d[m], m) for m in c.metrics)] for a, b, d in c.pairs]
    out.append(("paired differences on the same cells (* = the 95% CI excludes zero)",
                ["difference", *c.metrics], rows))
    rows = [[v.name, f"{v.model_calls:.0f}", f"{v.model_calls / max(v.decisions, 1):.1f}",
             f"${v.cost_usd:.4f}",
             "–" if v.sharpe_test is None or v.sharpe_test.deflated != v.sharpe_test.deflated
             else f"{v.sharpe_test.deflated:.3f}"] for v in c.variants]
    out.append((f"cost, and the deflated Sharpe ratio over {len(c.variants)} variants tried "
                f"(P[true Sharpe > 0])",
                ["variant", "model calls", "calls/decision", "cost", "deflated SR"], rows))
    if c.by_cutoff:
        rows = [[v, s, str(max((e.n for e in d.values()), default=0)),
                 *(cell_text(d[m], m) for m in c.metrics)] for v, s, d in c.by_cutoff]
        out.append((f"variant − {BUY_AND_HOLD} on the same cells, split by whether the window "
                    f"starts after the models' knowledge cutoff (before: a model may have seen "
                    f"what happened; n/a: the offline model)",
                    ["variant", "window vs cutoff", "cells", *c.metrics], rows))
    return out
