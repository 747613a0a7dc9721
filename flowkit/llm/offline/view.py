"""What every offline strategy shares: number helpers, a directional `Reading`, and the `View`
of one request (the context the prompt template saw, looked up once).

Scores run from -1 (sell) to +1 (buy); |score| > THRESHOLD (0.1) is a signal / a BUY or SELL.
Every text field starts with MARK: the answer says plainly that it is not an LLM."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from flowkit.llm.base import ModelRequest
from flowkit.memory.conditions import parse_belief
from flowkit.roles.registry import BUILTIN_ROLES

MARK = "[offline rules-based model, not an LLM]"
THRESHOLD = 0.1


def num(d: Any, key: str) -> float | None:
    """A finite number from a mapping, or None for missing data. Hot path: exact type checks."""
    if not d:
        return None
    v = d.get(key)
    kind = type(v)
    if kind is float:
        return v if v - v == 0 else None  # NaN and infinities give NaN
    return float(v) if kind is int else None


def clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def rnd(x: float, digits: int = 4) -> float:
    return round(x, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def price_level(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")  # keeps crypto prices like 0.00001234


def fmt_price(x: float) -> str:
    """A price for text: cents above 1, significant digits below (crypto)."""
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.4g}"


def action_for(score: float) -> str:
    return "BUY" if score > THRESHOLD else "SELL" if score < -THRESHOLD else "HOLD"


def sign(action: str) -> int:
    return 1 if action == "BUY" else -1 if action == "SELL" else 0


def to_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def quote(text: str, limit: int = 160) -> str:
    """A verbatim prefix of `text`, cut at a word boundary."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    return cut[: cut.rfind(" ")] if " " in cut else cut


@dataclass
class Reading:
    """A directional view: score in [-1, 1], confidence in [0, 1], and what drove it."""

    score: float
    confidence: float
    drivers: list[str] = field(default_factory=list)


class Evidence:
    """Accumulates scored drivers; confidence grows with |score| and input coverage."""

    __slots__ = ("score", "seen", "drivers")

    def __init__(self) -> None:
        self.score, self.seen = 0.0, 0
        self.drivers: list[str] = []

    def add(self, delta: float, driver: str) -> None:
        self.score += delta
        self.seen += 1
        self.drivers.append(driver)

    def reading(self, inputs: int, base: float = 0.35, gain: float = 0.6) -> Reading:
        score = clip(self.score)
        confidence = self.seen / inputs * (base + gain * abs(score))
        return Reading(score, clip(confidence, 0.05, 0.95), self.drivers)


def blend(readings: list[tuple[str, Reading]], what: str) -> Reading:
    """Confidence-weighted mean of labelled readings."""
    weight = sum(r.confidence for _, r in readings)
    if not weight:
        return Reading(0.0, 0.1, [f"no {what}"])
    score = sum(r.score * r.confidence for _, r in readings) / weight
    parts = ", ".join(f"{label} {r.score:+.2f}" for label, r in readings)
    return Reading(clip(score), clip(weight / len(readings), 0.05, 0.95),
                   [f"{what} {score:+.2f} ({parts})"])


# ---------------------------------------------------------------- what an output is


def is_analyst(out: Any) -> bool:
    return isinstance(out, dict) and "signal" in out and num(out, "score") is not None


def is_proposal(out: Any) -> bool:
    return isinstance(out, dict) and "action" in out and "size_pct" in out and "entry" in out


def is_verdict(out: Any) -> bool:
    return isinstance(out, dict) and "recommendation" in out and num(out, "score") is not None


def is_assessment(out: Any) -> bool:
    return isinstance(out, dict) and "approve" in out and "max_size_pct" in out


