"""A third-party flowkit plugin: one of each extension point, registered in pyproject.toml."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from flowkit.broker import Broker
from flowkit.domain.orders import Fill, OrderRequest, Submission
from flowkit.errors import DataError
from flowkit.llm.base import ModelRequest, ModelResponse, ToolCall
from flowkit.market import DataSource
from flowkit.market.sources import RawSymbol
from flowkit.roles import RoleInfo


# --- data source -----------------------------------------------------------------------------
class RampSource(DataSource):
    """Synthetic weekday bars rising 0.25 a day from 50.00, for any plain ticker."""

    def load(self, symbols: list[str], timeframe: str) -> dict[str, RawSymbol]:
        if timeframe != "1d":
            raise DataError(f"ramp has daily bars only, not {timeframe}")
        days = np.arange("2023-01-02", "2025-01-01", dtype="datetime64[D]")
        days = days[np.is_busday(days)]
        close = 50.0 + 0.25 * np.arange(len(days))
        ohlcv = np.column_stack([close - 0.1, close + 0.5, close - 0.5, close,
                                 np.full(len(days), 1e6)])
        out = {}
        for symbol in symbols:
            if not (symbol.isalpha() and symbol.isupper()):
                raise DataError(f"ramp has no symbol {symbol!r}")
            out[symbol] = RawSymbol(f"ramp:{symbol}", days.astype("datetime64[s]"), ohlcv.copy())
        return out


# --- broker ----------------------------------------------------------------------------------
class InstantBroker(Broker):
    """Fills every order at once at the last close, without fees; exits at their level."""

    name = "instant"

    @classmethod
    def from_spec(cls, spec, portfolio, risk_engine, *, live=False) -> InstantBroker:
        return cls(portfolio, risk_engine)

    def submit(self, order: OrderRequest) -> Submission:
        if self._known(order):  # idempotent: the same order id returns its record
            return self._submission(order.order_id)
        self._record(order, "submitted", order.as_of)
        self._fill(order, self._marks[order.symbol], order.as_of)
        return self._submission(order.order_id)

    def on_bar(self, symbol: str, time: Any, open: float, high: float, low: float,
               close: float) -> list[Fill]:
        time = self._bar_time(symbol, time, open, high, low, close)
        fills = []
        for exit_ in self.risk.check_stops(self.portfolio, symbol, open, high, low, time):
            if exit_.order_id not in self.orders:
                self._record(exit_, "submitted", time)
                fills += self._fill(exit_, exit_.limit_price or open, time)
        self._marks[symbol] = close
        return fills

    def _fill(self, order: OrderRequest, price: float, time: dt.datetime) -> list[Fill]:
        quantity = self.risk.clip_to_limits(order, self.portfolio, price, self._marks)
        if quantity <= 0:  # the hard limits leave nothing to trade
            self._set_status(order.order_id, "rejected")
            return []
        fill = Fill(fill_id=f"{order.order_id}-f", order_id=order.order_id, symbol=order.symbol,
                    time=time, side=order.side, quantity=quantity, price=price, fee=0.0,
                    slippage=0.0)
        self._book(fill)  # into the portfolio and the risk engine's stops
        self._set_status(order.order_id, "filled")
        return [fill]


# --- tool ------------------------------------------------------------------------------------
def ramp_info(view: Any, days: int = 5) -> dict[str, Any]:
    """The close `days` bars ago and now, as seen at the decision time."""
    closes = view.history(days + 1)["close"]
    return {"source": "ramp_info", "then": closes[0], "now": closes[-1]}


# --- model provider --------------------------------------------------------------------------
class ScriptedModel:
    """Calls every tool it is offered once, then answers bullish and buys 10%."""

    def __init__(self, name: str):
        self.name = name

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if request.tools and not any(m.get("role") == "tool" for m in request.messages):
            calls = [ToolCall(f"call-{k}", t["function"]["name"], "{}")
                     for k, t in enumerate(request.tools)]
            return ModelResponse(model=self.name, content="", tool_calls=calls)
        seen = [m["content"] for m in request.messages if m.get("role") == "tool"]
        answers = {
            "analyst_report": {"signal": "bullish", "score": 0.5, "confidence": 0.6,
                               "summary": f"Tools said: {'; '.join(seen) or 'nothing'}."},
            "trade_proposal": {"action": "BUY", "size_pct": 10, "entry": None,
                               "stop_loss": None, "take_profit": None, "confidence": 0.7,
                               "reasoning": "The scripted trader always buys."},
        }
        return ModelResponse(model=self.name, content=json.dumps(answers[request.output_name]))

    async def aclose(self) -> None:
        pass


class ScriptedProvider:
    cacheable = False  # deterministic and local

    def create(self, profile, fallbacks, limiter) -> ScriptedModel:
        return ScriptedModel(profile.model)


scripted = ScriptedProvider()


# --- role ------------------------------------------------------------------------------------
momentum_analyst = RoleInfo(kind="analyst", prompt=str(Path(__file__).with_name("momentum.j2")),
                            output="analyst_report",
                            description="Reads the trend from the ramp_info tool.")
