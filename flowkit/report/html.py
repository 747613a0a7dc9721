"""Self-contained HTML reports (and a PNG equity chart) read from the event log alone, through
flowkit.store.RunStore (so a report waits out a run that is writing the same file).

The HTML has no external scripts, fonts or requests: charts are inline SVG drawn here, and a
few lines of inline JS open the per-decision drill-down (``report.html.j2`` is the page).

What a report reads
-------------------
- ``runs``, ``model_calls`` (calls, tokens, cost), ``portfolio`` (the firm's equity curve:
  ``time``, ``equity``, ``gross_exposure``), ``fills``, ``decisions``, ``risk_reviews``,
  ``orders`` and ``steps`` of the run.
- ``metrics`` rows with ``symbol`` NULL, one per strategy:

  - ``firm``: the firm's `compute_metrics` dict, optionally with ``"warnings": [str, ...]``
    (shown instead of `flag_suspect`'s) and ``"annualisation"``, why ``periods_per_year`` is
    what it is. When the row is missing (a run that stopped early) the report computes it from
    ``portfolio`` and ``fills``, with ``backtest.periods_per_year`` (default: measured from the
    snapshot times) and ``backtest.risk_free_rate`` from ``runs.config``.
  - ``buy_and_hold``, ``sma_crossover``, ``macd`` (any other name is shown too): the metrics
    plus ``"equity": [[iso_time, value], ...]``, the baseline's curve at the decision times
    (`BaselineResult.to_json`).
- ``metrics`` rows with strategy ``prices``, one per symbol: ``{"close": [[iso_time, close],
  ...]}``, each bar's close stamped at its close time, for the trades-on-price chart (clipped
  to the run's window). A ``prices`` argument replaces them.

Times are ISO 8601 in UTC (a ``Z`` suffix or an offset is accepted); JSON null reads as NaN.
`flowkit.backtest.evaluate` writes these rows at the end of a backtest.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from flowkit.backtest.metrics import (compute_metrics, flag_suspect, measured_periods_per_year,
                                      round_trips)
from flowkit.memory import describe_beliefs
from flowkit.report.charts import Curve, chart, write_png
from flowkit.report.fmt import (cell, day, duration, fmt, loads, num, pretty, qty, series, stamp,
                                usd, utc)
from flowkit.store.runstore import RunStore

Db: TypeAlias = "str | Path | RunStore"  # or an open DuckDB connection: see RunStore.of
PriceSeries: TypeAlias = Mapping[str, Sequence[tuple[Any, float]]]  # symbol -> [(time, close)]

LABELS = {"firm": "Firm", "buy_and_hold": "Buy & hold", "sma_crossover": "SMA crossover",
          "macd": "MACD"}
COLORS = {"firm": "#2563eb", "buy_and_hold": "#475569", "sma_crossover": "#d97706",
          "macd": "#059669"}
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777",
           "#4d7c0f")
BUY, SELL = "#16a34a", "#dc2626"
_STRATEGY_ORDER = ("firm", "buy_and_hold", "sma_crossover", "macd")

# (key, label, format); formats: pct, spct (signed, coloured), spp (the same, in percentage
# points: a difference of two returns), ratio, int, money
METRIC_ROWS = (
    ("cumulative_return", "Total return", "spct"),
    ("annual_return", "Annual return (CAGR)", "spct"),
    ("annual_mean_return", "Annual mean return (arithmetic)", "spct"),
    ("annual_volatility", "Annual volatility", "pct"),
    ("sharpe", "Sharpe ratio", "ratio"),
    ("sortino", "Sortino ratio", "ratio"),
    ("downside_risk", "Downside risk (annual)", "pct"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("calmar", "Calmar ratio", "ratio"),
    ("num_trades", "Closed trades", "int"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"),
    ("turnover", "Annual turnover (multiple of equity)", "ratio"),
    ("exposure", "Average gross exposure", "pct"),
    ("final_equity", "Final equity", "money"),
    ("periods", "Periods", "int"),
    ("periods_per_year", "Periods per year (annualisation)", "int"),
)
_CONVENTIONS = ("Simple returns per decision period; annual return is geometric (CAGR); Sharpe "
                "and Sortino use the per-period risk-free rate and the sample std (ddof=1); max "
                "drawdown is a negative fraction; trade statistics are over closed round trips "
                "net of fees. '—' means undefined (e.g. no losing trade, flat equity).")


# ---------------------------------------------------------------- public API


def write_report(db: Db, run_id: str, out_html: Path, *, png: Path | None = None,
                 prices: PriceSeries | None = None) -> Path:
    """Write the report of one run to `out_html` (its equity chart to `png`); return the path.

    `db` is an event log file, a RunStore or an open connection (see RunStore.of); a run it
    does not hold raises RunNotFound. `prices` replaces the stored close series of the price
    charts."""
    with RunStore.of(db) as store:  # one consistent view, released before rendering
        run = _load_run(store, run_id, prices)
        decisions = _load_decisions(store, run_id)
        risk = _risk_chart(store.risk_state(run_id))
    invalid = sum(d["status"] == "invalid" for d in decisions)
    drawdowns = [c.drawdown() for c in run.curves]
    charts = [
        chart("equity", "Equity: firm vs baselines", run.curves, "money"),
        chart("drawdown", "Drawdown from peak", drawdowns, "pct", area=drawdowns[0]),
        *risk,
    ]
    lo, hi = run.window()
    for symbol, (t, close) in sorted(run.prices.items()):
        keep = (t >= lo) & (t <= hi) if lo is not None else np.ones(len(t), bool)
        charts.append(chart(
            f"price-{symbol}", f"{symbol}: close and the firm's fills",
            [Curve(f"{symbol} close", t[keep], close[keep], "#334155", width=1.4)], "price",
            markers=[f for f in run.fills if f["symbol"] == symbol],
            legend_extra=[("buy fill", BUY, "solid"), ("sell fill", SELL, "solid")]))
    names = list(run.strategies)
    table = _metrics_table([LABELS.get(n, n) for n in names], list(run.strategies.values()),
                           [run.strategies.get("buy_and_hold")] * len(names), lead=True,
                           baseline=[n != "firm" for n in names])
    computed = ("Firm metrics computed by the report from the portfolio table (no 'firm' row in "
                "metrics). ")
    table["note"] = (computed if run.firm_computed else "") + _annualisation(run.strategies["firm"]) \
        + _CONVENTIONS
    error = [f"Run error: {run.run['error']}"] if run.run.get("error") else []
    page = _render(
        title=f"{run.run['workflow_name']} — run {run_id}",
        subtitle=run.config.get("description") or f"flowkit {run.run['mode']} run",
        info=[*run.info(), ("Decisions", f"{len(decisions)} ({len(run.fills)} fills"
                                         + (f", {invalid} invalid, held" if invalid else "")
                                         + ")", "bad" if invalid else "")],
        alerts=error + [f"Firm: {f}" for f in _flags(run.strategies["firm"])],
        charts=charts, table=table, decisions=decisions)
    out_html = Path(out_html)
    out_html.write_text(page, encoding="utf-8")
    if png is not None:
        write_png(Path(png), run.curves, f"{run.run['workflow_name']} — {run_id}")
    return out_html


def write_comparison(db: Db, run_ids: Sequence[str], out_html: Path) -> Path:
    """Side-by-side report of several runs: equity curves overlaid, one metrics column per run."""
    if not run_ids:
        raise ValueError("write_comparison needs at least one run id")
    with RunStore.of(db) as store:
        runs = [_load_run(store, r, None) for r in run_ids]
    # Growth of 1: runs with different starting capital (or currency) share one axis.
    curves = [
        Curve(f"{r.run['workflow_name']} · {r.run['run_id']}", r.times,
               r.equity / r.equity[0] if len(r.equity) and r.equity[0] > 0 else r.equity,
               PALETTE[k % len(PALETTE)], width=1.8)
        for k, r in enumerate(runs)
    ]
    charts = [
        chart("equity", "Equity, normalised to 1.0 at the start", curves, "num"),
        chart("drawdown", "Drawdown from peak", [c.drawdown() for c in curves], "pct"),
    ]
    table = _metrics_table([r.run["run_id"] for r in runs], [r.strategies["firm"] for r in runs],
                           [r.strategies.get("buy_and_hold") for r in runs], lead=False,
                           baseline=[False] * len(runs))
    infos = [{k: v for k, v, _ in r.info()} for r in runs]
    header = [("Workflow", [r.run["workflow_name"] for r in runs]),
              *((k, [i[k] for i in infos])
                for k in ("Mode", "Status", "Window", "Model calls", "Tokens", "Cost"))]
    table["rows"] = [(k, [(v, "num") for v in vs]) for k, vs in header] + table["rows"]
    table["note"] = ("Excess return is each run's total return minus its own buy-and-hold, in "
                     "percentage points. " + "".join(
                         f"{r.run['run_id']}: {a}" for r in runs
                         if (a := _annualisation(r.strategies["firm"])))
                     + _CONVENTIONS)
    names = sorted({r.run["workflow_name"] for r in runs})
    page = _render(
        title=f"Comparison of {len(runs)} runs", subtitle=", ".join(names),
        info=[("Runs", ", ".join(run_ids), ""), ("Workflows", ", ".join(names), ""),
              ("Total cost", usd(sum(r.calls["cost"] for r in runs)), "")],
        alerts=_differences(runs)
        + [f"{r.run['run_id']}: {f}" for r in runs for f in _flags(r.strategies["firm"])],
        charts=charts, table=table, decisions=None)
    out_html = Path(out_html)
    out_html.write_text(page, encoding="utf-8")
    return out_html


def run_differences(db: Db, run_ids: Sequence[str]) -> list[str]:
    """What differs between the runs compared (symbols, frequency, capital, costs, window), one
    sentence per difference; empty when they share all of it."""
    with RunStore.of(db) as store:
        return _differences([_load_run(store, r, None) for r in run_ids])


def _differences(runs: Sequence[_Run]) -> list[str]:
    def setting(r: _Run) -> dict[str, str]:
        inv = (r.run["config"] or {}).get("invocation") or {}
        market, book = r.config.get("market") or {}, r.config.get("portfolio") or {}
        lo, hi = (r.times[0], r.times[-1]) if len(r.times) else (None, None)
        return {
            "symbols": ", ".join(sorted(inv.get("symbols") or market.get("symbols") or [])),
            "decision frequency": inv.get("every") or (r.config.get("backtest") or {})
            .get("every") or "1d",
            "bar size": market.get("timeframe", "1d"),
            "starting capital": f"{book.get('initial_cash', 0):,.2f} {book.get('currency', '')}"
            .rstrip(),
            "costs": f"fee {book.get('fee_bps')} bps, slippage {book.get('slippage_bps')} bps",
            "fills": str(book.get("fill")),
            "window": f"{day(lo)} → {day(hi)}",
        }

    settings = [setting(r) for r in runs]
    return [f"The runs differ in {what}: " + "; ".join(
                f"{r.run['run_id']} {s[what]}" for r, s in zip(runs, settings, strict=True))
            for what in settings[0] if len({s[what] for s in settings}) > 1]


# ---------------------------------------------------------------- loading


@dataclass
class _Run:
    run: dict[str, Any]
    config: dict[str, Any]
    times: np.ndarray
    equity: np.ndarray
    strategies: dict[str, dict[str, Any]]  # "firm" first, then the baselines
    firm_computed: bool
    prices: dict[str, tuple[np.ndarray, np.ndarray]]
    fills: list[dict[str, Any]]
    calls: dict[str, Any]
    curves: list[Curve] = field(init=False)  # the firm's, then each baseline's

    def __post_init__(self) -> None:
        self.curves = [Curve("Firm", self.times, self.equity, COLORS["firm"], width=2.4)]
        for k, (name, m) in enumerate(self.strategies.items()):
            if name != "firm" and m.get("equity"):
                self.curves.append(Curve(
                    LABELS.get(name, name), *series(m["equity"]),
                    COLORS.get(name, PALETTE[(k + 3) % len(PALETTE)]),
                    dash="dashed" if name == "buy_and_hold" else "solid"))

    def window(self) -> tuple[np.datetime64 | None, np.datetime64 | None]:
        ends = [c.t[[0, -1]] for c in self.curves if len(c.t)]
        ends += [np.array([utc(f["time"]) for f in self.fills], "datetime64[s]")]
        every = np.concatenate(ends)
        return (every.min(), every.max()) if len(every) else (None, None)

    def info(self) -> list[tuple[str, str, str]]:
        """(label, value, badge class) of the run's header."""
        r, c = self.run, self.calls
        lo, hi = self.window()
        window = "—" if lo is None else f"{day(lo)} → {day(hi)} ({len(self.times)} snapshots)"
        took = r["finished_at"] - r["started_at"] if r["finished_at"] and r["started_at"] else None
        symbols = (self.config.get("market") or {}).get("symbols") or sorted(self.prices)
        workflow = f"{r['workflow_path'] or '—'} ({(r['workflow_hash'] or '')[:12]})"
        return [
            ("Run", r["run_id"], ""), ("Status", r["status"] or "—", r["status"] or ""),
            ("Mode", r["mode"] or "—", ""), ("Window", window, ""),
            ("Symbols", ", ".join(symbols) or "—", ""),
            ("Beliefs", describe_beliefs((r["config"] or {}).get("beliefs")), ""),
            ("Model calls", f"{c['n']:,} ({c['cached']:,} cached)", ""),
            ("Tokens", f"{c['prompt'] + c['completion']:,} ({c['prompt']:,} prompt)", ""),
            ("Cost", usd(c["cost"]), ""), ("Models", c["models"] or "—", ""),
            ("Started", stamp(r["started_at"]), ""),
            ("Took", str(took).split(".")[0] if took is not None else "—", ""),
            ("Workflow file", workflow, ""),
            *([("Parent run", r["parent_run_id"], "")] if r.get("parent_run_id") else []),
            ("flowkit", r["flowkit_version"] or "—", ""),
        ]


