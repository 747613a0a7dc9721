import datetime as dt
import json
import math

import numpy as np
import pytest
from pydantic import BaseModel

from flowkit.broker import Fill, OrderRequest
from flowkit.portfolio import Portfolio
from flowkit.domain.decision import Decision
from flowkit.risk import RULES, RiskEngine
from flowkit.spec.models import CvarSpec, RiskSpec

T = dt.datetime(2024, 1, 2)
SECTORS = {"AAPL": "tech", "MSFT": "tech", "NVDA": "tech", "XOM": "energy"}
PRICES = {"AAPL": 100.0, "MSFT": 100.0, "NVDA": 100.0, "XOM": 100.0}


def make_engine(fee_bps: float = 0, slippage_bps: float = 0, **limits) -> RiskEngine:
    return RiskEngine(RiskSpec(**limits), SECTORS, set(SECTORS), fee_bps=fee_bps,
                      slippage_bps=slippage_bps, run_id="t")


def book(cash: float = 100_000, fractional: bool = False, **positions: float) -> Portfolio:
    """A portfolio holding `positions` (signed shares) bought at 100, no fees."""
    pf = Portfolio(cash, fractional)
    for symbol, qty in positions.items():
        pf.apply_fill(Fill(fill_id=symbol, order_id=symbol, symbol=symbol, time=T,
                           side="buy" if qty > 0 else "sell", quantity=abs(qty), price=100.0))
    return pf


def buy(symbol: str, size_pct: float, **extra) -> dict:
    return {"symbol": symbol, "action": "BUY", "size_pct": size_pct, **extra}


def sell(symbol: str, size_pct: float, **extra) -> dict:
    return {"symbol": symbol, "action": "SELL", "size_pct": size_pct, **extra}


# ------------------------------------------------------------ verdicts and numbers per rule


def test_approve_within_every_limit_reports_every_rule():
    review = make_engine().review(buy("AAPL", 10), book(), PRICES, T)
    assert (review.verdict, review.rule) == ("approve", None)
    assert review.requested_qty == review.approved_qty == 100
    assert review.order is not None and review.order.side == "buy" and review.order.quantity == 100
    assert list(review.details["rules"]) == list(RULES)
    position = review.details["rules"]["max_position_pct"]
    assert (position["limit"], position["before"], position["after"]) == (20, 0, 10)
    assert review.details["rules"]["cash_available"]["after"] == 90_000
    json.dumps(review.model_dump(mode="json"))  # the details column is JSON


def test_position_limit_resizes_to_the_largest_allowed_quantity():
    review = make_engine().review(buy("AAPL", 50), book(), PRICES, T)
    assert (review.verdict, review.rule) == ("resize", "max_position_pct")
    assert (review.requested_qty, review.approved_qty) == (500, 200)
    assert review.details["rules"]["max_position_pct"]["after"] == 20
    assert review.details["rules"]["max_position_pct"]["max_qty"] == 200


def test_sector_limit_counts_the_whole_sector():
    engine, pf = make_engine(max_sector_pct=30), book(MSFT=250)
    review = engine.review(buy("AAPL", 20), pf, PRICES, T)
    assert (review.verdict, review.rule, review.approved_qty) == ("resize", "max_sector_pct", 50)
    sector = review.details["rules"]["max_sector_pct"]
    assert (sector["before"], sector["after"]) == (25, 30)
    assert engine.review(buy("XOM", 20), pf, PRICES, T).verdict == "approve"  # other sector


def test_gross_exposure_limit():
    review = make_engine(max_gross_exposure_pct=50).review(buy("AAPL", 20), book(MSFT=250, XOM=200),
                                                           PRICES, T)
    assert (review.verdict, review.rule, review.approved_qty) == ("resize",
                                                                  "max_gross_exposure_pct", 50)
    assert review.details["rules"]["max_gross_exposure_pct"]["after"] == 50


def test_cash_floor():
    engine = make_engine(max_position_pct=100, max_sector_pct=100, min_cash_pct=50)
    review = engine.review(buy("AAPL", 80), book(), PRICES, T)
    assert (review.verdict, review.rule, review.approved_qty) == ("resize", "min_cash_pct", 500)
    cash = review.details["rules"]["min_cash_pct"]
    assert (cash["before"], cash["after"]) == (100, 50)


