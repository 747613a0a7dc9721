"""A symbol whose data ends inside the window is closed at its last close (order reason
`data_end`) at the first decision time after its last bar, its working orders are cancelled, and
no order is left working forever: what is still working at the end of a run has expired, unless
it was placed at the run's last decision time."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_support import ANALYST_TRADER, SAMPLE_OHLCV, backtest, firm, logged

FIRM = ANALYST_TRADER.replace("{", "{{").replace("}", "}}") + """\
market:
  symbols: [{symbols}]
  source: csv
  path: data
risk: {{max_position_pct: 50, max_sector_pct: 100, max_gross_exposure_pct: 100, min_cash_pct: 0,
       stop_loss_pct: null, take_profit_pct: null, max_drawdown_pct: {drawdown}}}
portfolio: {{initial_cash: 100000, fee_bps: 10, slippage_bps: 5, fractional: {fractional}}}
"""


def cut_backtest(tmp_path: Path, symbols: list[str], cut: str, until: str, every: str,
                 start: str, end: str, drawdown: float):
    """Run with `cut`'s data ending on `until` (the rows after it deleted)."""
    folder = tmp_path / "data" / "ohlcv"
    folder.mkdir(parents=True)
    for name in symbols:
        lines = (SAMPLE_OHLCV / f"{name}.csv").read_text().splitlines()
        if name == cut:
            lines = [ln for ln in lines if ln[:10] <= until or not ln[0].isdigit()]
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    crypto = symbols[0].endswith("USDT")
    path = firm(tmp_path, FIRM.format(symbols=", ".join(symbols), drawdown=drawdown,
                                      fractional=str(crypto).lower()))
    return backtest(path, tmp_path / "x.duckdb", start, end, every)


CASES = [
    pytest.param(["NVDA", "AAPL", "MSFT"], "AAPL", "2024-01-25", "1d", "2024-01-02", "2024-03-28",
                 3, id="stocks-daily"),
    pytest.param(["NVDA", "AAPL", "MSFT"], "NVDA", "2023-07-05", "1w", "2023-06-01", "2024-03-28",
                 5, id="stocks-weekly"),
    pytest.param(["BTC-USDT", "ETH-USDT"], "ETH-USDT", "2023-01-25", "1d", "2023-01-01",
                 "2023-03-31", 5, id="crypto-daily"),
]


@pytest.mark.parametrize(("symbols", "cut", "until", "every", "start", "end", "drawdown"), CASES)
def test_a_symbol_whose_data_ends_is_closed_at_its_last_close(tmp_path, symbols, cut, until,
                                                              every, start, end, drawdown):
    out = cut_backtest(tmp_path, symbols, cut, until, every, start, end, drawdown)
    log = logged(tmp_path / "x.duckdb", out.run_id)  # the whole run's orders, fills, reviews
    last_line = [ln for ln in (tmp_path / "data" / "ohlcv" / f"{cut}.csv").read_text().splitlines()
                 if ln][-1].split(",")
    assert last_line[0] == until
    last_close = float(last_line[4])
    # The first decision time after the last one the symbol had a bar for.
    last_decision = max(r["as_of"] for r in log.reviews if r["symbol"] == cut)
    exit_time = next(t for t, _ in out.equity if t[:19] > last_decision.isoformat()[:19])
    (order,) = [o for o in log.orders if o["reason"] == "data_end"]
    assert (order["symbol"], order["status"], order["side"]) == (cut, "filled", "sell")
    assert order["as_of"].isoformat()[:19] == exit_time[:19]
    (fill,) = [f for f in log.fills if f["order_id"] == order["order_id"]]
    assert fill["price"] == pytest.approx(last_close * (1 - 5 / 10_000), rel=1e-12)
    # Nothing of the symbol afterwards: no position, no order, no fill.
    assert not [o for o in log.orders if o["symbol"] == cut and o["as_of"] > order["as_of"]]
    assert not [f for f in log.fills if f["symbol"] == cut and f["time"] > fill["time"]]
    assert any(f"{cut}: the data ends on {until}" in w and "data_end" in w for w in out.warnings)
    # No order is left working, except those placed at the last decision time.
    final = max(o["as_of"] for o in log.orders)
    assert all(o["status"] != "submitted" or o["as_of"] == final for o in log.orders)


def test_working_orders_are_cancelled_or_expired_never_left_submitted():
    """The broker side of the policy, on its own: a symbol's orders are withdrawn with the
    status given; a close-out fills at once at the latest price."""
    import datetime as dt

    from flowkit.broker.paper import PaperBroker
    from flowkit.domain.orders import OrderRequest
    from flowkit.portfolio import Portfolio
    from flowkit.risk import RiskEngine
    from flowkit.spec.models import PortfolioSpec, RiskSpec

    portfolio = Portfolio(10_000)
    engine = RiskEngine(RiskSpec(max_position_pct=100, max_sector_pct=100, stop_loss_pct=None,
                                 take_profit_pct=None), {}, {"AAA", "BBB"})
    broker = PaperBroker(PortfolioSpec(slippage_bps=0), portfolio, engine)
    day = dt.datetime(2024, 1, 2, 21)
    for s in ("AAA", "BBB"):
        broker.on_bar(s, dt.datetime(2024, 1, 2, 14, 30), 10.0, 11.0, 9.0, 10.5)

    def buy(symbol: str, as_of: dt.datetime, reason: str = "decision") -> str:
        order = OrderRequest.create(run_id="r", as_of=as_of, symbol=symbol, side="buy",
                                    quantity=10, reason=reason)
        return broker.submit(order).order.order_id

    a, b = buy("AAA", day), buy("BBB", day)
    assert broker.withdraw("AAA", "cancelled") == [a]
    later = day + dt.timedelta(days=1)
    c = buy("BBB", later, "rebalance")
    assert broker.withdraw(None, "expired", before=later) == [b]
    assert [broker.orders[i].status for i in (a, b, c)] == ["cancelled", "expired", "submitted"]
    held = buy("AAA", later)
    broker.on_bar("AAA", dt.datetime(2024, 1, 4, 14, 30), 12.0, 13.0, 11.0, 12.5)
    assert broker.orders[held].status == "filled" and portfolio.qty("AAA") == 10
    # Its data ends: the exit fills at once at the last close, with no later bar.
    sub = broker.close_out(OrderRequest.create(run_id="r", as_of=later + dt.timedelta(days=2),
                                               symbol="AAA", side="sell", quantity=10,
                                               reason="data_end"))
    assert sub.order.status == "filled" and sub.fill.price == 12.5 and portfolio.qty("AAA") == 0