def _load_run(store: RunStore, run_id: str, prices: PriceSeries | None) -> _Run:
    run = dict(store.run(run_id))
    config = run["config"]
    config = config.get("workflow", config)  # runs.config is {"workflow": ..., "invocation": ...}
    snaps = store.snapshots(run_id)
    times = np.array([s["time"] for s in snaps], dtype="datetime64[s]")
    equity = np.array([num(s["equity"]) for s in snaps], dtype=float)
    fills = [dict(f) for f in store.fills(run_id)]
    stored: dict[str, dict[str, Any]] = {}
    closes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for m in store.metrics(run_id):
        payload = m["metrics"] or {}
        if m["strategy"] == "prices" and m["symbol"]:
            closes[m["symbol"]] = series(payload.get("close") or [])
        elif m["symbol"] is None:
            stored[m["strategy"]] = {k: num(v) if v is None or isinstance(v, int | float) else v
                                     for k, v in payload.items()}
    if prices is not None:
        closes = {s: series(v) for s, v in prices.items()}
    firm_computed = "firm" not in stored
    if firm_computed:
        bt = config.get("backtest") or {}
        stored["firm"] = compute_metrics(
            equity, periods_per_year=bt.get("periods_per_year") or measured_periods_per_year(times)
            or 252,
            risk_free_rate=bt.get("risk_free_rate") or 0.0, trades=round_trips(fills),
            exposure=[num(s["gross_exposure"]) for s in snaps],
            turnover_notional=sum(f["quantity"] * f["price"] for f in fills))
        stored["firm"]["annualisation"] = "declared by backtest.periods_per_year" \
            if bt.get("periods_per_year") else "measured from the snapshot times"
    rank = {name: k for k, name in enumerate(_STRATEGY_ORDER)}
    strategies = {k: stored[k] for k in sorted(stored, key=lambda k: (rank.get(k, 99), k))}
    totals = store.call_totals(run_id)
    calls = {"n": totals.calls, "cached": totals.cached, "prompt": totals.prompt_tokens,
             "completion": totals.completion_tokens, "cost": totals.cost_usd,
             "models": ", ".join(totals.models)}
    return _Run(run, config, times, equity, strategies, firm_computed, closes, fills, calls)


