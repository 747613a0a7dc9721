"""After a backtest: the firm's metrics, the baselines under the same data, costs and fill
timing, the honesty flags, all stored in the `metrics` table for reports."""

from __future__ import annotations

from typing import Any

import numpy as np

from flowkit.backtest.baselines import excess_return, run_baselines
from flowkit.backtest.metrics import compute_metrics, flag_suspect, measured_periods_per_year


def periods_per_year(session: Any, symbols: list[str], every: str,
                     times: list[Any]) -> tuple[int, str]:
    """What annualises the equity curve, which is marked once per decision time, and why:
    backtest.periods_per_year when declared, else the decision calendar (52 weekly; 252 stock
    sessions or 365 crypto days daily; hourly, that times the bars of a session), never the bar
    frequency. A firm mixing calendars (a stock and a coin) decides at the union of their
    decision times, so its curve has neither spacing: then the rate is measured from the
    decision times themselves (periods per 365.25 days)."""
    bt = session.spec.backtest
    if bt is not None and bt.periods_per_year:
        return bt.periods_per_year, "declared by backtest.periods_per_year"
    calendars = {session.market.decisions_per_year(s, every) for s in symbols}
    if len(calendars) == 1:
        return calendars.pop()
    measured = measured_periods_per_year(times)
    if measured is None:
        ppy, why = max(calendars)
        return ppy, why + " (too few decisions to measure the symbols' mixed calendars)"
    return measured, "measured from the decision times: the symbols' calendars differ"


def evaluate(session: Any, loop: Any, outcome: Any, every: str) -> None:
    spec = session.spec
    ppy, basis = periods_per_year(session, loop.symbols, every, loop.times)
    rf = spec.backtest.risk_free_rate if spec.backtest else 0.0
    equity, exposure = outcome.equity.values, np.frombuffer(loop.exposure) if loop.exposure else []
    firm = compute_metrics(equity, periods_per_year=ppy, risk_free_rate=rf,
                           trades=loop.trips.closed, exposure=exposure,
                           turnover_notional=loop.notional)
    # As logged (a resumed run's count started from what its earlier attempts logged).
    n_decisions, totals = session.ctx.tally.decisions, session.ctx.tally.totals()
    calls, cost = totals.calls, totals.cost_usd
    tokens = totals.prompt_tokens + totals.completion_tokens
    per = max(n_decisions, 1)
    firm.update({"annualisation": basis, "decisions": n_decisions, "model_calls": calls,
                 "model_calls_per_decision": calls / per, "tokens_per_decision": tokens / per,
                 "cost_usd": cost, "cost_per_decision_usd": cost / per})
    times = [np.datetime64(t.rstrip("Z"), "s") for t, _ in outcome.equity]
    # Sorted: the sleeves' sums must not depend on how the workflow lists its symbols.
    baselines = run_baselines({s: loop.bars[s] for s in sorted(loop.symbols)}, times,
                              initial_cash=spec.portfolio.initial_cash, fee_bps=spec.portfolio.fee_bps,
                              slippage_bps=spec.portfolio.slippage_bps, fill=spec.portfolio.fill,
                              fractional=spec.portfolio.fractional, periods_per_year=ppy,
                              risk_free_rate=rf)
    firm["excess_return_vs_buy_and_hold"] = excess_return(firm, baselines["buy_and_hold"].metrics)
    outcome.warnings += flag_suspect(firm)
    firm["warnings"] = list(outcome.warnings)
    outcome.metrics = firm
    outcome.baselines = {name: r.metrics for name, r in baselines.items()}
    log, run_id = session.log, session.run_id
    log.append("metrics", {"run_id": run_id, "strategy": "firm", "symbol": None,
                           "metrics": {**firm, "equity": [[t, v] for t, v in outcome.equity]}})
    for name, result in baselines.items():
        log.append("metrics", {"run_id": run_id, "strategy": name, "symbol": None,
                               "metrics": result.to_json()})
    for s in loop.symbols:
        bars = loop.bars[s]
        lo, hi = bars.index_asof(times[0]), bars.index_asof(times[-1])
        closes = [[str(np.datetime64(bars.close_time[i], "s")) + "Z", float(bars.close[i])]
                  for i in range(max(lo, 0), hi + 1)]
        log.append("metrics", {"run_id": run_id, "strategy": "prices", "symbol": s,
                               "metrics": {"close": closes}})
