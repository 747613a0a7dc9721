import datetime as dt
import json

import pandas as pd
import pytest

from flowkit.broker import OrderRequest, PaperBroker
from flowkit.errors import BrokerError, DataError
from flowkit.portfolio import Portfolio
from flowkit.risk import RiskEngine
from flowkit.spec.models import PortfolioSpec, RiskSpec
from sample_data import SAMPLE

DATA = SAMPLE
SYMBOLS = {"AAPL", "NVDA"}


def ohlc(symbol: str, date: str) -> tuple[float, float, float, float]:
    """A real bar from the shipped data."""
    frame = pd.read_csv(DATA / "ohlcv" / f"{symbol}.csv", index_col="date")
    return tuple(frame.loc[date, ["open", "high", "low", "close"]])


def firm(fill: str = "next_open", fee_bps: float = 1, slippage_bps: float = 5,
         **risk) -> tuple[PaperBroker, Portfolio, RiskEngine]:
    spec = PortfolioSpec(fill=fill, fee_bps=fee_bps, slippage_bps=slippage_bps)
    portfolio = Portfolio(spec.initial_cash, spec.fractional)
    engine = RiskEngine(RiskSpec(**risk), {}, SYMBOLS, fee_bps=fee_bps,
                        slippage_bps=slippage_bps, run_id="paper")
    return PaperBroker(spec, portfolio, engine), portfolio, engine


def bar(broker: PaperBroker, symbol: str, date: str) -> list:
    """The daily bar of `date`, stamped with its open (09:30 New York = 14:30 UTC in winter)."""
    return broker.on_bar(symbol, dt.datetime.fromisoformat(f"{date}T14:30"), *ohlc(symbol, date))


def decide(broker: PaperBroker, symbol: str, date: str, **proposal):
    """Review a proposal at the close of `date` and submit what the engine lets through."""
    as_of = dt.datetime.fromisoformat(f"{date}T21:00")  # the close, in UTC
    review = broker.risk.review({"symbol": symbol, **proposal}, broker.portfolio,
                                dict(broker.marks), as_of)
    assert review.order is not None, review
    return broker.submit(review.order)


def test_next_open_fills_at_the_next_bars_open_with_fee_and_slippage():
    broker, portfolio, _ = firm()
    bar(broker, "AAPL", "2024-01-02")
    sub = decide(broker, "AAPL", "2024-01-02", action="BUY", size_pct=10)
    assert (sub.order.status, sub.fill) == ("submitted", None)
    assert bar(broker, "AAPL", "2024-01-02") == []  # the decision bar itself never fills it
    (fill,) = bar(broker, "AAPL", "2024-01-03")
    open_ = ohlc("AAPL", "2024-01-03")[0]  # 182.6734
    assert fill.time == dt.datetime(2024, 1, 3, 14, 30)  # the next bar's open
    assert fill.price == pytest.approx(open_ * 1.0005)
    assert fill.quantity == 54  # 10% of 100000 at the 184.08 close, rounded down
    assert fill.fee == pytest.approx(54 * fill.price * 0.0001)
    assert fill.slippage == pytest.approx(54 * open_ * 0.0005)
    assert portfolio.cash == pytest.approx(100_000 - 54 * fill.price - fill.fee)
    assert broker.orders[fill.order_id].status == "filled"


def test_close_fills_at_the_decision_bars_close():
    broker, portfolio, _ = firm(fill="close")
    bar(broker, "AAPL", "2024-01-02")
    sub = decide(broker, "AAPL", "2024-01-02", action="BUY", size_pct=10)
    assert sub.order.status == "filled" and sub.fill is not None
    assert sub.fill.price == pytest.approx(ohlc("AAPL", "2024-01-02")[3] * 1.0005)
    assert sub.fill.time == dt.datetime(2024, 1, 2, 21, 0)  # the decision close
    assert portfolio.qty("AAPL") == 54
    assert bar(broker, "AAPL", "2024-01-03") == []
    with pytest.raises(BrokerError, match="no bar"):
        broker.submit(OrderRequest.create(run_id="x", as_of=dt.datetime(2024, 1, 2),
                                          symbol="NVDA", side="buy", quantity=1))


def test_submit_is_idempotent():
    broker, portfolio, _ = firm()
    bar(broker, "AAPL", "2024-01-02")
    order = OrderRequest.create(run_id="paper", as_of=dt.datetime(2024, 1, 2), symbol="AAPL",
                                side="buy", quantity=10)
    first = broker.submit(order)
    assert broker.submit(order) == first
    fills = bar(broker, "AAPL", "2024-01-03")
    assert len(fills) == 1
    again = broker.submit(order)
    assert again.order.status == "filled" and again.fill == fills[0]
    assert broker.submit(again.order) == again  # a record resubmitted is the same order
    assert bar(broker, "AAPL", "2024-01-03") == []  # a replayed bar fills nothing twice
    assert len(broker.orders) == 1 and len(broker.fills) == 1 and portfolio.qty("AAPL") == 10
    # The same id for a different order is a conflict, not a retry.
    with pytest.raises(BrokerError, match="different order"):
        broker.submit(order.model_copy(update={"side": "sell"}))


