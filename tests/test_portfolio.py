import datetime as dt
import json

import pytest

from flowkit.broker import Fill
from flowkit.portfolio import Portfolio

T = dt.datetime(2024, 1, 2)


def fill(side: str, qty: float, price: float, fee: float = 0.0, symbol: str = "AAPL") -> Fill:
    return Fill(fill_id=f"{side}{qty}@{price}", order_id="o", symbol=symbol, time=T, side=side,
                quantity=qty, price=price, fee=fee)


def test_worked_example_open_add_reduce_flip_cover_close():
    book = Portfolio(10_000)
    book.apply_fill(fill("buy", 10, 100, fee=1))       # open
    assert (book.cash, book.qty("AAPL"), book.positions["AAPL"].avg_cost) == (8_999, 10, 100)
    book.apply_fill(fill("buy", 10, 110, fee=1))       # add: cost blends to 105
    assert (book.cash, book.qty("AAPL"), book.positions["AAPL"].avg_cost) == (7_898, 20, 105)
    book.apply_fill(fill("sell", 5, 120, fee=1))       # reduce: realise 5 * 15
    assert book.positions["AAPL"].realized_pnl == 75
    assert (book.cash, book.qty("AAPL"), book.positions["AAPL"].avg_cost) == (8_497, 15, 105)
    book.apply_fill(fill("sell", 25, 100, fee=2))      # close 15 at -5 each, flip 10 short at 100
    assert book.positions["AAPL"].realized_pnl == 0
    assert (book.cash, book.qty("AAPL"), book.positions["AAPL"].avg_cost) == (10_995, -10, 100)
    book.apply_fill(fill("buy", 4, 90))                # cover 4 of the short: +10 each
    assert book.positions["AAPL"].realized_pnl == 40
    assert (book.cash, book.qty("AAPL"), book.positions["AAPL"].avg_cost) == (10_635, -6, 100)

    prices = {"AAPL": 95.0}
    assert book.position_value("AAPL", prices) == -570
    assert book.equity(prices) == 10_065
    assert book.unrealized_pnl(prices) == 30
    assert book.gross_exposure(prices) == 570 / 10_065  # a fraction of equity
    assert book.fees_paid == 5
    # equity - initial == realised + unrealised - fees
    assert book.equity(prices) - 10_000 == book.realized_pnl + book.unrealized_pnl(prices) - 5

    book.apply_fill(fill("buy", 6, 80))                # close the short
    assert book.qty("AAPL") == 0 and book.positions["AAPL"].avg_cost == 0
    assert book.realized_pnl == 160
    assert book.equity({}) == book.cash == 10_155 == 10_000 + 160 - 5


def test_snapshot_row_tracks_peak_and_drawdown():
    book = Portfolio(10_000)
    book.apply_fill(fill("buy", 10, 100))
    book.apply_fill(fill("sell", 5, 300, symbol="MSFT"))
    up = book.snapshot(T, {"AAPL": 150.0, "MSFT": 300.0})
    assert set(up) == {"time", "cash", "equity", "gross_exposure", "drawdown", "positions"}
    assert up["equity"] == 10_500 and up["drawdown"] == 0 and book.peak_equity == 10_500
    assert up["gross_exposure"] == pytest.approx((1_500 + 1_500) / 10_500)
    down = book.snapshot(T + dt.timedelta(days=1), {"AAPL": 120.0})  # MSFT: last mark
    assert down["equity"] == 10_200
    assert down["drawdown"] == pytest.approx(10_200 / 10_500 - 1)
    assert down["positions"]["AAPL"] == {"qty": 10, "avg_cost": 100, "price": 120, "value": 1_200,
                                         "unrealized_pnl": 200, "realized_pnl": 0}
    assert down["positions"]["MSFT"]["value"] == -1_500
    assert book.peak_equity == 10_500
    json.dumps(down, default=str)  # the positions column is JSON


def test_missing_price_falls_back_to_last_known():
    book = Portfolio(1_000)
    book.apply_fill(fill("buy", 2, 100))
    assert book.equity({"AAPL": float("nan")}) == book.equity({}) == 1_000
    assert book.equity({"AAPL": 110.0}) == 1_020


def test_whole_shares_unless_fractional():
    with pytest.raises(ValueError, match="whole number"):
        Portfolio(1_000).apply_fill(fill("buy", 1.5, 10))
    crypto = Portfolio(1_000, fractional=True)
    crypto.apply_fill(fill("buy", 0.01234567, 42_283.58, symbol="BTC-USDT"))
    assert crypto.qty("BTC-USDT") == 0.01234567
    crypto.apply_fill(fill("sell", 0.01234567, 44_179.55, symbol="BTC-USDT"))
    assert crypto.qty("BTC-USDT") == 0.0


@pytest.mark.parametrize(("fractional", "qty", "expected"), [
    (False, 12.9, 12.0), (False, -12.9, -12.0), (False, 0.99, 0.0),
    (True, 0.123456789, 0.12345678), (True, 0.29, 0.29), (True, 0.2899999949, 0.28999999), (True, float("inf"), 0.0),
])
def test_round_qty_goes_toward_zero(fractional, qty, expected):
    assert Portfolio(1, fractional).round_qty(qty) == expected


def test_state_round_trips_exactly_through_json():
    book = Portfolio(100_000, fractional=True)
    book.apply_fill(fill("buy", 0.3, 42_283.58, fee=1.2685074, symbol="BTC-USDT"))
    book.apply_fill(fill("sell", 0.1, 44_179.55, fee=0.441795, symbol="BTC-USDT"))
    book.apply_fill(fill("sell", 1.7, 2_352.04, symbol="ETH-USDT"))
    book.snapshot(T, {"BTC-USDT": 44_000.1, "ETH-USDT": 2_300.0})
    state = book.to_state()
    again = Portfolio.from_state(json.loads(json.dumps(state)))
    assert again.to_state() == state
    prices = {"BTC-USDT": 93_576.0, "ETH-USDT": 2_400.0}
    assert again.equity(prices) == book.equity(prices)
    assert again.drawdown(prices) == book.drawdown(prices)