class View:
    """The parts of the context the rules read, looked up once per request.

    Strategies are chosen by what the role declares: its kind (agent.kind), an analyst's focus
    and a researcher's side from the built-in role library, a stance the agent declares."""

    def __init__(self, request: ModelRequest):
        ctx = request.context
        agent = ctx.get("agent") or {}
        market = ctx.get("market") or {}
        info = BUILTIN_ROLES.get(request.role)
        self.ctx, self.role, self.me = ctx, request.role, agent.get("id") or request.agent
        self.kind = agent.get("kind")
        self.focus = info.focus if info else None
        self.stance = agent.get("stance") or (info.stance if info else None)
        self.symbol = ctx.get("symbol") or market.get("symbol") or "?"
        self.as_of = str(ctx.get("as_of") or market.get("as_of") or "")
        self.market, self.px, self.ind = market, market.get("price") or {}, market.get("indicators") or {}
        self.close, self.atr = num(self.px, "close"), num(self.ind, "atr_14")
        self.outputs: Mapping[str, Any] = ctx.get("outputs") or {}
        # Declared inputs (agents.<id>.inputs) that produced an output, in declared order.
        self.inputs: Mapping[str, Any] = ctx.get("inputs") or {}
        self.transcript: list[Mapping[str, Any]] = ctx.get("transcript") or []
        self.portfolio = ctx.get("portfolio") or {}
        self.risk = ctx.get("risk") or {}
        self.risk_state = ctx.get("risk_state") or {}
        self.averse = bool(self.risk_state.get("risk_averse"))
        self.max_pos = num(self.risk, "max_position_pct") or 20.0
        self.bias, self.size_mult, self.applied = 0.0, 1.0, []
        for raw in ctx.get("beliefs") or ():
            belief = parse_belief(raw)
            if belief.holds(ctx):
                self.bias += belief.bias
                self.size_mult *= belief.size_mult
                self.applied.append(belief)
        self.lessons = len(ctx.get("lessons") or ())

    def explain(self, headline: str, drivers: list[str]) -> str:
        text = f"{MARK} {headline}"
        if drivers:
            text += ": " + "; ".join(drivers)
        if self.applied:
            text += "; beliefs applied: " + ", ".join(b.describe() for b in self.applied)
        if self.lessons:
            text += f"; {self.lessons} lesson(s) on file, noted but not acted on"
        return text + "."

    def latest(self, test: Callable[[Any], bool]) -> Mapping[str, Any] | None:
        """The output of this type the role reads: the last declared input that is one, else
        the latest such output in the state."""
        for source in (self.inputs, self.outputs):
            for agent in reversed(list(source)):
                if agent != self.me and test(source[agent]):
                    return source[agent]
        return None

    def input_views(self, known: Any = ()) -> list[tuple[str, Reading]]:
        """Declared inputs with a direction, as readings, except those in `known` (already read)."""
        return [(agent, r) for agent, out in self.inputs.items()
                if agent not in known and (r := directional(out)) is not None]

    @cached_property
    def analysts(self) -> list[tuple[str, Reading]]:
        """Earlier analyst reports (anything with a signal and a score), then every other
        declared input with a direction, as readings."""
        reports = [(agent, Reading(num(out, "score") or 0.0, conf(out)))
                   for agent, out in self.outputs.items() if agent != self.me and is_analyst(out)]
        return reports + self.input_views({agent for agent, _ in reports})

    @property
    def atr_pct(self) -> float | None:
        return self.atr / self.close * 100 if self.atr and self.close else None

    @property
    def vol_scale(self) -> float:
        """Size multiplier targeting a 2% daily ATR."""
        atr_pct = self.atr_pct
        return clip(2.0 / atr_pct, 0.5, 1.5) if atr_pct else 1.0

    def risk_scaled(self, size: float, action: str, drivers: list[str]) -> float:
        """`size` shrunk while the CVaR trigger is on and for a buy correlated with holdings;
        each reason is added to `drivers`."""
        if self.averse:
            size *= self.cvar_scale
            drivers.append(f"risk-averse (CVaR trigger): size x{self.cvar_scale:g}")
        corr, why = self.correlation_scale(action)
        if why:
            size *= corr
            drivers.append(why)
        return size

    def correlation_scale(self, action: str) -> tuple[float, str | None]:
        """A BUY that moves with positions already held shrinks: x1 up to a 0.5 return
        correlation, falling linearly to x0.5 at 1.0 (diversification; the hard limits stay
        with the rule engine)."""
        corrs = [(c, other) for other, c in (self.portfolio.get("correlations") or {}).items()
                 if isinstance(c, (int, float))]
        if action != "BUY" or not corrs:
            return 1.0, None
        top, other = max(corrs)
        if top <= 0.5:
            return 1.0, None
        scale = 1.0 - (top - 0.5)
        return scale, f"correlation {top:.2f} with {other} held: size x{scale:.2f}"

    @property
    def cvar_scale(self) -> float:
        scale = num(self.risk.get("cvar") or {}, "scale")
        return 0.5 if scale is None else scale

    def news_ratio(self) -> float | None:
        n7, n30 = num(self.market, "news_count_7d"), num(self.market, "news_count_30d")
        return n7 / (n30 * 7 / 30) if n7 is not None and n30 else None


def conf(out: Mapping[str, Any], default: float = 0.5) -> float:
    c = num(out, "confidence")
    return default if c is None else clip(c, 0.0, 1.0)


def directional(out: Any) -> Reading | None:
    """Any output with a direction: an analyst report, a verdict or a sized trade."""
    if not isinstance(out, dict):
        return None
    score = num(out, "score")
    if score is not None:
        return Reading(clip(score), conf(out))
    action = out.get("action")
    if action in ("BUY", "SELL", "HOLD"):
        return Reading(sign(action) * conf(out), conf(out))
    return None