def test_fees_and_slippage_are_priced_into_every_limit():
    engine = make_engine(fee_bps=10, slippage_bps=50, max_position_pct=100, max_sector_pct=100)
    review = engine.review(buy("AAPL", 100), book(), PRICES, T)
    # exec 100.5 per share, 0.1005 fee: floor cap = 95000 / (100.6005 - 0.05 * 0.6005) = 944.6
    assert review.details["exec_price"] == pytest.approx(100.5)
    assert (review.rule, review.approved_qty) == ("min_cash_pct", 944)
    assert review.details["rules"]["min_cash_pct"]["after"] >= 5
    assert review.details["rules"]["min_cash_pct"]["max_qty"] == pytest.approx(944.6108, abs=1e-3)
    tight = make_engine(fee_bps=10, slippage_bps=50).review(buy("AAPL", 50), book(), PRICES, T)
    assert tight.approved_qty == 199  # 20000 / (100 + 0.2 * 0.6005) = 199.76


def test_no_shorting_unless_allowed():
    engine = make_engine()
    review = engine.review(sell("AAPL", 10), book(), PRICES, T)
    assert (review.verdict, review.rule, review.requested_qty, review.approved_qty) == (
        "reject", "allow_short", -100, 0)
    assert review.order is None
    reduce = engine.review(sell("AAPL", 20), book(AAPL=100), PRICES, T)
    assert (reduce.verdict, reduce.rule, reduce.approved_qty) == ("resize", "allow_short", -100)
    assert reduce.order is not None and reduce.order.side == "sell"
    short = make_engine(allow_short=True).review(sell("AAPL", 10), book(), PRICES, T)
    assert (short.verdict, short.approved_qty) == ("approve", -100)


def test_flip_passes_the_reduction_and_limits_the_new_side():
    review = make_engine(allow_short=True).review(sell("AAPL", 50), book(AAPL=100), PRICES, T)
    # 100 close the long, then at most 200 short (20% of 100000 at 100)
    assert (review.verdict, review.rule, review.approved_qty) == ("resize", "max_position_pct",
                                                                  -300)
    assert review.details["rules"]["allow_short"]["after"] == -200


def test_reductions_pass_even_when_already_over_a_limit():
    pf = book(AAPL=300)  # 30% of equity: over the 20% limit after a price move
    review = make_engine().review(sell("AAPL", 5), pf, PRICES, T)
    assert (review.verdict, review.approved_qty) == ("approve", -50)
    adding = make_engine().review(buy("AAPL", 5), pf, PRICES, T)
    assert (adding.verdict, adding.rule) == ("reject", "max_position_pct")


# ------------------------------------------------------------ bad input


class OtherModel(BaseModel):
    symbol: str
    action: str
    size_pct: float


@pytest.mark.parametrize("junk", [
    None, 42, "BUY AAPL", [1, 2], float("nan"), object(),
    {}, {"symbol": "AAPL"}, {"symbol": "AAPL", "action": "BUY"},
    {"symbol": "AAPL", "action": "BUY", "size_pct": float("nan")},
    {"symbol": "AAPL", "action": "BUY", "size_pct": float("inf")},
    {"symbol": "AAPL", "action": "BUY", "size_pct": -5},
    {"symbol": "AAPL", "action": "BUY", "size_pct": 1e308},
    {"symbol": "AAPL", "action": "BUY", "size_pct": True},
    {"symbol": "AAPL", "action": "BUY", "size_pct": "lots"},
    {"symbol": "AAPL", "action": "YOLO", "size_pct": 5},
    {"symbol": "ZZZZ", "action": "BUY", "size_pct": 5},
    {"symbol": 7, "action": "BUY", "size_pct": 5},
    {"symbol": ["AAPL"], "action": "BUY", "size_pct": 5},
])
def test_junk_is_rejected_as_invalid_proposal(junk):
    review = make_engine().review(junk, book(), PRICES, T)
    assert (review.verdict, review.rule, review.approved_qty, review.order) == (
        "reject", "invalid_proposal", 0, None)
    assert review.details["error"]


def test_lenient_where_it_is_harmless():
    engine = make_engine()
    for proposal in (
        {"symbol": " aapl ", "action": "buy", "size_pct": "10", "reasoning": "extra keys ignored"},
        Decision(symbol="AAPL", action="BUY", size_pct=10),
        OtherModel(symbol="AAPL", action="BUY", size_pct=10),
        buy("AAPL", 10, stop_loss="junk", take_profit=float("nan"), confidence=7),
    ):
        review = engine.review(proposal, book(), PRICES, T)
        assert (review.verdict, review.approved_qty) == ("approve", 100)
    assert review.details["stops"] == {"side": "long", "stop_loss": 92.0, "take_profit": 120.0}


