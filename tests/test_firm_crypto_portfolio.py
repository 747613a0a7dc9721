"""The two multi-symbol firms: workflows/crypto.yaml (BTC-USDT and ETH-USDT, daily, 24/7,
fractional quantities, 365 periods a year) and workflows/portfolio.yaml (five stocks, one book,
a correlation-aware risk view). Both validate and run a backtest on the shipped data."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from runtime_support import cli, rows

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "flowkit" / "market" / "sample" / "ohlcv"


def backtest(tmp_path_factory, firm: str, start: str, end: str) -> dict:
    db = tmp_path_factory.mktemp(firm) / "log.duckdb"
    rc, text = cli("run", str(ROOT / "workflows" / f"{firm}.yaml"), "--start", start, "--end", end,
                   "--db", str(db))
    assert rc == 0, text
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    return {"db": db, "run_id": run_id, "stdout": text}


def closes(symbol: str) -> dict[str, float]:
    with open(SAMPLE / f"{symbol}.csv") as fh:
        return {r["date"]: float(r["close"]) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def crypto(tmp_path_factory) -> dict:
    return backtest(tmp_path_factory, "crypto", "2023-01-01", "2023-03-31")


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory) -> dict:
    return backtest(tmp_path_factory, "portfolio", "2024-01-02", "2024-03-28")


def test_both_firms_validate():
    rc, text = cli("validate", str(ROOT / "workflows" / "crypto.yaml"),
                   str(ROOT / "workflows" / "portfolio.yaml"))
    assert rc == 0, text
    assert "crypto.yaml: ok" in text and "portfolio.yaml: ok" in text


# ---------------------------------------------------------------- crypto


def test_crypto_trades_every_day_of_the_week_in_fractions(crypto):
    db, run_id = crypto["db"], crypto["run_id"]
    per_symbol = dict(rows(db, "SELECT symbol, count(*) FROM decisions WHERE run_id = ? GROUP BY 1",
                           run_id))
    assert per_symbol == {"BTC-USDT": 90, "ETH-USDT": 90}  # 1 Jan .. 31 Mar 2023, no day off
    weekdays = {d.weekday() for (d,) in rows(db, "SELECT DISTINCT as_of FROM decisions WHERE run_id = ?",
                                             run_id)}
    assert weekdays == set(range(7))
    quantities = [q for (q,) in rows(db, "SELECT quantity FROM fills WHERE run_id = ?", run_id)]
    assert len(quantities) >= 10
    assert any(q != math.floor(q) for q in quantities), "no fractional fill"
    assert all(abs(q * 1e8 - round(q * 1e8)) < 1e-4 for q in quantities), "finer than 1e-8 units"
    assert {s for (s,) in rows(db, "SELECT DISTINCT symbol FROM fills WHERE run_id = ?", run_id)} \
        == {"BTC-USDT", "ETH-USDT"}


def test_crypto_annualises_over_365_periods(crypto):
    firm = json.loads(rows(crypto["db"], "SELECT metrics FROM metrics WHERE run_id = ? AND "
                                         "strategy = 'firm'", crypto["run_id"])[0][0])
    assert firm["periods"] == 89
    assert firm["annual_return"] == pytest.approx((1 + firm["cumulative_return"]) ** (365 / 89) - 1)
    equity = np.array([e for (e,) in rows(crypto["db"], "SELECT equity FROM portfolio WHERE run_id = ? "
                                                         "ORDER BY time", crypto["run_id"])])
    returns = equity[1:] / equity[:-1] - 1
    assert firm["annual_volatility"] == pytest.approx(returns.std(ddof=1) * math.sqrt(365))


def test_crypto_fills_respect_the_limits(crypto):
    from test_firm_shipped import check_limits_at_fills

    assert check_limits_at_fills(crypto["db"], crypto["run_id"], "crypto") > 0


def test_crypto_orders_fill_at_the_open_right_after_the_decision(crypto):
    late = rows(crypto["db"], "SELECT o.as_of, f.time FROM orders o JOIN fills f USING (run_id, order_id) "
                              "WHERE o.run_id = ? AND o.reason = 'decision' AND f.time <> o.as_of",
                crypto["run_id"])
    assert late == [], f"{len(late)} decision fills not at the next bar's open, e.g. {late[:2]}"


def test_crypto_every_resize_names_its_rule(crypto):
    unnamed = rows(crypto["db"], "SELECT as_of, symbol, requested_qty, approved_qty FROM risk_reviews "
                                 "WHERE run_id = ? AND verdict = 'resize' AND rule IS NULL",
                   crypto["run_id"])
    assert unnamed == []


def test_crypto_exits_close_the_whole_position(crypto):
    db, run_id = crypto["db"], crypto["run_id"]
    rejected_exits = rows(db, "SELECT as_of, symbol, quantity FROM orders WHERE run_id = ? AND "
                              "reason <> 'decision' AND status = 'rejected'", run_id)
    assert rejected_exits == []
    dust = [(t, s, p["qty"]) for t, positions in rows(db, "SELECT time, positions FROM portfolio "
                                                          "WHERE run_id = ?", run_id)
            for s, p in json.loads(positions).items() if 0 < abs(p["qty"]) < 1e-6]
    assert dust == []


# ---------------------------------------------------------------- portfolio


def test_portfolio_allocates_across_five_names_within_limits(portfolio):
    db, run_id = portfolio["db"], portfolio["run_id"]
    per_symbol = dict(rows(db, "SELECT symbol, count(*) FROM decisions WHERE run_id = ? GROUP BY 1",
                           run_id))
    assert per_symbol == {s: 61 for s in ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA")}
    held = rows(db, "SELECT max(json_array_length(json_keys(positions))) FROM portfolio "
                    "WHERE run_id = ?", run_id)[0][0]
    assert held >= 3, "never held more than two names at once"
    from test_firm_shipped import check_limits_at_fills

    assert check_limits_at_fills(db, run_id, "portfolio") > 0
    # The sector limit binds: Technology (AAPL, MSFT, NVDA) is capped at 35% of equity.
    assert rows(db, "SELECT count(*) FROM risk_reviews WHERE run_id = ? AND rule = 'max_sector_pct'",
                run_id)[0][0] > 0


def _correlation_lines(db: Path, run_id: str, agent: str) -> list[tuple[str, dt.datetime, dict]]:
    out = []
    for symbol, as_of, request in rows(db, "SELECT symbol, as_of, request FROM model_calls_full "
                                           "WHERE run_id = ? AND agent = ? ORDER BY as_of, symbol",
                                       run_id, agent):
        prompt = json.loads(request)["messages"][-1]["content"]
        m = re.search(r"60-bar return correlation with positions held: ([^\n]*)\.", prompt)
        pairs = dict(re.findall(r"([A-Z]+) (-?[\d.]+)", m.group(1))) if m else {}
        out.append((symbol, as_of, {s: float(c) for s, c in pairs.items()}))
    return out


def test_portfolio_risk_view_sees_correlations_with_positions_held(portfolio):
    """The risk manager and the portfolio manager read, for the symbol they decide on, the
    60-bar log-return correlation with every other position held at that time, computed from
    data up to the decision only."""
    db, run_id = portfolio["db"], portfolio["run_id"]
    data = {s: closes(s) for s in ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA")}
    snapshots = {t: {s for s, p in json.loads(pos).items() if p["qty"]}
                 for t, pos in rows(db, "SELECT time, positions FROM portfolio WHERE run_id = ?", run_id)}
    for agent in ("risk_manager", "portfolio_manager"):
        lines = _correlation_lines(db, run_id, agent)
        assert sum(bool(c) for _, _, c in lines) > 100
        for symbol, as_of, corr in lines:
            assert set(corr) == snapshots[as_of] - {symbol}, (agent, symbol, as_of)
    for symbol, as_of, corr in _correlation_lines(db, run_id, "risk_manager")[::17]:
        day = as_of.date().isoformat()
        for other, shown in corr.items():
            def returns(s: str) -> np.ndarray:
                dates = sorted(d for d in data[s] if d <= day)[-61:]  # nothing after the decision
                return np.diff(np.log([data[s][d] for d in dates]))
            want = np.corrcoef(returns(symbol), returns(other))[0, 1]
            assert shown == pytest.approx(want, abs=0.006), (symbol, other, day)


def test_portfolio_offline_risk_roles_size_by_correlation(portfolio):
    db, run_id = portfolio["db"], portfolio["run_id"]
    for agent in ("risk_manager", "portfolio_manager"):
        acted = rows(db, "SELECT count(*) FROM steps WHERE run_id = ? AND agent = ? AND "
                         "regexp_matches(output, 'correlation [0-9.]+ with [A-Z]+ held')", run_id, agent)
        assert acted[0][0] > 0, f"{agent} never sized by correlation"


# ---------------------------------------------------------------- a stock and a coin in one book

MIXED = """\
version: 1
name: mixed
models: {default: {model: offline}}
agents:
  technical: {role: technical_analyst}
  trader: {role: trader}
  risk_manager: {role: risk_manager, inputs: [trader]}
  portfolio_manager: {role: portfolio_manager, inputs: [trader]}
