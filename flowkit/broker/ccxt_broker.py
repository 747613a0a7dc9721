"""Orders through a real exchange with ccxt: its sandbox (testnet) unless live trading is asked
for twice, by live=True and by FLOWKIT_LIVE_CONFIRM=I-UNDERSTAND in the environment.

Keys come only from FLOWKIT_<EXCHANGE>_API_KEY / _SECRET (and _PASSWORD where the exchange has
one) and are scrubbed from every error message. Idempotency: the order id travels as the
exchange's client order id (ccxt's `clientOrderId` param, sent as newClientOrderId on binance and
orderLinkId on bybit). Submitting an id this broker has sent before, or retrying after a network
error, first looks the order up by that client id among the exchange's open, then closed and
cancelled orders, and sends again only if the exchange never saw it. An order already known
to be filled or cancelled is returned as recorded, without a request.

Order types: `limit` goes out as a limit order; `market` and `stop` as market orders (the engine
emits a stop only once its level has been reached). The fill returned is the order's cumulative
execution as the exchange reports it; fees paid in the base currency are converted at the fill
price, fees in a third currency (e.g. BNB) are not counted, and an order found by lookup carries
a fee only if the exchange's order query reports one (binance's allOrders does not)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from flowkit.broker.ledger import Ledger
from flowkit.broker.orders import Fill, OrderRequest, OrderStatus, Submission
from flowkit.errors import BrokerError

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


class CcxtBroker(Ledger):
    def __init__(self, exchange_id: str, *, sandbox: bool = True, live: bool = False,
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
        super().__init__()

    def submit(self, order: OrderRequest) -> Submission:
        """Place `order` once, however often it is submitted."""
        if self._known(order):
            if self._orders[order.order_id].status in _FINAL:  # the exchange cannot undo these
                return self._submission(order.order_id)
            found = self._lookup(order)
            if found is not None:
                return self._adopt(order, found)
        self._record(order, "submitted", _utc_now())  # before sending: a crash then looks it up
        symbol = market_symbol(order.symbol)
        try:
            self.exchange.load_markets()  # cached: no request once markets are set
            amount = float(self.exchange.amount_to_precision(symbol, order.quantity))
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
        """Record the exchange's view of `order` (a ccxt order structure)."""
        self._record(order, _STATUS.get(str(info.get("status")), "submitted"), _utc_now())
        filled = float(info.get("filled") or 0)
        price = float(info.get("average") or info.get("price") or 0)
        if filled > 0 and price > 0:
            stamp = info.get("timestamp")
            self._fills[order.order_id] = Fill(
                fill_id=f"{order.order_id}-{info.get('id')}", order_id=order.order_id,
                symbol=order.symbol, side=order.side, quantity=filled, price=price,
                fee=self._fee_in_quote(order, info, price),
                time=(dt.datetime.fromtimestamp(stamp / 1000, dt.timezone.utc).replace(tzinfo=None)
                      if stamp else _utc_now()))
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

    def to_state(self) -> dict[str, Any]:
        return self._ledger_state()

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._load_ledger(state)