def test_hold_missing_price_and_dust():
    engine = make_engine()
    hold = engine.review({"symbol": "AAPL", "action": "HOLD"}, book(), PRICES, T)
    assert (hold.verdict, hold.rule, hold.approved_qty, hold.order) == ("approve", None, 0, None)
    for prices in ({}, {"AAPL": float("nan")}, {"AAPL": -1.0}, {"AAPL": "100"}):
        assert engine.review(buy("AAPL", 10), book(), prices, T).rule == "no_price"
    dust = engine.review(buy("AAPL", 0.01), book(), {**PRICES, "AAPL": 1_000.0}, T)
    assert (dust.verdict, dust.rule) == ("reject", "zero_quantity")


# ------------------------------------------------------------ drawdown halt


def test_drawdown_halt_blocks_new_exposure_latches_and_flattens():
    engine, pf = make_engine(max_drawdown_pct=10), book(AAPL=500)
    pf.snapshot(T, PRICES)  # peak 100000
    fallen = {**PRICES, "AAPL": 75.0}  # equity 87500: 12.5% down
    review = engine.review(buy("MSFT", 5), pf, fallen, T)
    assert (review.verdict, review.rule) == ("reject", "max_drawdown_pct")
    assert review.details["rules"]["max_drawdown_pct"]["before"] == pytest.approx(-12.5)
    assert engine.halted
    assert engine.review(sell("AAPL", 10), pf, fallen, T).verdict == "approve"  # reductions pass
    (order,) = engine.halt_orders(pf, fallen, T)
    assert (order.symbol, order.side, order.quantity, order.reason) == ("AAPL", "sell", 500,
                                                                          "drawdown_halt")
    assert engine.review(buy("MSFT", 5), pf, PRICES, T).rule == "max_drawdown_pct"  # latched
    assert make_engine(max_drawdown_pct=10).halt_orders(pf, PRICES, T) == []


# ------------------------------------------------------------ CVaR trigger


def cvar_engine(scale: float = 0.5) -> RiskEngine:
    return RiskEngine(RiskSpec(cvar=CvarSpec(window=5, confidence=0.8, trigger_drop_pct=25,
                                             scale=scale)), SECTORS, set(SECTORS))


def test_cvar_worsening_turns_the_firm_risk_averse_while_the_tail_stays_worse():
    engine = cvar_engine()
    for equity in (100, 101, 100, 101, 100, 101):  # fills the 5-return window
        engine.update_daily(equity)
    assert engine.state.cvar == pytest.approx(100 / 101 - 1) and not engine.risk_averse
    engine.update_daily(95)  # worst return -5.9%: far worse than -0.99%
    assert engine.risk_averse
    assert engine.state.cvar == pytest.approx(95 / 101 - 1)
    assert engine.state.reference_cvar == 0  # the first CVaR (one +1% return) was a gain

    review = engine.review(buy("AAPL", 10), book(), PRICES, T)
    assert (review.verdict, review.rule, review.approved_qty) == ("resize", "cvar", 50)
    assert review.details["rules"]["cvar"]["risk_averse"] is True
    assert engine.review(sell("AAPL", 10), book(AAPL=100), PRICES, T).verdict == "approve"

    for _ in range(4):  # the -5.9% day is still in the window: still averse
        engine.update_daily(95)
        assert engine.risk_averse
    engine.update_daily(95)  # it has left the window: the tail is calm again
    assert not engine.risk_averse
    assert engine.review(buy("AAPL", 10), book(), PRICES, T).verdict == "approve"


def test_cvar_scale_zero_blocks_buys():
    engine = cvar_engine(scale=0)
    for equity in (100, 101, 100, 101, 100, 101, 95):
        engine.update_daily(equity)
    review = engine.review(buy("AAPL", 10), book(), PRICES, T)
    assert (review.verdict, review.rule) == ("reject", "cvar")


# ------------------------------------------------------------ stops


@pytest.mark.parametrize(("action", "stop", "take", "expected"), [
    ("BUY", None, None, (92, 120)),
    ("BUY", 95, 110, (95, 110)),    # tighter: used
    ("BUY", 90, 130, (92, 120)),    # looser: defaults
    ("BUY", 105, 99, (92, 120)),    # wrong side of entry: defaults
    ("SELL", None, None, (108, 80)),
    ("SELL", 104, 85, (104, 85)),
    ("SELL", 95, 105, (108, 80)),
])
def test_stop_levels(action, stop, take, expected):
    proposal = Decision(symbol="AAPL", action=action, size_pct=5, stop_loss=stop, take_profit=take)
    levels = make_engine().stop_levels(proposal, 100.0)
    assert (levels.stop_loss, levels.take_profit) == pytest.approx(expected)


