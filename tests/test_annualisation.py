"""Annualisation follows the decision calendar, not the bars: a backtest's figures (the firm's and
every baseline's) equal empyrical-reloaded's on the stored equity curve, annualised with the
number of decisions a year (52 weekly, 252 stock sessions or 365 crypto days daily, 24 x 365
hourly crypto), and the periods per year used is printed and stored with them."""

from __future__ import annotations

import json
import re
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowkit.market import clock
from runtime_support import cli, rows

empyrical = pytest.importorskip("empyrical")

FIRM = """\
version: 1
name: annualisation
models:
  default: {{model: offline}}
agents:
  technical: {{role: technical_analyst}}
  trader: {{role: trader}}
pipeline: [technical, trader]
market:
  symbols: {symbols}
  timeframe: {timeframe}
portfolio: {{fractional: true}}
risk: {{max_position_pct: 60, max_sector_pct: 100, min_cash_pct: 2}}
{extra}"""

RATIOS = ("annual_return", "annual_volatility", "sharpe", "sortino", "downside_risk", "calmar")


def backtest(tmp_path: Path, symbols: list[str], start: str, end: str, every: str,
             timeframe: str = "1d", extra: str = "") -> tuple[str, dict[str, dict]]:
    path = tmp_path / "firm.yaml"
    path.write_text(FIRM.format(symbols=json.dumps(symbols), timeframe=timeframe, extra=extra))
    db = tmp_path / "log.duckdb"
    rc, text = cli("run", str(path), "--start", start, "--end", end, "--every", every,
                   "--db", str(db))
    assert rc == 0, text
    metrics = {s: json.loads(m) for s, m in rows(
        db, "SELECT strategy, metrics FROM metrics WHERE symbol IS NULL")}
    (notional,), = rows(db, "SELECT coalesce(sum(abs(quantity * price)), 0) FROM fills")
    metrics["firm"]["notional"] = notional
    metrics["firm"]["equity"] = [e for (e,) in rows(db, "SELECT equity FROM portfolio ORDER BY time")]
    return text, metrics


def reference(equity: list, ppy: int) -> dict[str, float]:
    r = empyrical.simple_returns(pd.Series(equity, dtype=float)).to_numpy()
    return {
        "annual_return": empyrical.annual_return(r, annualization=ppy),
        "annual_volatility": empyrical.annual_volatility(r, annualization=ppy),
        "sharpe": empyrical.sharpe_ratio(r, annualization=ppy),
        "sortino": empyrical.sortino_ratio(r, annualization=ppy),
        "downside_risk": empyrical.downside_risk(r, annualization=ppy),
        "calmar": empyrical.calmar_ratio(r, annualization=ppy),
    }


def assert_annualised_with(metrics: dict[str, dict], ppy: int) -> None:
    assert {"firm", "buy_and_hold", "sma_crossover", "macd"} <= set(metrics)
    for strategy, m in metrics.items():
        curve = m["equity"] if strategy == "firm" else [v for _, v in m["equity"]]
        assert m["periods_per_year"] == ppy, strategy
        assert m["periods"] == len(curve) - 1
        for key, want in reference(curve, ppy).items():
            got = m[key]
            if not math.isfinite(want):
                assert got is None, (strategy, key)
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (strategy, key)
    firm = metrics["firm"]
    n, mean = len(firm["equity"]) - 1, np.mean(firm["equity"])
    assert firm["turnover"] == pytest.approx(firm["notional"] / mean * ppy / n, rel=1e-9)


@pytest.mark.parametrize("symbols,timeframe,every,start,end,ppy,why", [
    (["MSFT"], "1d", "1w", "2023-01-02", "2024-06-28", 52, "weekly decisions"),
    (["GOOGL", "AMZN"], "1d", "1d", "2022-03-01", "2022-08-31", 252, "stock sessions"),
    (["ETH-USDT"], "1d", "1w", "2022-02-01", "2023-01-31", 52, "weekly decisions"),
    (["BTC-USDT"], "1d", "1d", "2023-05-01", "2023-09-30", 365, "crypto"),
    (["ETH-USDT"], "1h", "1d", "2024-02-01", "2024-05-31", 365, "crypto"),
    (["BTC-USDT"], "1h", "1h", "2024-03-01", "2024-03-09", 24 * 365, "hourly decisions"),
])
def test_figures_are_annualised_by_the_decision_calendar(tmp_path, symbols, timeframe, every,
                                                          start, end, ppy, why) -> None:
    text, metrics = backtest(tmp_path, symbols, start, end, every, timeframe)
    assert_annualised_with(metrics, ppy)
    assert why in metrics["firm"]["annualisation"]
    assert f"annualised with {ppy} periods a year (" in text


