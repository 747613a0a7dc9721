"""The simulator runs in time order, whatever order `market.symbols` lists the symbols in: every
permutation of three symbols gives the same orders, fills, equity curve and metrics, daily and
weekly, stocks and crypto, with limits tight enough that the symbols compete for cash, stops and
take-profits fire and the drawdown halt latches."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from runtime_support import ANALYST_TRADER, SAMPLE_OHLCV, backtest, firm, logged

STOCKS = ["NVDA", "AAPL", "MSFT"]
COINS = ["BTC-USDT", "ETH-USDT", "MIX-USDT"]

FIRM = ANALYST_TRADER.replace("{", "{{").replace("}", "}}") + """\
market:
  symbols: [{symbols}]
  source: csv
  path: {path}
risk: {{max_position_pct: 60, max_sector_pct: 100, max_gross_exposure_pct: 100, min_cash_pct: 0,
       stop_loss_pct: 3, take_profit_pct: 4, max_drawdown_pct: {drawdown}}}
portfolio: {{initial_cash: 100000, fee_bps: 10, slippage_bps: 5, fractional: {fractional}}}
"""


def mixed_coin(folder: Path) -> None:
    """A third coin, the geometric mean of BTC and ETH bar by bar (a consistent OHLC bar)."""
    def read(name: str) -> tuple[list[str], np.ndarray]:
        lines = (SAMPLE_OHLCV / f"{name}.csv").read_text().strip().splitlines()[1:]
        values = [[float(x) for x in ln.split(",")[1:]] for ln in lines]
        return [ln.split(",")[0] for ln in lines], np.array(values)
    days, btc = read("BTC-USDT")
    days_eth, eth = read("ETH-USDT")
    assert days == days_eth
    mix = np.sqrt(btc * eth)
    rows = [f"{d},{','.join(f'{v:.6f}' for v in row)}" for d, row in zip(days, mix, strict=True)]
    header = "date,open,high,low,close,volume\n"
    (folder / "MIX-USDT.csv").write_text(header + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "ohlcv").mkdir()
    for name in STOCKS + COINS[:2] + ["SPY"]:
        (root / "ohlcv" / f"{name}.csv").write_text((SAMPLE_OHLCV / f"{name}.csv").read_text())
    mixed_coin(root / "ohlcv")
    return root


def results(tmp_path: Path, data: Path, symbols: list[str], every: str, start: str, end: str,
            drawdown: float) -> dict[str, object]:
    """Orders, fills, equity and metrics of one backtest, by content."""
    crypto = symbols[0].endswith("USDT")
    name = "-".join(symbols).lower()
    # The firm sits beside its data: a workflow reads data from its own folder only.
    path = firm(data, FIRM.format(symbols=", ".join(symbols), path=data, drawdown=drawdown,
                                  fractional=str(crypto).lower()), f"{name}-{every}.yaml")
    db = tmp_path / f"{name}-{every}.duckdb"
    out = backtest(path, db, start, end, every)
    log = logged(db, out.run_id)  # the whole run's orders and fills
    drop = {"run_id", "order_id", "fill_id"}  # the run id is hashed into them
    return {
        "orders": sorted(tuple(sorted((k, str(v)) for k, v in o.items() if k not in drop))
                         for o in log.orders),
        "fills": sorted(tuple(sorted((k, str(v)) for k, v in f.items() if k not in drop))
                        for f in log.fills),
        "equity": out.equity,
        "metrics": out.metrics,
    }


CASES = [
    pytest.param(STOCKS, "1d", "2024-01-02", "2024-04-30", 6, id="stocks-daily"),
    pytest.param(STOCKS, "1w", "2023-06-01", "2024-04-30", 8, id="stocks-weekly",
                 marks=pytest.mark.slow),
    pytest.param(COINS, "1d", "2023-01-01", "2023-03-31", 8, id="crypto-daily",
                 marks=pytest.mark.slow),
    pytest.param(COINS, "1w", "2022-06-01", "2023-03-31", 12, id="crypto-weekly"),
]


@pytest.mark.parametrize(("symbols", "every", "start", "end", "drawdown"), CASES)
def test_every_symbol_order_gives_the_same_backtest(tmp_path, data, symbols, every, start, end,
                                                    drawdown):
    runs = [results(tmp_path, data, list(p), every, start, end, drawdown)
            for p in itertools.permutations(symbols)]
    first = runs[0]
    # The case is not trivial: orders of several kinds were filled.
    reasons = {dict(o)["reason"] for o in first["orders"]}
    assert "decision" in reasons and reasons & {"stop_loss", "take_profit", "drawdown_halt"}
    for other in runs[1:]:
        assert other["orders"] == first["orders"]
        assert other["fills"] == first["fills"]
        assert other["equity"] == first["equity"]
        assert other["metrics"] == first["metrics"]
