"""CcxtBroker against the real ccxt client, offline: markets come from a JSON file, and the
exchange's low-level `fetch` (the one HTTP call every ccxt request goes through) is replaced by a
fake exchange that records each request and answers from documented response formats."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import ccxt
import pytest

from flowkit.broker import CcxtBroker, OrderRequest
from flowkit.errors import BrokerError
from flowkit.portfolio import Portfolio
from flowkit.risk import RiskEngine
from flowkit.spec.models import RiskSpec
from sample_data import OHLCV

FIXTURES = Path(__file__).parent / "data" / "ccxt_broker"
BTC = OHLCV / "BTC-USDT.csv"
KEY, SECRET = "test-key-5e1f0c", "test-secret-9a7b2d"
# What an order request says, on binance (form fields) and bybit (JSON).
SENT = {"id": re.compile(r"(?:newClientOrderId|orderLinkId)\W+([A-Za-z0-9_-]+)"),
        "side": re.compile(r"side\W+(\w+)"),
        "quantity": re.compile(r"(?:quantity|qty)\W+([0-9.]+)")}
TOKENS = {"id": "$CLIENT_ORDER_ID", "side": "$SIDE", "quantity": "$QUANTITY"}  # in the fixtures


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: str

    @property
    def route(self) -> str:
        return f"{self.method} {urlparse(self.url).path}"


@dataclass
class FakeExchange:
    """Stands in for the network. `fail` maps a route to an exception raised after the
    request reached the exchange (`landed`) or before it did."""

    responses: dict[str, Any]
    requests: list[Request] = field(default_factory=list)
    landed: list[dict[str, str]] = field(default_factory=list)  # orders the exchange holds
    fail: dict[str, tuple[Exception, bool]] = field(default_factory=dict)

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None):
        request = Request(method, url, dict(headers or {}), body or "")
        self.requests.append(request)
        error, landed = self.fail.pop(request.route, (None, True))
        if request.method == "POST" and landed:
            self.landed.append({k: m.group(1) for k, rx in SENT.items()
                                if (m := rx.search(url + request.body))})
        if error is not None:
            raise error
        last = self.landed[-1] if self.landed else {"id": "someone-elses-order", "side": "Buy",
                                                    "quantity": "0.023"}
        text = json.dumps(self.responses[request.route])
        for key in last:
            text = text.replace(TOKENS[key], last[key])
        return json.loads(text)

    def routes(self) -> list[str]:
        return [r.route for r in self.requests]


def keys(exchange: str, **extra: str) -> dict[str, str]:
    return {f"FLOWKIT_{exchange.upper()}_API_KEY": KEY,
            f"FLOWKIT_{exchange.upper()}_SECRET": SECRET, **extra}


def broker(exchange_id: str, **attached: Any) -> tuple[CcxtBroker, FakeExchange]:
    b = CcxtBroker(exchange_id, env=keys(exchange_id), **attached)
    b.exchange.set_markets(json.loads((FIXTURES / f"{exchange_id}_markets.json").read_text()))
    fake = FakeExchange(json.loads((FIXTURES / f"{exchange_id}_responses.json").read_text()))
    b.exchange.fetch = fake
    return b, fake


ORDER = OrderRequest.create(run_id="ccxt-test", as_of=dt.datetime(2024, 1, 2), symbol="BTC-USDT",
                            side="buy", quantity=0.023)


# ------------------------------------------------------------ binance


def test_binance_order_carries_the_client_id_to_the_testnet():
    b, fake = broker("binance")
    sub = b.submit(ORDER)
    (create,) = fake.requests
    assert create.route == "POST /api/v3/order"
    assert create.url.startswith("https://testnet.binance.vision/api/v3/order")
    sent = create.url + create.body
    assert f"newClientOrderId={ORDER.order_id}" in sent
    assert "symbol=BTCUSDT" in sent and "side=BUY" in sent and "type=MARKET" in sent
    assert "quantity=0.023" in sent
    assert (sub.order.status, sub.order.broker) == ("filled", "ccxt:binance")
    assert sub.fill is not None
    assert (sub.fill.quantity, sub.fill.price) == (0.023, 42283.58)
    assert sub.fill.fee == pytest.approx(0.000023 * 42283.58)  # paid in BTC, counted in USDT
    assert sub.fill.time == dt.datetime(2024, 1, 2, 0, 0, 0, 123000)


def test_a_retried_filled_order_sends_nothing():
    b, fake = broker("binance")
    first = b.submit(ORDER)
    assert b.submit(ORDER) == first
    assert fake.routes() == ["POST /api/v3/order"]


def test_a_lost_response_is_looked_up_not_resent():
    b, fake = broker("binance")
    fake.fail["POST /api/v3/order"] = (ccxt.RequestTimeout("binance timed out"), True)
    sub = b.submit(ORDER)
    assert fake.routes() == ["POST /api/v3/order", "GET /api/v3/openOrders",
                             "GET /api/v3/allOrders"]
    assert sub.order.status == "filled" and sub.fill is not None and sub.fill.quantity == 0.023


def test_an_order_that_never_landed_is_sent_again_with_the_same_id():
    b, fake = broker("binance")
    fake.fail["POST /api/v3/order"] = (ccxt.NetworkError("connection reset"), False)
    with pytest.raises(BrokerError, match="not on the exchange"):
        b.submit(ORDER)
    assert b.orders[ORDER.order_id].status == "submitted"
    sub = b.submit(ORDER)  # the retry looks first, finds nothing, then sends
    assert fake.routes() == ["POST /api/v3/order", "GET /api/v3/openOrders",
                             "GET /api/v3/allOrders", "GET /api/v3/openOrders",
                             "GET /api/v3/allOrders", "POST /api/v3/order"]
    creates = [r for r in fake.requests if r.method == "POST"]
    assert all(f"newClientOrderId={ORDER.order_id}" in r.url + r.body for r in creates)
    assert sub.order.status == "filled"


def test_exchange_errors_never_carry_the_keys():
    b, fake = broker("binance")
    fake.fail["POST /api/v3/order"] = (
        ccxt.AuthenticationError(f'binance {{"code":-2015,"msg":"bad key {KEY} / {SECRET}"}}'),
        False)
    with pytest.raises(BrokerError) as caught:
        b.submit(ORDER)
    assert KEY not in str(caught.value) and SECRET not in str(caught.value)
    assert "***" in str(caught.value) and "AuthenticationError" in str(caught.value)
    assert b.orders[ORDER.order_id].status == "rejected"


def test_state_round_trips_and_a_restored_broker_looks_before_sending():
    b, fake = broker("binance")
    fake.fail["POST /api/v3/order"] = (ccxt.NetworkError("connection reset"), True)
    fake.fail["GET /api/v3/openOrders"] = (ccxt.NetworkError("still down"), True)
    with pytest.raises(BrokerError, match="lookup failed"):
        b.submit(ORDER)  # landed, but we could not confirm it before the process died
    state = json.loads(json.dumps(b.to_state()))
    restored, fake2 = broker("binance")
    fake2.landed = fake.landed  # the same exchange
    restored.load_state(state)
    assert restored.to_state() == state
    sub = restored.submit(ORDER)
    assert "POST /api/v3/order" not in fake2.routes()
    assert sub.order.status == "filled"


# ------------------------------------------------------------ bybit


def test_bybit_order_link_id_and_lookup_on_retry():
    b, fake = broker("bybit")
    sub = b.submit(ORDER)
    create = next(r for r in fake.requests if r.route == "POST /v5/order/create")
    assert create.url.startswith("https://api-testnet.bybit.com/v5/order/create")
    body = json.loads(create.body)
    assert body["orderLinkId"] == ORDER.order_id
    assert (body["symbol"], body["side"], body["orderType"], body["qty"]) == (
        "BTCUSDT", "Buy", "Market", "0.023")
    assert (sub.order.status, sub.fill) == ("submitted", None)  # bybit acknowledges only

    again = b.submit(ORDER)
    assert [r for r in fake.routes() if r.startswith("POST")] == ["POST /v5/order/create"]
    assert fake.routes()[-2:] == ["GET /v5/order/realtime", "GET /v5/order/history"]
    assert again.order.status == "filled" and again.fill is not None
    assert (again.fill.quantity, again.fill.price) == (0.023, 42283.58)
    assert again.fill.fee == pytest.approx(0.000023 * 42283.58)


# ------------------------------------------------------------ with the firm's book attached


def btc_bar(date: str) -> tuple[dt.datetime, float, float, float, float]:
    """A real BTC-USDT daily bar from the shipped data."""
    for line in BTC.read_text().splitlines()[1:]:
        day, *ohlc = line.split(",")
        if day == date:
            return (dt.datetime.fromisoformat(day), *map(float, ohlc[:4]))
    raise KeyError(date)


def attached(cash: float) -> dict[str, Any]:
    return {"portfolio": Portfolio(cash, fractional=True),
            "risk_engine": RiskEngine(RiskSpec(), {}, {"BTC-USDT"}, slippage_bps=5,
                                      run_id="ccxt-test")}


def test_fills_are_booked_and_stops_sent_as_exits():
    b, fake = broker("binance", **attached(100_000))
    with pytest.raises(BrokerError, match="no price"):  # limits need a price to be checked at
        b.submit(ORDER)
    assert fake.requests == []
    b.on_bar("BTC-USDT", *btc_bar("2024-01-01"))
    sub = b.submit(ORDER)  # 0.023 BTC is about 1% of equity: inside every limit
    assert sub.fill is not None
    assert b.portfolio.qty("BTC-USDT") == 0.023
    assert b.portfolio.cash == pytest.approx(100_000 - 0.023 * 42283.58 - sub.fill.fee)
    assert b.risk.state.stops["BTC-USDT"].stop_loss == pytest.approx(42283.58 * 0.92)

    assert b.on_bar("BTC-USDT", *btc_bar("2024-01-22")) == []  # low 39,432: above the stop
    (exit_,) = b.on_bar("BTC-USDT", *btc_bar("2024-01-23"))    # low 38,555: through the stop
    sell = fake.requests[-1]
    assert sell.route == "POST /api/v3/order" and "side=SELL" in sell.body
    assert "type=MARKET" in sell.body and "quantity=0.023" in sell.body
    assert b.orders[exit_.order_id].reason == "stop_loss"
    assert b.portfolio.qty("BTC-USDT") == 0 and not b.risk.state.stops


def test_orders_are_clipped_before_sending_and_booked_when_final():
    b, fake = broker("bybit", **attached(1_000))
    b.on_bar("BTC-USDT", *btc_bar("2024-01-01"))
    sub = b.submit(ORDER)
    create = next(r for r in fake.requests if r.route == "POST /v5/order/create")
    # 20% of 1000 USDT at the 44,179.55 close moved 5 bps against us, to bybit's 1e-6 step
    assert json.loads(create.body)["qty"] == "0.004524"
    assert sub.fill is None and b.portfolio.qty("BTC-USDT") == 0  # acknowledged, not final
    (fill,) = b.on_bar("BTC-USDT", *btc_bar("2024-01-02"))  # polled: now filled
    assert (fill.quantity, fill.price) == (0.004524, 42283.58)
    assert b.portfolio.qty("BTC-USDT") == 0.004524
    assert b.on_bar("BTC-USDT", *btc_bar("2024-01-03")) == []  # booked once


# ------------------------------------------------------------ refusals, before any network


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a request was attempted")
    monkeypatch.setattr(ccxt.Exchange, "fetch", refuse)


def test_live_needs_the_flag_and_the_confirmation(no_network):
    with pytest.raises(BrokerError, match="FLOWKIT_LIVE_CONFIRM"):
        CcxtBroker("binance", live=True, env=keys("binance"))
    with pytest.raises(BrokerError, match="FLOWKIT_LIVE_CONFIRM"):
        CcxtBroker("binance", live=True, env=keys("binance", FLOWKIT_LIVE_CONFIRM="yes"))
    with pytest.raises(BrokerError, match="live=True"):
        CcxtBroker("binance", sandbox=False, env=keys("binance",
                                                      FLOWKIT_LIVE_CONFIRM="I-UNDERSTAND"))
    live = CcxtBroker("binance", live=True, env=keys("binance",
                                                     FLOWKIT_LIVE_CONFIRM="I-UNDERSTAND"))
    assert live.exchange.urls["api"]["private"] == "https://api.binance.com/api/v3"
    sandbox = CcxtBroker("binance", env=keys("binance"))
    assert sandbox.exchange.urls["api"]["private"].startswith("https://testnet.binance.vision")


def test_keys_only_from_the_environment_and_known_exchanges_only(no_network):
    with pytest.raises(BrokerError, match="FLOWKIT_BINANCE_API_KEY"):
        CcxtBroker("binance", env={})
    with pytest.raises(BrokerError, match="no exchange"):
        CcxtBroker("notanexchange", env=keys("notanexchange"))