pipeline: [technical, trader, risk_manager, portfolio_manager]
market: {symbols: [AAPL, BTC-USDT]}
portfolio: {fractional: true}
"""


def test_mixed_calendars_pair_returns_by_date_and_annualise_by_the_decisions(tmp_path):
    """AAPL trades on NYSE sessions and closes at 21:00 UTC in January; BTC-USDT trades every
    day and closes at midnight UTC. Correlations pair the two on the dates both closed, over
    the same spans; the equity curve (one point per decision time of either) is annualised by
    how often the firm actually decided."""
    firm = tmp_path / "mixed.yaml"
    firm.write_text(MIXED)
    db = tmp_path / "log.duckdb"
    rc, text = cli("run", str(firm), "--start", "2024-01-02", "--end", "2024-01-31", "--db", str(db))
    assert rc == 0, text
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    stock, coin = closes("AAPL"), closes("BTC-USDT")
    checked = 0
    for symbol, as_of, corr in _correlation_lines(db, run_id, "risk_manager"):
        other = "BTC-USDT" if symbol == "AAPL" else "AAPL"
        if other not in corr:
            continue
        # Visible at as_of: AAPL's bar of day D from D 21:00 UTC, BTC's from D+1 00:00 UTC.
        seen_stock = {d for d in stock if dt.datetime.fromisoformat(d) + dt.timedelta(hours=21) <= as_of}
        seen_coin = {d for d in coin if dt.datetime.fromisoformat(d) + dt.timedelta(days=1) <= as_of}
        common = sorted(seen_stock & seen_coin)[-61:]
        want = np.corrcoef(np.diff(np.log([stock[d] for d in common])),
                           np.diff(np.log([coin[d] for d in common])))[0, 1]
        assert corr[other] == pytest.approx(want, abs=0.006), (symbol, as_of)
        checked += 1
    assert checked >= 5
    firm_metrics = json.loads(rows(db, "SELECT metrics FROM metrics WHERE run_id = ? AND "
                                       "strategy = 'firm'", run_id)[0][0])
    times = [t for (t,) in rows(db, "SELECT time FROM portfolio WHERE run_id = ? ORDER BY time", run_id)]
    per_year = (len(times) - 1) * 365.25 / ((times[-1] - times[0]).total_seconds() / 86400)
    assert len(times) == 51  # 21 NYSE sessions and 30 UTC days
    assert firm_metrics["annual_return"] == pytest.approx(
        (1 + firm_metrics["cumulative_return"]) ** (round(per_year) / firm_metrics["periods"]) - 1)


def test_crypto_backtest_is_reproducible(crypto, tmp_path_factory):
    again = backtest(tmp_path_factory, "crypto", "2023-01-01", "2023-03-31")
    fills = "SELECT symbol, time, side, quantity, price, fee FROM fills WHERE run_id = ? ORDER BY time, symbol"
    equity = "SELECT time, cash, equity FROM portfolio WHERE run_id = ? ORDER BY time"
    first = (rows(crypto["db"], fills, crypto["run_id"]), rows(crypto["db"], equity, crypto["run_id"]))
    second = (rows(again["db"], fills, again["run_id"]), rows(again["db"], equity, again["run_id"]))
    assert first[0] and first == second
