"""A backtest records what the risk engine did and why: the CVaR trigger's state at every
decision time (`risk_state`, recomputed here from the equity curve by the documented formula),
and each decision's target weight after the rule engine (`decisions.target_weight`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowkit.market import load_market
from flowkit.spec.models import MarketSpec
from runtime_support import cli, firm, rows

WINDOW, CONFIDENCE, DROP, FLOOR = 10, 0.9, 25.0, 1.0


def backtest(tmp_path, symbols: list[str], start: str, end: str, every: str = "1d"):
    workflow = firm(tmp_path, f"""models: {{default: {{model: offline}}}}
agents: {{technical: {{role: technical_analyst}}, trader: {{role: trader}}}}
pipeline: [technical, trader]
market: {{symbols: {symbols}}}
portfolio: {{fractional: true}}
risk:
  max_position_pct: 60
  max_sector_pct: 100
  cvar: {{window: {WINDOW}, confidence: {CONFIDENCE}, trigger_drop_pct: {DROP}, min_loss_pct: {FLOOR}}}
""")
    db = tmp_path / "x.duckdb"
    rc, text = cli("run", str(workflow), "--start", start, "--end", end, "--every", every,
                   "--db", str(db))
    assert rc == 0, text
    return db


@pytest.mark.parametrize("symbols,start,end,every", [
    (["NVDA"], "2022-01-03", "2022-06-30", "1d"),
    (["AMZN", "GOOGL"], "2022-03-01", "2022-12-30", "1w"),
    (["ETH-USDT"], "2022-04-01", "2022-07-31", "1d"),
])
def test_risk_state_follows_the_documented_formula(tmp_path, symbols, start, end, every) -> None:
    db = backtest(tmp_path, symbols, start, end, every)
    equity = [e for (e,) in rows(db, "SELECT equity FROM portfolio ORDER BY time")]
    states = rows(db, "SELECT cvar, reference_cvar, risk_averse, reason, daily_return, time "
                      "FROM risk_state ORDER BY time")
    assert len(states) == len(equity)
    assert states[0][:4] == (None, None, False, "no return yet")
    # The equity the engine sees at t is the portfolio's before the orders of t, which with
    # next-open fills is the snapshot's: the same curve.
    returns, cvars, averse = [], [], []
    for k in range(1, len(equity)):
        returns = (returns + [equity[k] / equity[k - 1] - 1])[-WINDOW:]
        tail = sorted(returns)[:max(1, math.ceil(len(returns) * (1 - CONFIDENCE) - 1e-9))]
        cvar = sum(tail) / len(tail)
        ref = min(0.0, max(cvars[-WINDOW:], default=0.0))
        cvars.append(cvar)
        want = cvar <= -FLOOR / 100 and cvar < ref - abs(ref) * DROP / 100
        got_cvar, got_ref, got_averse, reason, daily, _ = states[k]
        assert daily == pytest.approx(returns[-1], rel=1e-9, abs=1e-15)
        assert got_cvar == pytest.approx(cvar, rel=1e-9, abs=1e-15)
        assert got_ref == pytest.approx(ref, rel=1e-9, abs=1e-15)
        assert got_averse == want, (k, reason)
        averse.append(want)
        assert reason and ("worse than the calmest" in reason) == want


def test_the_trigger_fires_on_a_real_slide(tmp_path) -> None:
    db = backtest(tmp_path, ["NVDA"], "2022-01-03", "2022-06-30")
    (n_averse, n), = rows(db, "SELECT count(*) FILTER (WHERE risk_averse), count(*) FROM risk_state")
    assert 0 < n_averse < n


@pytest.mark.parametrize("symbols,start,end,every", [
    (["NVDA"], "2022-01-03", "2022-06-30", "1d"),
    (["BTC-USDT", "MSFT"], "2022-03-01", "2022-12-30", "1w"),
])
def test_the_report_plots_the_risk_state_and_says_why(tmp_path, symbols, start, end, every):
    from flowkit.report import write_report
    from flowkit.store import RunStore

    db = backtest(tmp_path, symbols, start, end, every)
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    with RunStore.open(db) as store:
        states = store.risk_state(run_id)
    assert [s["time"] for s in states] == [t for (t,) in rows(db, "SELECT time FROM portfolio "
                                                                   "ORDER BY time")]
    averse = [s for s in states if s["risk_averse"]]
    html = write_report(db, run_id, tmp_path / "r.html").read_text()
    assert 'id="risk"' in html
    assert f"risk-averse at {len(averse)} of {len(states)} decision times" in html
    notes = html[html.index('<ul class="notes">'):].split("</ul>")[0]
    # One note per stretch of risk-averse (or halted) decision times, with the engine's reason.
    key = [(bool(s["risk_averse"]), bool(s["halted"])) for s in states]
    starts = [s for k, s in enumerate(states) if any(key[k]) and (k == 0 or key[k - 1] != key[k])]
    assert starts and notes.count("<li>") == len(starts)
    for state in starts:
        stamp = str(state["time"]).removesuffix(" 00:00:00")
        assert f"<li>{stamp}" in notes
        if state["risk_averse"]:
            assert state["reason"] in notes


def test_no_risk_chart_when_the_trigger_is_off_and_nothing_halted(tmp_path) -> None:
    from flowkit.report import write_report

    workflow = firm(tmp_path, """models: {default: {model: offline}}
agents: {technical: {role: technical_analyst}, trader: {role: trader}}
pipeline: [technical, trader]
market: {symbols: [AAPL]}
risk: {cvar: {enabled: false}, max_drawdown_pct: null}
""")
    db = tmp_path / "x.duckdb"
    rc, text = cli("run", str(workflow), "--start", "2024-01-02", "--end", "2024-02-28",
                   "--db", str(db))
    assert rc == 0, text
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    assert 'id="risk"' not in write_report(db, run_id, tmp_path / "r.html").read_text()


@pytest.mark.parametrize("symbols,start,end", [(["MSFT"], "2023-01-03", "2023-04-28"),
                                               (["AAPL", "BTC-USDT"], "2024-02-01", "2024-03-29")])
def test_target_weight_is_the_position_after_the_approved_order(tmp_path, symbols, start, end):
    # Held at a decision: the fills of earlier decisions' orders, all before it (a coin's next
    # open is the decision instant itself: that fill is this decision's own order).
    db = backtest(tmp_path, symbols, start, end)
    market = load_market(MarketSpec(symbols=symbols))
    decisions = rows(db, """
        SELECT d.symbol, d.as_of, d.action, d.target_weight, r.approved_qty, p.equity,
               coalesce((SELECT sum(CASE WHEN f.side = 'buy' THEN f.quantity ELSE -f.quantity END)
                         FROM fills f WHERE f.symbol = d.symbol AND f.time < d.as_of), 0)
        FROM decisions d JOIN risk_reviews r USING (run_id, symbol, as_of)
        JOIN portfolio p ON p.time = d.as_of ORDER BY d.as_of, d.symbol""")
    assert decisions and all(d[3] is not None for d in decisions)
    moved = 0
    for symbol, as_of, action, weight, approved, equity, held in decisions:
        bars = market.bars(symbol)
        close = float(bars.close[bars.index_asof(np.datetime64(as_of, "s"))])
        assert weight == pytest.approx((held + approved) * close / equity, rel=1e-9, abs=1e-12)
        if action == "HOLD":
            assert approved == 0
        moved += approved != 0
    assert moved  # orders were approved, so the weight is not merely the held one
