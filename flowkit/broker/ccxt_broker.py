"""Orders through a real exchange with ccxt: its sandbox (testnet) unless live trading is asked
for twice, by live=True and by FLOWKIT_LIVE_CONFIRM=I-UNDERSTAND in the environment.

Keys come only from FLOWKIT_<EXCHANGE>_API_KEY / _SECRET (and _PASSWORD where the exchange has
one) and are scrubbed from every error message. Idempotency: the order id travels as the
exchange's client order id (ccxt's `clientOrderId` param, sent as newClientOrderId on binance and
orderLinkId on bybit). Submitting an id this broker has sent before, or retrying after a network
error, first looks the order up by that client id among the exchange's open, then closed and
cancelled orders, and sends again only if the exchange never saw it. An order already known
to be filled or cancelled is returned as recorded, without a request.

With a portfolio and risk engine attached (as the trading loop does), it behaves like the paper
broker: `on_bar` records the price, polls orders still working on the symbol and sends the exits
the engine's stops call for; every order is clipped to the hard limits at the latest price (moved
against us by the engine's slippage) before it is sent, and a fill is booked into the portfolio
once its order is final (filled, or cancelled after a partial fill). Limits are checked at that
price, not at the exchange's fill price, which only the exchange knows in advance.

Order types: `limit` goes out as a limit order; `market` and `stop` as market orders (the engine
emits a stop only once its level has been reached, so exits are at most one bar late). Fees paid
in the base currency are converted at the fill price; fees in a third currency (e.g. BNB) are not
counted; an order found by lookup carries a fee only if the exchange's order query reports one
(binance's allOrders does not)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowkit.broker.base import Broker
from flowkit.domain.orders import Fill, OrderRequest, OrderStatus, Submission
from flowkit.errors import BrokerError

if TYPE_CHECKING:  # for annotations only: the broker gets them from its caller
    from flowkit.portfolio import Portfolio
    from flowkit.risk import RiskEngine
    from flowkit.spec.models import PortfolioSpec

LIVE_CONFIRM_ENV = "FLOWKIT_LIVE_CONFIRM"
LIVE_CONFIRM_VALUE = "I-UNDERSTAND"

_STATUS: dict[str, OrderStatus] = {"open": "submitted", "closed": "filled",
                                   "canceled": "cancelled", "expired": "cancelled",
                                   "rejected": "rejected"}
_FINAL = {"filled", "cancelled"}  # "rejected" may be our own record of a failed send


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def market_symbol(symbol: str) -> str:
    """flowkit's BTC-USDT is ccxt's BTC/USDT."""
    return symbol if "/" in symbol else symbol.replace("-", "/", 1)


class CcxtBroker(Broker):
    def __init__(self, exchange_id: str, *, sandbox: bool = True, live: bool = False,
                 portfolio: Portfolio | None = None, risk_engine: RiskEngine | None = None,
                 env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        if live and env.get(LIVE_CONFIRM_ENV) != LIVE_CONFIRM_VALUE:
            raise BrokerError(f"live trading on {exchange_id} needs live=True and "
                              f"{LIVE_CONFIRM_ENV}={LIVE_CONFIRM_VALUE} in the environment")
        if not live and not sandbox:
            raise BrokerError(f"leaving the {exchange_id} sandbox is live trading: pass live=True "
                              f"and set {LIVE_CONFIRM_ENV}={LIVE_CONFIRM_VALUE}")
        prefix = f"FLOWKIT_{exchange_id.upper()}_"
        key, secret = env.get(prefix + "API_KEY"), env.get(prefix + "SECRET")
        if not key or not secret:
            raise BrokerError(f"set {prefix}API_KEY and {prefix}SECRET to trade on {exchange_id}")
        password = env.get(prefix + "PASSWORD")
        self._secrets = [s for s in (key, secret, password) if s]

        import ccxt  # heavy: imported only when an exchange broker is built

        self._ccxt = ccxt
        exchange_cls = getattr(ccxt, exchange_id, None)
        if not (isinstance(exchange_cls, type) and issubclass(exchange_cls, ccxt.Exchange)):
            raise BrokerError(f"ccxt has no exchange {exchange_id!r}")
        config: dict[str, Any] = {"apiKey": key, "secret": secret, "enableRateLimit": True}
        if password:
            config["password"] = password
        self.exchange = exchange_cls(config)
        if not live:
            try:
                self.exchange.set_sandbox_mode(True)
            except ccxt.NotSupported as exc:
                raise BrokerError(f"{exchange_id} has no sandbox in ccxt") from exc
        self.live = live
        self.name = f"ccxt:{exchange_id}"
        super().__init__(portfolio, risk_engine)

    @classmethod
    def from_spec(cls, spec: PortfolioSpec, portfolio: Portfolio, risk_engine: RiskEngine, *,
                  live: bool = False) -> CcxtBroker:
        """Its sandbox unless `live` (and the confirmation in the environment)."""
        return cls(spec.exchange or "", sandbox=not live, live=live, portfolio=portfolio,
                   risk_engine=risk_engine)

    def submit(self, order: OrderRequest) -> Submission:
        """Place `order` once, however often it is submitted."""
        if self._known(order):
            if self._orders[order.order_id].status in _FINAL:  # the exchange cannot undo these
                return self._submission(order.order_id)
            found = self._lookup(order)
            if found is not None:
                return self._adopt(order, found)
        if self.risk is not None and order.symbol not in self._marks:
            raise BrokerError(f"{order.symbol}: no price seen yet to check the limits at")
        self._record(order, "submitted", _utc_now())  # before sending: a crash then looks it up
        symbol = market_symbol(order.symbol)
        try:
            self.exchange.load_markets()  # cached: no request once markets are set
            amount = self._allowed(order)
            if amount <= 0:
                self._set_status(order.order_id, "rejected")
                return self._submission(order.order_id)
            response = self.exchange.create_order(
                symbol, "limit" if order.order_type == "limit" else "market", order.side, amount,
                order.limit_price if order.order_type == "limit" else None,
                {"clientOrderId": order.order_id})
        except self._ccxt.NetworkError as exc:  # the order may have landed: look before failing
            found = self._lookup(order)
            if found is None:
                raise self._error(f"{order.order_id}: network error, order not on the exchange",
                                  exc) from None
            return self._adopt(order, found)
        except self._ccxt.BaseError as exc:
            self._set_status(order.order_id, "rejected")
            raise self._error(f"{order.order_id}: rejected", exc) from None
        return self._adopt(order, response)

    def on_bar(self, symbol: str, time: dt.datetime | dt.date, open: float, high: float,
               low: float, close: float) -> list[Fill]:
        """Record the bar's close, book orders that have since become final, then send the
        exits the engine's stops call for on this bar."""
        time = self._bar_time(symbol, time, open, high, low, close)
        self._marks[symbol] = close
        fills = []
        working = [o for o in self._orders.values() if o.symbol == symbol
                   and o.status == "submitted"]
        for record in working:
            found = self._lookup(record)
            if found is not None and self._adopt(record, found).fill is not None:
                fills.append(self._fills[record.order_id])
        if self.risk is not None and self.portfolio is not None:
            for exit_ in self.risk.check_stops(self.portfolio, symbol, open, high, low, time):
                if exit_.order_id not in self._orders:
                    fill = self.submit(exit_).fill
                    fills += [fill] if fill else []
        return fills

    def _allowed(self, order: OrderRequest) -> float:
        """The amount to send: clipped to the hard limits, then to the exchange's precision."""
        quantity = order.quantity
        if self.risk is not None and self.portfolio is not None:
            price = self._marks[order.symbol] * (1 + order.sign * self.risk.slippage)
            quantity = self.risk.clip_to_limits(order, self.portfolio, price, self._marks)
        if quantity <= 0:
            return 0.0
        return float(self.exchange.amount_to_precision(market_symbol(order.symbol), quantity))

    def _lookup(self, order: OrderRequest) -> dict[str, Any] | None:
        """The exchange's copy of `order`, found by client order id, or None."""
        has = self.exchange.has
        closed = next((m for m in ("fetchCanceledAndClosedOrders", "fetchClosedOrders",
                                   "fetchOrders") if has.get(m)), None)
        try:
            for method in ("fetchOpenOrders", closed):
                if method and has.get(method):
                    for found in getattr(self.exchange, method)(market_symbol(order.symbol)):
                        if found.get("clientOrderId") == order.order_id:
                            return found
        except self._ccxt.BaseError as exc:
            raise self._error(f"{order.order_id}: lookup failed", exc) from None
        return None

    def _adopt(self, order: OrderRequest, info: Mapping[str, Any]) -> Submission:
        """Record the exchange's view of `order` (a ccxt order structure); book its fill once
        the order is final."""
        status = _STATUS.get(str(info.get("status")), "submitted")
        self._record(order, status, _utc_now())
        filled = float(info.get("filled") or 0)
        price = float(info.get("average") or info.get("price") or 0)
        if status in _FINAL and filled > 0 and price > 0 and order.order_id not in self._fills:
            stamp = info.get("timestamp")
            self._book(Fill(
                fill_id=f"{order.order_id}-{info.get('id')}", order_id=order.order_id,
                symbol=order.symbol, side=order.side, quantity=filled, price=price,
                fee=self._fee_in_quote(order, info, price),
                slippage=0.0,  # unknown: the decision price is not known here
                time=(dt.datetime.fromtimestamp(stamp / 1000, dt.timezone.utc).replace(tzinfo=None)
                      if stamp else _utc_now())))
        return self._submission(order.order_id)

    def _fee_in_quote(self, order: OrderRequest, info: Mapping[str, Any], price: float) -> float:
        market = self.exchange.market(market_symbol(order.symbol))
        fees = info.get("fees") or ([info["fee"]] if info.get("fee") else [])
        rate = {market["quote"]: 1.0, market["base"]: price}
        return sum(float(f.get("cost") or 0) * rate.get(f.get("currency"), 0.0) for f in fees)

    def _error(self, message: str, exc: Exception) -> BrokerError:
        text = f"{self.name}: {message}: {type(exc).__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return BrokerError(text)