def test_stop_levels_without_defaults():
    engine = make_engine(stop_loss_pct=None, take_profit_pct=150)
    short = Decision(symbol="AAPL", action="SELL", size_pct=5)
    assert engine.stop_levels(short, 100.0).model_dump() == {"side": "short", "stop_loss": None,
                                                             "take_profit": None}
    own = Decision(symbol="AAPL", action="BUY", size_pct=5, stop_loss=97)
    assert engine.stop_levels(own, 100.0).stop_loss == 97


def opened(engine: RiskEngine, qty: float, price: float = 100.0) -> Portfolio:
    """A position opened through the engine, so its stops are registered."""
    pf = Portfolio(100_000)
    f = Fill(fill_id="f", order_id="o", symbol="AAPL", time=T, side="buy" if qty > 0 else "sell",
             quantity=abs(qty), price=price)
    pf.apply_fill(f)
    engine.on_fill(f, pf)
    return pf


@pytest.mark.parametrize(("bar", "expected"), [
    ((95, 99, 93), None),
    ((95, 99, 91), ("stop_loss", "stop", 92)),        # intrabar
    ((90, 95, 85), ("stop_loss", "stop", 92)),        # gap down: the broker fills at the open
    ((125, 130, 110), ("take_profit", "limit", 120)),  # gap up through the target
    ((100, 121, 99), ("take_profit", "limit", 120)),
    ((100, 121, 91), ("stop_loss", "stop", 92)),      # both touched: stop assumed first
])
def test_check_stops_long(bar, expected):
    engine = make_engine()
    pf = opened(engine, 100)
    orders = engine.check_stops(pf, "AAPL", *bar, T + dt.timedelta(days=1))
    if expected is None:
        assert orders == []
    else:
        (order,) = orders
        assert (order.reason, order.order_type, order.limit_price) == pytest.approx(expected)
        assert (order.side, order.quantity) == ("sell", 100)


def test_check_stops_short_and_after_close():
    engine = make_engine(allow_short=True)
    pf = opened(engine, -50)
    (order,) = engine.check_stops(pf, "AAPL", 101, 109, 100, T + dt.timedelta(days=1))
    assert (order.reason, order.side, order.quantity, order.limit_price) == ("stop_loss", "buy",
                                                                             50, 108)
    cover = Fill(fill_id="c", order_id="c", symbol="AAPL", time=T, side="buy", quantity=50,
                 price=108.0)
    pf.apply_fill(cover)
    engine.on_fill(cover, pf)
    assert engine.check_stops(pf, "AAPL", 101, 200, 1, T) == [] and not engine.state.stops


def test_stops_follow_the_average_cost_and_the_approved_proposal():
    engine = make_engine()
    review = engine.review(buy("AAPL", 10, stop_loss=97), book(), PRICES, T)
    assert review.details["stops"]["stop_loss"] == 97
    pf = opened(engine, 100, price=100.0)
    assert engine.state.stops["AAPL"].stop_loss == 97
    add = Fill(fill_id="a", order_id="a", symbol="AAPL", time=T, side="buy", quantity=100,
               price=110.0)
    pf.apply_fill(add)
    engine.on_fill(add, pf)  # entry is now 105: the trader's 97 is still tighter than 96.6
    assert engine.state.stops["AAPL"].stop_loss == pytest.approx(97)
    assert engine.state.stops["AAPL"].take_profit == pytest.approx(126)


# ------------------------------------------------------------ fill-time guarantee


def order(side: str, qty: float, reason: str = "decision") -> OrderRequest:
    return OrderRequest.create(run_id="t", as_of=T, symbol="AAPL", side=side, quantity=qty,
                               reason=reason)


def test_clip_to_limits_rechecks_at_the_fill_price():
    engine = make_engine()
    assert engine.clip_to_limits(order("buy", 200), book(), 100.0, PRICES) == 200
    assert engine.clip_to_limits(order("buy", 200), book(), 110.0, PRICES) == 181  # 20000/110


