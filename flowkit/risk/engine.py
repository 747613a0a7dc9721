"""The deterministic rule engine: the last word on every order, whatever any model says.

Conventions:
- Sizing: a proposal's size_pct of equity at the decision price, rounded toward zero to whole
  shares (or 1e-8 when fractional); resizing takes the largest quantity every limit allows.
- Costs: reviews price a trade at the decision price moved against us by slippage, plus fees,
  so the cash floor keeps headroom for both; `clip_to_limits` re-checks at the actual fill.
- Drawdown halt: once equity falls max_drawdown_pct below the peak (tracked by the portfolio at
  snapshots), the halt latches for the rest of the run: only reductions pass.
- CVaR trigger, evaluated at every decision time t from the first (`update_daily`):
  r_t = E_t / E_{t-1} - 1 are the returns of the equity marked at each decision; W_t holds the
  last `window` of them. CVaR_t = mean of the worst ceil(n * (1 - confidence)) of W_t's n
  returns, defined as soon as n >= 1. The reference R_t is the calmest (largest) CVaR of the
  previous `window` decision times, capped at 0 (a flat book's; 0 when there is none). The firm is
  risk-averse at t iff CVaR_t <= -min_loss_pct / 100 and CVaR_t < R_t - |R_t| *
  trigger_drop_pct / 100: a tail materially worse than recently, so a slow slide triggers as
  surely as a crash, while a calm book's first small loss does not. While risk-averse, new
  exposure is multiplied by `scale`. Each evaluation's numbers and reason are `daily_state()`
  (the backtest logs them in the `risk_state` table).
- Stops: set when a fill opens or adds to a position, relative to the new average cost. Checked
  on each later bar: a gap through a level fills at the open; otherwise a stop fills at its level.
  When one bar reaches both levels, the stop is assumed hit first (conservative), unless the bar
  opened beyond the take-profit."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from flowkit.domain.decision import Decision
from flowkit.domain.orders import Fill, OrderRequest, Reason
from flowkit.portfolio import Portfolio, usable_price
from flowkit.risk.limits import RULES, Book, binding, caps, reducible
from flowkit.risk.proposal import parse_proposal
from flowkit.spec.models import RiskSpec

Verdict = Literal["approve", "resize", "reject"]


class Review(BaseModel):
    """One `risk_reviews` row (without run_id), plus the order it lets through."""

    symbol: str | None
    as_of: dt.datetime
    verdict: Verdict
    rule: str | None
    requested_qty: float
    approved_qty: float
    details: dict[str, Any]
    order: OrderRequest | None = None


class StopLevels(BaseModel):
    side: Literal["long", "short"]
    stop_loss: float | None
    take_profit: float | None


class RiskState(BaseModel):
    """Everything the engine remembers between calls; round-trips through JSON for resume."""

    halted: bool = False
    risk_averse: bool = False
    last_equity: float | None = None
    returns: list[float] = Field(default_factory=list)
    cvar: float | None = None
    cvars: list[float] = Field(default_factory=list)  # CVaR at the previous `window` updates
    reference_cvar: float | None = None
    reason: str = "no decision time yet"
    stops: dict[str, StopLevels] = Field(default_factory=dict)
    hints: dict[str, Decision] = Field(default_factory=dict)  # last approved proposal per symbol


def cvar(returns: list[float], confidence: float) -> float:
    """Mean of the worst ceil(n * (1 - confidence)) returns (negative means a loss)."""
    tail = sorted(returns)[: max(1, math.ceil(len(returns) * (1 - confidence) - 1e-9))]
    return sum(tail) / len(tail)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'proposal'}: {e['msg']}"
                         for e in exc.errors())[:1000]
    return str(exc)[:1000]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class RiskEngine:
    def __init__(self, spec: RiskSpec, sectors: Mapping[str, str], symbols: set[str], *,
                 fee_bps: float = 0.0, slippage_bps: float = 0.0, run_id: str = ""):
        self.spec = spec
        self.sectors = dict(sectors)
        self.symbols = frozenset(symbols)
        self.fee_rate = fee_bps / 10_000
        self.slippage = slippage_bps / 10_000
        self.run_id = run_id
        self._state = RiskState()

    # ------------------------------------------------------------ state

    @property
    def state(self) -> RiskState:
        return self._state.model_copy(deep=True)

    @property
    def halted(self) -> bool:
        return self._state.halted

    @property
    def risk_averse(self) -> bool:
        return self._state.risk_averse

    def to_state(self) -> dict[str, Any]:
        return self._state.model_dump(mode="json")

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._state = RiskState.model_validate(state)

    # ------------------------------------------------------------ daily inputs

    def update_daily(self, equity: float) -> None:
        """Feed the equity marked at this decision time; recomputes CVaR, its reference and the
        risk-averse flag (the formula is in the module docstring)."""
        if not math.isfinite(equity):
            raise ValueError(f"equity must be finite, got {equity!r}")
        st, cfg = self._state, self.spec.cvar
        if cfg is None or not cfg.enabled:
            st.reason = "CVaR trigger off"
            return
        if st.last_equity is not None and st.last_equity > 0:
            st.returns = (st.returns + [equity / st.last_equity - 1.0])[-cfg.window:]
        st.last_equity = equity
        st.risk_averse = False
        if not st.returns:
            st.reason = "no return yet"
            return
        if st.cvar is not None:
            st.cvars = (st.cvars + [st.cvar])[-cfg.window:]
        st.cvar = cvar(st.returns, cfg.confidence)
        ref = st.reference_cvar = min(0.0, max(st.cvars, default=0.0))
        floor, bar = -cfg.min_loss_pct / 100, ref - abs(ref) * cfg.trigger_drop_pct / 100
        if st.cvar > floor:
            st.reason = f"CVaR {st.cvar:.2%} is milder than the {floor:.2%} floor"
        elif st.cvar >= bar:
            st.reason = (f"CVaR {st.cvar:.2%} is within {cfg.trigger_drop_pct:g}% of the "
                         f"calmest recent CVaR {ref:.2%}")
        else:
            st.risk_averse = True
            st.reason = (f"CVaR {st.cvar:.2%} is worse than the calmest recent CVaR {ref:.2%} by "
                         f"more than {cfg.trigger_drop_pct:g}%: new exposure x{cfg.scale:g}")

    def daily_state(self) -> dict[str, Any]:
        """The risk state after the last `update_daily` (a `risk_state` row, without run_id,
        time, equity and drawdown)."""
        st = self._state
        return {"daily_return": st.returns[-1] if st.returns else None, "cvar": st.cvar,
                "reference_cvar": st.reference_cvar, "risk_averse": st.risk_averse,
                "halted": st.halted, "reason": st.reason}

    def _check_drawdown(self, portfolio: Portfolio, prices: Mapping[str, float]) -> float:
        """Current drawdown (fraction, <= 0); latches the halt once the limit is breached."""
        drawdown = portfolio.drawdown(prices)
        limit = self.spec.max_drawdown_pct
        if limit is not None and drawdown <= -limit / 100:
            self._state.halted = True
        return drawdown

    # ------------------------------------------------------------ decisions

    def review(self, proposal: Any, portfolio: Portfolio, prices: Mapping[str, float],
               as_of: dt.datetime) -> Review:
        """Approve, resize or reject a proposal. Never raises on a bad proposal."""
        try:
            parsed = parse_proposal(proposal, self.symbols)
        except Exception as exc:  # noqa: BLE001 -- untrusted input: any failure to read it rejects
            raw_symbol = proposal.get("symbol") if isinstance(proposal, Mapping) else None
            return Review(symbol=raw_symbol if isinstance(raw_symbol, str) else None, as_of=as_of,
                          verdict="reject", rule="invalid_proposal", requested_qty=0.0,
                          approved_qty=0.0, details={"error": _describe(exc)})
        symbol = parsed.symbol

        def verdict(kind: Verdict, rule: str | None, requested: float = 0.0, approved: float = 0.0,
                    order: OrderRequest | None = None, **details: Any) -> Review:
            return Review(symbol=symbol, as_of=as_of, verdict=kind, rule=rule,
                          requested_qty=requested, approved_qty=approved, details=details,
                          order=order)

        price = usable_price(prices.get(symbol))
        if price is None:
            return verdict("reject", "no_price", error=f"no usable price for {symbol}")
        if parsed.action == "HOLD":
            return verdict("approve", None, price=price)

        side = 1 if parsed.action == "BUY" else -1
        drawdown = self._check_drawdown(portfolio, prices)
        equity = portfolio.equity(prices)
        wanted = parsed.size_pct / 100 * equity / price if equity > 0 else 0.0
        quantity = portfolio.round_qty(wanted)
        if quantity <= 0:
            return verdict("reject", "zero_quantity", price=price, equity=equity,
                           size_pct=parsed.size_pct)

        exec_price = price * (1 + side * self.slippage)
        book = self._book(portfolio, symbol, price, prices)
        scale = self.spec.cvar.scale if self.risk_averse and self.spec.cvar else None
        limits = caps(book, side, quantity, exec_price, self.fee_rate, self.spec,
                      halted=self.halted, scale=scale)
        approved = portfolio.round_qty(min(quantity, *limits.values()))
        rule = binding(limits, quantity)
        kind: Verdict = "approve" if approved == quantity else "resize" if approved > 0 \
            else "reject"

        after = book.after(side * approved, exec_price, self.fee_rate)
        details = {"price": price, "exec_price": exec_price, "equity": equity,
                   "size_pct": parsed.size_pct,
                   "rules": self._rule_details(limits, book, after, drawdown)}
        order = None
        if approved > 0:
            order = OrderRequest.create(run_id=self.run_id, as_of=as_of, symbol=symbol,
                                        side="buy" if side > 0 else "sell", quantity=approved)
            if approved > reducible(book, side, approved):  # opens or adds: its stops apply
                self._state.hints[symbol] = parsed
                details["stops"] = self.stop_levels(parsed, price).model_dump()
        return verdict(kind, rule, side * quantity, side * approved, order, **details)

    def _book(self, portfolio: Portfolio, symbol: str, mark: float,
              prices: Mapping[str, float]) -> Book:
        marks = {**prices, symbol: mark}
        sector = self.sectors.get(symbol, symbol)  # a symbol without a sector is its own sector
        values = {s: abs(portfolio.position_value(s, marks)) for s in portfolio.positions}
        return Book(equity=portfolio.equity(marks), cash=portfolio.cash,
                    qty=portfolio.qty(symbol), mark=mark,
                    sector=sum(v for s, v in values.items()
                               if self.sectors.get(s, s) == sector),
                    gross=sum(values.values()))

    def _rule_details(self, limits: dict[str, float], before: Book, after: Book,
                      drawdown: float) -> dict[str, dict[str, Any]]:
        spec = self.spec
        pct_before, pct_after = before.percents(), after.percents()
        details: dict[str, dict[str, Any]] = {
            "allow_short": {"limit": spec.allow_short, "before": before.qty, "after": after.qty},
            "max_drawdown_pct": {"limit": spec.max_drawdown_pct, "before": 100 * drawdown,
                                 "halted": self.halted},
            "cvar": {"enabled": bool(spec.cvar and spec.cvar.enabled),
                     "risk_averse": self.risk_averse, "cvar": self._state.cvar,
                     "reference_cvar": self._state.reference_cvar,
                     "scale": spec.cvar.scale if spec.cvar else None},
            "cash_available": {"limit": 0.0, "before": before.cash, "after": after.cash},
        }
        for rule in ("max_position_pct", "max_sector_pct", "max_gross_exposure_pct",
                     "min_cash_pct"):
            details[rule] = {"limit": getattr(spec, rule), "before": pct_before[rule],
                             "after": pct_after[rule]}
        for rule in RULES:
            details[rule]["max_qty"] = _finite(limits[rule]) if rule in limits else None
        return {rule: details[rule] for rule in RULES}

    def clip_to_limits(self, order: OrderRequest, portfolio: Portfolio, fill_price: float,
                       prices: Mapping[str, float]) -> float:
        """The largest part of `order` that, filled at `fill_price`, breaks no hard limit and
        leaves cash >= 0. Reductions always pass; exits (stops, halt) never add exposure."""
        side = order.sign
        book = self._book(portfolio, order.symbol, fill_price, prices)
        wanted = order.quantity
        if order.reason != "decision":
            wanted = reducible(book, side, wanted)
        self._check_drawdown(portfolio, {**prices, order.symbol: fill_price})
        limits = caps(book, side, wanted, fill_price, self.fee_rate, self.spec,
                      halted=self.halted, scale=None)
        return portfolio.round_qty(min(wanted, *limits.values()))

    def halt_orders(self, portfolio: Portfolio, prices: Mapping[str, float],
                    as_of: dt.datetime) -> list[OrderRequest]:
        """Orders that flatten the book once the drawdown halt has latched; none otherwise."""
        self._check_drawdown(portfolio, prices)
        if not self.halted:
            return []
        return [OrderRequest.create(run_id=self.run_id, as_of=as_of, symbol=s,
                                    side="sell" if pos.qty > 0 else "buy",
                                    quantity=abs(pos.qty), reason="drawdown_halt")
                for s, pos in sorted(portfolio.positions.items()) if pos.qty != 0]

    def trim_orders(self, portfolio: Portfolio, prices: Mapping[str, float],
                    as_of: dt.datetime) -> list[OrderRequest]:
        """Sells (or buys back) what price moves carried above max_position_pct since the fill.

        The cap holds at every fill (clip_to_limits); afterwards a position that closes a bar
        above it is trimmed back to the cap at the next open (reason `rebalance`). A trim only
        reduces: clip_to_limits passes it whatever the other limits say."""
        equity = portfolio.equity(prices)
        if equity <= 0:
            return []
        cap = self.spec.max_position_pct / 100 * equity
        orders = []
        for symbol, pos in sorted(portfolio.positions.items()):
            price = prices.get(symbol)
            if not price or abs(pos.qty) * price <= cap:
                continue
            excess = abs(pos.qty) - portfolio.round_qty(cap / price)  # keeps <= cap, whole units
            if excess > 0:
                orders.append(OrderRequest.create(run_id=self.run_id, as_of=as_of, symbol=symbol,
                                                  side="sell" if pos.qty > 0 else "buy",
                                                  quantity=excess, reason="rebalance"))
        return orders

    # ------------------------------------------------------------ stops

    def stop_levels(self, proposal: Decision, entry_price: float) -> StopLevels:
        """Stop and take-profit for a position opened by `proposal` at `entry_price`: the
        proposal's own levels when on the right side of entry and tighter than the defaults,
        else RiskSpec.stop_loss_pct / take_profit_pct."""
        long = proposal.action != "SELL"
        sign = 1 if long else -1

        def default(pct: float | None, away: int) -> float | None:
            factor = 1 + away * pct / 100 if pct is not None else 0.0
            return entry_price * factor if factor > 0 else None

        def pick(own: float | None, default: float | None, away: int) -> float | None:
            # `away` is the direction of the level from entry: -1 below, +1 above.
            if own is None or (own - entry_price) * away <= 0:
                return default
            if default is None or (own - default) * away < 0:  # tighter: nearer the entry
                return own
            return default

        return StopLevels(side="long" if long else "short",
                          stop_loss=pick(proposal.stop_loss,
                                         default(self.spec.stop_loss_pct, -sign), -sign),
                          take_profit=pick(proposal.take_profit,
                                           default(self.spec.take_profit_pct, sign), sign))

    def on_fill(self, fill: Fill, portfolio: Portfolio) -> None:
        """Keep stops in step with a fill the portfolio has just booked."""
        qty = portfolio.qty(fill.symbol)
        before = qty - fill.signed_qty
        if qty == 0:
            self._state.stops.pop(fill.symbol, None)
        elif abs(qty) > abs(before) or qty * before < 0:  # opened, added or flipped
            action: Literal["BUY", "SELL"] = "BUY" if qty > 0 else "SELL"
            hint = self._state.hints.get(fill.symbol)
            if hint is None or hint.action != action:
                hint = Decision(symbol=fill.symbol, action=action, size_pct=0.0)
            entry = portfolio.positions[fill.symbol].avg_cost
            self._state.stops[fill.symbol] = self.stop_levels(hint, entry)

    def check_stops(self, portfolio: Portfolio, symbol: str, bar_open: float, bar_high: float,
                    bar_low: float, time: dt.datetime) -> list[OrderRequest]:
        """Exit orders for the stop or take-profit this bar reaches. The stop goes out as a
        `stop` order and the take-profit as a `limit` order at its level; the broker fills them
        at the open when the bar gapped through the level, else at the level."""
        qty = portfolio.qty(symbol)
        levels = self._state.stops.get(symbol)
        if qty == 0 or levels is None or (levels.side == "long") != (qty > 0):
            return []
        sign = 1 if qty > 0 else -1
        sl, tp = levels.stop_loss, levels.take_profit
        adverse, favourable = (bar_low, bar_high) if sign > 0 else (bar_high, bar_low)

        def reached(level: float | None, price: float, away: int) -> bool:
            return level is not None and (price - level) * away >= 0

        hit: tuple[Reason, float | None] | None = (
            ("take_profit", tp) if reached(tp, bar_open, sign)         # opened beyond the target
            else ("stop_loss", sl) if reached(sl, adverse, -sign)      # first when both are hit
            else ("take_profit", tp) if reached(tp, favourable, sign)
            else None)
        if hit is None:
            return []
        reason, level = hit
        return [OrderRequest.create(run_id=self.run_id, as_of=time, symbol=symbol,
                                    side="sell" if sign > 0 else "buy", quantity=abs(qty),
                                    reason=reason, limit_price=level,
                                    order_type="stop" if reason == "stop_loss" else "limit")]