def test_a_gap_through_the_stop_fills_at_the_open():
    # NVDA 2008-07-03 opened 28% below the previous close (a profit warning).
    broker, portfolio, _ = firm()
    bar(broker, "NVDA", "2008-07-01")
    decide(broker, "NVDA", "2008-07-01", action="BUY", size_pct=10)
    (entry,) = bar(broker, "NVDA", "2008-07-02")  # low 0.4126 stays above the 8% stop
    assert broker.risk.state.stops["NVDA"].stop_loss == pytest.approx(entry.price * 0.92)
    (stop,) = bar(broker, "NVDA", "2008-07-03")
    assert broker.orders[stop.order_id].reason == "stop_loss"
    assert stop.price == pytest.approx(ohlc("NVDA", "2008-07-03")[0] * 0.9995)  # open, not stop
    assert portfolio.qty("NVDA") == 0 and not broker.risk.state.stops


def test_an_intrabar_stop_fills_at_the_stop():
    broker, portfolio, _ = firm()
    bar(broker, "AAPL", "2024-01-02")
    decide(broker, "AAPL", "2024-01-02", action="BUY", size_pct=10, stop_loss=180.0)
    bar(broker, "AAPL", "2024-01-03")  # opens 182.67, low 181.89: above the stop
    (stop,) = bar(broker, "AAPL", "2024-01-04")  # opens 180.62, low 179.36: through 180
    assert stop.price == pytest.approx(180.0 * 0.9995)
    assert stop.slippage == pytest.approx(stop.quantity * 180.0 * 0.0005)
    assert portfolio.qty("AAPL") == 0


def test_a_gap_through_the_take_profit_fills_at_the_better_open():
    # NVDA 2016-11-11 opened 17% higher on earnings.
    broker, portfolio, _ = firm()
    bar(broker, "NVDA", "2016-11-09")
    decide(broker, "NVDA", "2016-11-09", action="BUY", size_pct=10, take_profit=1.85)
    bar(broker, "NVDA", "2016-11-10")
    (exit_,) = bar(broker, "NVDA", "2016-11-11")
    assert broker.orders[exit_.order_id].reason == "take_profit"
    assert exit_.price == pytest.approx(ohlc("NVDA", "2016-11-11")[0] * 0.9995)
    assert portfolio.positions["NVDA"].realized_pnl > 0


def test_limit_orders_wait_for_their_price():
    broker, portfolio, _ = firm(fee_bps=0, slippage_bps=0)
    bar(broker, "AAPL", "2024-01-02")
    order = OrderRequest.create(run_id="x", as_of=dt.datetime(2024, 1, 2), symbol="AAPL",
                                side="buy", quantity=5, order_type="limit", limit_price=180.0)
    broker.submit(order)
    assert bar(broker, "AAPL", "2024-01-03") == []        # low 181.89: not reached
    (fill,) = bar(broker, "AAPL", "2024-01-04")           # low 179.36: filled at the limit
    assert fill.price == 180.0 and portfolio.qty("AAPL") == 5


def test_an_exit_never_flips_a_position_that_shrank_before_it_filled():
    broker, portfolio, engine = firm(max_drawdown_pct=1, max_position_pct=100)
    bar(broker, "AAPL", "2024-01-02")
    decide(broker, "AAPL", "2024-01-02", action="BUY", size_pct=50)
    bar(broker, "AAPL", "2024-01-03")
    held = portfolio.qty("AAPL")
    portfolio.snapshot(dt.datetime(2024, 1, 3), {"AAPL": 200.0})  # a peak the price falls from
    decide(broker, "AAPL", "2024-01-03", action="SELL", size_pct=20)  # reduce: allowed
    assert engine.halted
    (halt,) = engine.halt_orders(portfolio, dict(broker.marks), dt.datetime(2024, 1, 3))
    assert halt.quantity == held
    broker.submit(halt)
    reduce, flatten = bar(broker, "AAPL", "2024-01-04")
    assert flatten.quantity == held - reduce.quantity  # not `held`: that would go short
    assert portfolio.qty("AAPL") == 0


def test_orders_clipped_to_nothing_are_rejected():
    broker, portfolio, _ = firm()
    bar(broker, "AAPL", "2024-01-02")
    sub = broker.submit(OrderRequest.create(run_id="x", as_of=dt.datetime(2024, 1, 2),
                                            symbol="AAPL", side="sell", quantity=5))
    assert bar(broker, "AAPL", "2024-01-03") == []  # would short: not allowed
    assert broker.orders[sub.order.order_id].status == "rejected" and portfolio.qty("AAPL") == 0


def test_bad_bars_are_refused():
    broker, _, _ = firm()
    for prices in ((1.0, 2.0, 0.5, float("nan")), (1.0, 0.9, 0.5, 0.8), (0.0, 1.0, 0.0, 1.0)):
        with pytest.raises(DataError):
            broker.on_bar("AAPL", dt.date(2024, 1, 2), *prices)


def test_state_round_trips_with_a_pending_order():
    broker, portfolio, engine = firm()
    bar(broker, "AAPL", "2024-01-02")
    decide(broker, "AAPL", "2024-01-02", action="BUY", size_pct=10, stop_loss=180.0)
    state = json.loads(json.dumps({"broker": broker.to_state(), "risk": engine.to_state(),
                                   "portfolio": portfolio.to_state()}))
    resumed, resumed_pf, resumed_engine = firm()
    resumed.portfolio = resumed_pf = Portfolio.from_state(state["portfolio"])
    resumed_engine.load_state(state["risk"])
    resumed.load_state(state["broker"])
    assert resumed.to_state() == broker.to_state()
    for date in ("2024-01-03", "2024-01-04"):
        assert bar(resumed, "AAPL", date) == bar(broker, "AAPL", date)
    assert resumed_pf.to_state() == portfolio.to_state()
    assert resumed.to_state() == broker.to_state()
