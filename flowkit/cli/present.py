"""What the commands print: the decision table, or the metrics next to the baselines; tables."""

from __future__ import annotations

import math
from typing import Any, TextIO

_ROWS = [("cumulative_return", "cumulative return", "pct"), ("annual_return", "annual return", "pct"),
         ("annual_volatility", "annual volatility", "share"), ("sharpe", "Sharpe", "num"),
         ("sortino", "Sortino", "num"), ("max_drawdown", "max drawdown", "pct"),
         ("calmar", "Calmar", "num"), ("num_trades", "trades (round trips)", "int"),
         ("win_rate", "win rate", "share"), ("profit_factor", "profit factor", "num"),
         ("turnover", "turnover (x/yr)", "num"), ("exposure", "avg exposure", "share"),
         ("final_equity", "final equity", "money")]
_BASELINES = ("buy_and_hold", "sma_crossover", "macd")


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "pct":  # a return: signed
        return f"{100 * value:+.2f}%"
    if kind == "pp":  # a difference of two returns: percentage points
        return f"{100 * value:+.2f} pp"
    if kind == "share":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value)}"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:.3f}"


def outcome(o: Any, inv: Any, out: TextIO) -> None:
    if not inv.start:
        if o.decisions:
            decisions(o, out)
    else:
        metrics(o, out)
    for w in o.warnings if not inv.start else []:
        out.write(f"warning: {w}\n")
    if o.estimate is not None and o.spent is not None:
        against(o.estimate, o.spent, out)
    status = "" if o.status == "completed" else f" ({o.status}: {o.error})"
    out.write(f"\nrun {o.run_id} logged{status}. See it with: flowkit show {o.run_id}\n")


def _spend(s: Any) -> list[str]:
    return [f"{s.calls:,}", f"{s.prompt_tokens:,}", f"{s.completion_tokens:,}",
            f"${s.cost_usd:.4f}"]


def _decisions(n: int) -> str:
    return f"{n} decision{'' if n == 1 else 's'}"


def estimate(e: Any, out: TextIO) -> None:
    """`run --estimate`: per decision, the bound with re-asks, and the whole window."""
    out.write(table(["", "calls", "prompt tokens", "completion tokens", "cost"], [
        ["per decision", *_spend(e.per_decision)],
        ["  at most (re-asks, max_tokens)", *_spend(e.at_most)],
        [f"whole window ({_decisions(e.decisions)})", *_spend(e.window)],
        ["  at most", *_spend(e.at_most.times(e.decisions))]]) + "\n")
    for note in e.notes:
        out.write(f"note: {note}\n")
    out.write("estimate only: no model was called and nothing was logged\n")


def against(e: Any, spent: Any, out: TextIO) -> None:
    """After a run with real models: the estimate next to what the run spent."""
    out.write("\n" + table(["spend", "calls", "prompt tokens", "completion tokens", "cost"], [
        [f"estimated ({_decisions(e.decisions)})", *_spend(e.window)],
        ["actual", *_spend(spent)]]) + "\n")


def decisions(o: Any, out: TextIO) -> None:
    orders = {r["symbol"]: r for r in o.orders}
    fills = {f["symbol"]: f for f in o.fills}
    rows = []
    for d, review in zip(o.decisions, o.reviews):
        order = orders.get(d.symbol)
        if order is None:
            what = "none"
        elif d.symbol in fills:
            f = fills[d.symbol]
            what = f"{f['side']} {f['quantity']:g} filled @ {f['price']:.2f}"
        else:
            what = f"{order['side']} {order['quantity']:g} · {order['status']} (fills at next open)"
        verdict = review["verdict"] + (f" ({review['rule']})" if review.get("rule") else "")
        rows.append([d.symbol, d.as_of[:10], d.action, f"{d.size_pct:.1f}%", f"{d.confidence:.2f}",
                     verdict, what])
    out.write("\n" + table(["symbol", "as of", "action", "size", "confidence", "risk engine", "order"],
                           rows) + "\n")
    for d in o.decisions:
        out.write(f"\n{d.symbol} — {d.agent}: {d.reasoning}\n")


def metrics(o: Any, out: TextIO) -> None:
    if not o.metrics:
        return
    names = ["firm", *[b for b in _BASELINES if b in o.baselines]]
    cols = [o.metrics, *[o.baselines[b] for b in names[1:]]]
    rows = [[label, *[_fmt(c.get(key), kind) for c in cols]] for key, label, kind in _ROWS]
    out.write("\n" + table(["metric", *[n.replace("_", " ") for n in names]], rows) + "\n")
    m = o.metrics
    out.write(f"\nannualised with {m['periods_per_year']} periods a year ({m['annualisation']})\n")
    out.write(f"excess return vs buy-and-hold: "
              f"{_fmt(m['excess_return_vs_buy_and_hold'], 'pp')} (percentage points) · "
              f"{m['decisions']} decisions · {m['model_calls_per_decision']:.1f} model calls, "
              f"{m['tokens_per_decision']:.0f} tokens, ${m['cost_per_decision_usd']:.5f} per decision\n")
    for w in o.warnings:
        out.write(f"warning: {w}\n")


def side_by_side(outcomes: list[Any], differences: list[str], out: TextIO) -> None:
    """The firms' metrics in one table, a column per run; then what differs between the runs,
    each run's warnings, and where its log is."""
    rows = [[label, *[_fmt(o.metrics.get(key), kind) for o in outcomes]]
            for key, label, kind in [*_ROWS, ("excess_return_vs_buy_and_hold",
                                              "excess vs buy-and-hold (pp)", "pp")]]
    out.write("\n" + table(["metric", *[o.run_id for o in outcomes]], rows) + "\n")
    for note in differences:
        out.write(f"note: {note}\n")
    for o in outcomes:
        for w in o.warnings:
            out.write(f"warning: {o.run_id}: {w}\n")
        status = "" if o.status == "completed" else f" ({o.status}: {o.error})"
        out.write(f"run {o.run_id} logged{status}. See it with: flowkit show {o.run_id}\n")


def seeds(outcomes: list[Any], out: TextIO) -> None:
    """Mean ± standard error across seeds for the headline metrics."""
    import statistics

    done = [o for o in outcomes if o.metrics]
    if len(done) < 2:
        return
    rows = []
    headline = [*_ROWS[:7], ("excess_return_vs_buy_and_hold", "excess return vs buy-and-hold", "pp"),
                ("final_equity", "final equity", "money")]
    for key, label, kind in headline:
        values = [o.metrics[key] for o in done if not math.isnan(o.metrics.get(key, math.nan))]
        if len(values) < 2:
            continue
        mean, se = statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))
        rows.append([label, _fmt(mean, kind), _fmt(se, kind).lstrip("+")])
    out.write(f"\nacross {len(done)} seeds:\n" + table(["metric", "mean", "± std. error"], rows) + "\n")


def duration(seconds: float) -> str:
    """A time left as a person reads it: 4m07s, 2h05m."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{secs:02d}s"


def table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(cells[0]), fmt(["─" * w for w in widths])] + [fmt(r) for r in cells[1:]])