def _load_decisions(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    """One entry per decision, with its risk review, orders and fills, and step transcript
    (agent steps of its symbol and time, plus firm-wide ones with no symbol)."""
    reviews = {(r["symbol"], r["as_of"]): r for r in store.risk_reviews(run_id)}
    fills = defaultdict(list)
    for f in store.fills(run_id):
        fills[f["order_id"]].append(f)
    orders = defaultdict(list)
    for o in store.orders(run_id):
        orders[(o["symbol"], o["as_of"])].append(o)
    steps = defaultdict(list)  # pattern nodes only when they failed: agents carry the transcript
    for s in store.steps(run_id):
        if s["agent"] is not None or (s["status"] or "ok") != "ok":
            steps[(s["symbol"], s["as_of"])].append(s)

    out = []
    for d in store.decisions(run_id):
        key = (d["symbol"], d["as_of"])
        lines, filled = [], []
        for o in orders.get(key, []):
            lines.append(f"{o['side']} {qty(o['quantity'])} {o['order_type']} ({o['reason']}): "
                         f"{o['status']}")
            for f in fills.get(o["order_id"], []):
                text = f"{f['side']} {qty(f['quantity'])} @ {f['price']:,.2f}"
                filled.append(text)
                lines.append(f"  filled {text} at {stamp(f['time'])}, fee {f['fee']:,.2f}, "
                             f"slippage {f['slippage']:,.2f}")
        review = reviews.get(key)
        reasoning = d["reasoning"] or ""
        out.append({
            "as_of": stamp(d["as_of"]), "symbol": d["symbol"], "agent": d["agent"],
            "action": (d["action"] or "—").upper(), "size": fmt(d["size_pct"], "ratio"),
            "target": fmt(d["target_weight"], "ratio"),
            "confidence": fmt(d["confidence"], "ratio"),
            "reasoning": reasoning, "status": d["status"] or "ok",
            "reasoning_short": reasoning if len(reasoning) <= 140 else reasoning[:137] + "…",
            "fill_summary": "; ".join(filled) or "—",
            "orders": lines,
            "review": review and {
                "verdict": review["verdict"], "rule": review["rule"],
                "requested": qty(review["requested_qty"]),
                "approved": qty(review["approved_qty"]), "details": pretty(review["details"]),
            },
            "steps": [{
                "agent": s["agent"] or s["pattern"], "role": s["role"] or s["pattern"] or "",
                "round": s["round"], "step_id": s["step_id"], "status": s["status"] or "ok",
                "duration": duration(s["duration_ms"]),
                "output": pretty(s["output"]) or s["error"] or "(no output)",
                "repairs": loads(s["repairs"]) or [],
            } for s in steps.get(key, []) + steps.get((None, d["as_of"]), [])],
        })
    return out


# ---------------------------------------------------------------- charts

def _risk_chart(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The risk state at each decision time (`risk_state`): CVaR and its reference, and below
    the chart every stretch the firm was risk-averse or halted, with the engine's reason (the
    drawdown instead of CVaR when the trigger is off). None for a run without risk states or
    with the trigger off that never halted."""
    averse, halted = sum(bool(r["risk_averse"]) for r in rows), sum(bool(r["halted"]) for r in rows)
    measured = [r for r in rows if r["cvar"] is not None]
    if not measured and not halted:
        return []
    t = np.array([utc(r["time"]) for r in measured or rows], dtype="datetime64[s]")
    curves = [Curve("CVaR", t, np.array([r["cvar"] for r in measured], float), "#dc2626"),
              Curve("reference (calmest recent CVaR)", t,
                     np.array([num(r["reference_cvar"]) for r in measured], float), "#475569",
                     "dashed")] if measured else \
        [Curve("drawdown", t, np.array([num(r["drawdown"]) for r in rows], float), "#dc2626")]
    notes = []
    for (is_averse, is_halted), group in itertools.groupby(
            rows, key=lambda r: (bool(r["risk_averse"]), bool(r["halted"]))):
        if not (is_averse or is_halted):
            continue
        span = list(group)
        state = " and ".join(s for s, on in (("risk-averse", is_averse), ("halted", is_halted))
                             if on)
        when = stamp(span[0]["time"]) + ("" if len(span) == 1 else
                                          f" → {stamp(span[-1]['time'])} ({len(span)} times)")
        notes.append(f"{when}: {state}" + (f" — {span[0]['reason']}" if is_averse else
                                           " — the drawdown limit was breached"))
    risk = chart("risk", f"Risk state: risk-averse at {averse} of {len(rows)} decision times"
                 f"{f', halted at {halted}' if halted else ''}", curves, "pct")
    risk["notes"] = notes or ["Never risk-averse nor halted."]
    return [risk]


# ---------------------------------------------------------------- tables and formatting


def _metrics_table(columns: Sequence[str], metrics: Sequence[Mapping[str, Any]],
                   bh: Sequence[Mapping[str, Any] | None], *, lead: bool,
                   baseline: Sequence[bool]) -> dict[str, Any]:
    """Metric rows, then excess return over each column's buy-and-hold `bh`, then flags (a
    `baseline` column gets no look-ahead flag: flowkit's own rules cannot look ahead)."""
    rows = [(label, [cell(m.get(key), kind) for m in metrics])
            for key, label, kind in METRIC_ROWS]
    if any(b is not None for b in bh):
        rows.append(("Excess return vs buy & hold (percentage points)", [
            cell(num(m.get("cumulative_return")) - num(b.get("cumulative_return")), "spp")
            if b is not None and m is not b else ("—", "num")
            for m, b in zip(metrics, bh, strict=True)]))
    flags = ["; ".join(_flags(m, baseline=b)) for m, b in zip(metrics, baseline, strict=True)]
    rows.append(("Flags", [(f, "flags") if f else ("—", "num muted") for f in flags]))
    return {"columns": list(columns), "rows": rows, "lead": lead, "note": ""}


def _flags(metrics: Mapping[str, Any], *, baseline: bool = False) -> list[str]:
    """The warnings stored with the metrics (the run's own, e.g. a model cutoff), else the
    suspect flags of the numbers themselves."""
    stored = metrics.get("warnings")
    return [str(w) for w in stored] if isinstance(stored, list) \
        else flag_suspect(metrics, baseline=baseline)


def _annualisation(firm: Mapping[str, Any]) -> str:
    """Which periods per year annualise the figures, and why (all columns share the firm's)."""
    ppy, why = num(firm.get("periods_per_year")), firm.get("annualisation")
    if not math.isfinite(ppy):
        return ""
    return f"Annualised with {ppy:g} periods a year" + (f" ({why}). " if why else ". ")


def _render(**page: Any) -> str:
    import jinja2

    from flowkit._version import __version__

    template = Path(__file__).with_name("report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True)
    return env.from_string(template).render(version=__version__, **page)