def test_exits_never_flip_and_covers_never_overdraw_cash():
    engine = make_engine(allow_short=True, min_cash_pct=0)
    assert engine.clip_to_limits(order("sell", 150, "stop_loss"), book(AAPL=100), 90.0,
                                 PRICES) == 100
    pf = book(10_000, XOM=-100, AAPL=150)  # cash 5000 after shorting XOM and buying AAPL
    assert pf.cash == 5_000
    qty = engine.clip_to_limits(
        OrderRequest.create(run_id="t", as_of=T, symbol="XOM", side="buy", quantity=100,
                            reason="stop_loss"), pf, 150.0, {**PRICES, "XOM": 150.0})
    assert qty == 33  # 5000 / 150: a partial cover rather than negative cash


def test_clip_blocks_new_exposure_once_halted_at_the_fill():
    engine, pf = make_engine(max_drawdown_pct=10, max_position_pct=100), book(AAPL=500)
    pf.snapshot(T, PRICES)
    gap = {**PRICES, "AAPL": 70.0}  # the open gaps 15% below the peak equity
    assert engine.clip_to_limits(order("buy", 10), pf, 70.0, gap) == 0
    assert engine.halted
    assert engine.clip_to_limits(order("sell", 10), pf, 70.0, gap) == 10


# ------------------------------------------------------------ resume


def test_engine_state_round_trips_through_json():
    engine = cvar_engine()
    for equity in (100, 101, 100, 101, 100, 101, 95):
        engine.update_daily(equity)
    engine.review(buy("AAPL", 10, stop_loss=97), book(), PRICES, T)
    pf = opened(engine, 100)
    state = json.loads(json.dumps(engine.to_state()))
    again = cvar_engine()
    again.load_state(state)
    assert again.to_state() == engine.to_state()
    assert again.risk_averse and again.state.stops["AAPL"].stop_loss == 97
    bar = (98, 99, 96.5)
    assert again.check_stops(pf, "AAPL", *bar, T) == engine.check_stops(pf, "AAPL", *bar, T)
    again.update_daily(95)
    engine.update_daily(95)
    assert again.to_state() == engine.to_state()


def test_cvar_is_the_mean_of_the_tail():
    from flowkit.risk import cvar
    returns = [0.01 * i for i in range(-10, 10)]  # 20 values, 5% tail = the single worst
    assert cvar(returns, 0.95) == pytest.approx(-0.10)
    assert cvar(returns, 0.9) == pytest.approx(-0.095)
    assert math.isfinite(cvar([0.0], 0.99))


# ------------------------------------------------------------ CVaR trigger, from the first day


def cvar_states(curve: list[float], **spec) -> list[dict]:
    engine = RiskEngine(RiskSpec(cvar=CvarSpec(**spec)), SECTORS, set(SECTORS))
    out = []
    for equity in curve:
        engine.update_daily(equity)
        out.append(engine.daily_state())
    return out


def test_cvar_trigger_is_defined_from_the_first_day():
    states = cvar_states([100.0, 96.0, 96.5])
    assert states[0] == {"daily_return": None, "cvar": None, "reference_cvar": None,
                         "risk_averse": False, "halted": False, "reason": "no return yet"}
    # The second day already has a CVaR (one return) and a reference (a flat book's 0).
    assert states[1]["cvar"] == pytest.approx(-0.04) and states[1]["reference_cvar"] == 0
    assert states[1]["risk_averse"] and "worse than the calmest recent CVaR" in states[1]["reason"]


def test_a_calm_books_first_small_loss_is_not_a_regime_change():
    """The issue's case: CVaR 0 after calm days, then a -0.24% tail."""
    calm = [100_000.0] * 30
    states = cvar_states(calm + [100_000 * (1 - 0.0024)])
    assert not any(s["risk_averse"] for s in states)
    assert "milder than the -1.00% floor" in states[-1]["reason"]


def test_a_slow_slide_triggers_like_a_crash():
    """The issue's other case: a drawdown of 4.4% in small steps, each barely worse than the
    day before, turns the firm risk-averse once the tail is 25% worse than recently."""
    rng = np.random.default_rng(7)
    calm = list(100_000 * np.cumprod(1 + rng.normal(0.0005, 0.004, 40)))
    slide = list(calm[-1] * np.cumprod(np.full(4, 1 - 0.0112)))  # -4.4% over four days
    states = cvar_states(calm + slide)
    assert not any(s["risk_averse"] for s in states[:40])
    assert any(s["risk_averse"] for s in states[40:])


def test_cvar_off_is_recorded():
    engine = RiskEngine(RiskSpec(), SECTORS, set(SECTORS))
    engine.update_daily(100.0)
    assert engine.daily_state()["reason"] == "CVaR trigger off" and not engine.risk_averse