def test_mixed_calendars_are_measured_from_the_decision_times(tmp_path) -> None:
    """A stock and a coin decide at the union of their closes: the stock's 16:00 New York close
    and the coin's midnight UTC close, so ~252 + 365 marks a year, which no convention gives."""
    _, metrics = backtest(tmp_path, ["NVDA", "BTC-USDT"], "2024-01-01", "2024-12-31", "1d")
    equity = metrics["firm"]["equity"]
    (ppy,) = {m["periods_per_year"] for m in metrics.values() if "periods_per_year" in m}
    assert ppy == round((len(equity) - 1) * 365.25 / 365)  # decisions in one year, measured
    assert 252 + 365 - 10 <= ppy <= 252 + 366
    assert_annualised_with(metrics, ppy)


def test_declared_periods_per_year_wins(tmp_path) -> None:
    text, metrics = backtest(tmp_path, ["AAPL"], "2023-01-02", "2023-06-30", "1w",
                             extra="backtest: {start: 2023-01-02, end: 2023-06-30, "
                                   "periods_per_year: 50}\n")
    assert_annualised_with(metrics, 50)
    assert "annualised with 50 periods a year (declared by backtest.periods_per_year)" in text


@pytest.mark.parametrize("crypto,every,bars,want", [
    (False, "1d", 1, 252), (False, "1d", 7, 252), (True, "1d", 24, 365), (False, "1w", 1, 52),
    (True, "1w", 24, 52), (False, "1h", 7, 252 * 7), (True, "1h", 24, 365 * 24)])
def test_decision_calendar_conventions(crypto, every, bars, want) -> None:
    assert clock.decisions_per_year(crypto, every, bars)[0] == want


def test_report_and_comparison_state_the_annualisation(tmp_path) -> None:
    from flowkit.report import write_comparison, write_report

    backtest(tmp_path, ["NVDA"], "2023-01-02", "2023-12-29", "1w")
    db = tmp_path / "log.duckdb"
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    for html in (write_report(db, run_id, tmp_path / "r.html").read_text(),
                 write_comparison(db, [run_id], tmp_path / "c.html").read_text()):
        row = html[html.index("<td>Periods per year (annualisation)</td>"):]
        assert re.match(r"<td>Periods per year \(annualisation\)</td>\s*<td[^>]*>52</td>", row)
        assert "Annualised with 52 periods a year (weekly decisions)" in html


def test_hourly_stock_decisions_count_the_bars_of_a_session(tmp_path) -> None:
    """Seven hourly bars a New York session (09:30 to 16:00) make 7 x 252 decisions a year."""
    from flowkit.market import load_market
    from flowkit.spec.models import MarketSpec

    (tmp_path / "ohlcv").mkdir()
    days = np.arange(np.datetime64("2024-03-04"), np.datetime64("2024-03-16"))
    days = days[np.is_busday(days)]
    opens = [np.datetime64(f"{d}T14:30") + np.timedelta64(h, "h") for d in days for h in range(7)]
    lines = ["timestamp,open,high,low,close,volume"] + [
        f"{t}:00Z,100,101,99,100.5,10" for t in opens]
    (tmp_path / "ohlcv" / "XYZ_1h.csv").write_text("\n".join(lines) + "\n")
    md = load_market(MarketSpec(symbols=["XYZ"], source="csv", path=str(tmp_path), timeframe="1h"))
    assert md.decisions_per_year("XYZ", "1h")[0] == 7 * 252
    assert md.decisions_per_year("XYZ", "1d")[0] == 252
    assert md.decisions_per_year("XYZ", "1w")[0] == 52
