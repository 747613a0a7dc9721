"""After a backtest: the firm's metrics, the baselines under the same data, costs and fill
timing, the honesty flags, all stored in the `metrics` table for reports."""

from __future__ import annotations

from typing import Any

import numpy as np

from flowkit.backtest.baselines import excess_return, run_baselines
from flowkit.backtest.metrics import compute_metrics, flag_suspect, round_trips


def periods_per_year(session: Any, symbols: list[str]) -> int:
    """backtest.periods_per_year, else the market's convention (252 stocks, 365 crypto; the
    larger when a firm mixes them)."""
    bt = session.spec.backtest
    if bt is not None and bt.periods_per_year:
        return bt.periods_per_year
    return max(session.market.periods_per_year(s) for s in symbols)


def evaluate(session: Any, loop: Any, outcome: Any) -> None:
    spec = session.spec
    ppy = periods_per_year(session, loop.symbols)
    rf = spec.backtest.risk_free_rate if spec.backtest else 0.0
    equity = [e for _, e in outcome.equity]
    exposure = [r.get("gross_exposure", 0.0) for r in loop.snapshots]
    notional = sum(abs(f["quantity"] * f["price"]) for f in outcome.fills)
    firm = compute_metrics(equity, periods_per_year=ppy, risk_free_rate=rf,
                           trades=round_trips(outcome.fills), exposure=exposure,
                           turnover_notional=notional)
    # From the log, so a resumed run counts the calls made before it was killed too.
    (n_decisions,), = session.log.query("SELECT count(*) FROM decisions WHERE run_id = ?",
                                        [session.run_id])
    (calls, tokens, cost), = session.log.query(
        "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0), "
        "coalesce(sum(cost_usd), 0) FROM model_calls WHERE run_id = ?", [session.run_id])
    per = max(n_decisions, 1)
    firm.update({"decisions": n_decisions, "model_calls": calls,
                 "model_calls_per_decision": calls / per, "tokens_per_decision": tokens / per,
                 "cost_usd": cost, "cost_per_decision_usd": cost / per})
    times = [np.datetime64(t.rstrip("Z"), "s") for t, _ in outcome.equity]
    baselines = run_baselines({s: loop.bars[s] for s in loop.symbols}, times,
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
    (stored,), = log.query("SELECT count(*) FROM metrics WHERE run_id = ?", [run_id])
    if stored:  # a resumed run killed after it wrote them: they are the same numbers
        return
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
