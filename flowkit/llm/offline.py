"""The built-in `offline` model: a deterministic, rules-based stand-in for an LLM.

It never reads the prompt. It reads `request.context` (the same variables the prompt template
saw: market snapshot, earlier outputs, transcript, reports, beliefs, portfolio, risk) and answers
with the JSON a built-in output asks for, computed from the data. No network, no randomness:
the same context gives byte-identical content. Every text field says it is
"[offline rules-based model, not an LLM]" and names what drove the result.

Scores run from -1 (sell) to +1 (buy); |score| > THRESHOLD (0.1) is a signal / a BUY or SELL.

Analysts (output analyst_report, picked by role name; other analyst roles get the blend of all four)
  technical_analyst     close vs SMA50 (±0.25) and SMA200 (±0.2); MACD histogram (±0.2, scaled by
                        its size relative to 0.4% of price); RSI > 70 overbought (-0.25), < 30
                        oversold (+0.25), else (RSI-50)/100; Bollinger %b above 1 (-0.15) or below 0
                        (+0.15); 20-day change (±0.15 tanh). Confidence grows with |score| and with
                        how many inputs exist.
  fundamentals_analyst  latest EPS surprise % (±0.4), YoY EPS growth (±0.35), beat rate over the last
                        four quarters (±0.15), trailing EPS <= 0 (-0.1); confidence x0.6 when the
                        last report is over 120 days old. No fundamentals: neutral, confidence 0.1.
  news_analyst          0.75 x lexicon tone of the last 7 days' headlines and text, amplified up
                        to x2 when news_count_7d runs above its 30-day norm (news_count_30d x 7/30).
  sentiment_analyst     60% lexicon tone of all headlines, 40% 5-day return (tanh of change/5%);
                        volume above its 20-day average raises confidence.
  Lexicon: LEXICON below, ~150 finance words weighted +1 / -1, matched on lower-cased words with
  punctuation removed; tone = (pos - neg) / (pos + neg + 2), so a single word cannot dominate.
  No negation or context handling: it is a smoke-level reading, labelled as such.
  In a broadcast, an analyst moves 25% of the way toward its peers' latest posts.

Researchers argue from the analyst reports in `outputs` (their own market read when there are
none): conviction = 0.5 + 0.5 x consensus toward their side, eased when the opponent's last
conviction is high. The rebuttal quotes, verbatim, one of the opponent's points (or its argument)
from `transcript` and answers with the strongest report on this side; no opponent turn, no rebuttal.
The research manager blends the analyst consensus with the debate edge (round-weighted bull minus
bear conviction). The trader follows the verdict (else the consensus): confidence
= mean(source confidence, |score|), size = max_position_pct x confidence, entry = close,
stop = 2 ATR and target = 3 ATR (bounded by risk.stop_loss_pct / take_profit_pct). Risk debaters
resize the proposal by stance and volatility (ATR as % of price); the risk manager caps it and
vetoes only severe problems; the portfolio manager follows the trader, sizes from the risk debate,
honours a veto and scales by risk.cvar.scale (default 0.5) while risk_state.risk_averse. The FinCon
manager assigns every offered worker first, then decides from their reports.

User-defined roles (an inline JSON Schema output) get a valid instance of the schema: fields named
score, signal, action, recommendation, confidence, size_pct, reasoning, summary, rationale or
argument take the computation for the role's kind (the analyst blend for analysts, the firm's
current lean otherwise), mapped onto the schema's own labels (BUY / bullish / long ...); every
other field gets its default, const, first enum value or its type's zero.

Usage is estimated (characters / 4 for prompt and completion tokens); cost is 0.

Beliefs
  A belief is {"text": str, "condition": CONDITION or null, "effect": EFFECT}. When its condition
  holds, its effect applies and the answer quotes its text (manager_plan lists it in
  beliefs_applied). Lessons are strings: counted in the reasoning, not acted on.

  CONDITION (null or {} always holds):
    {"indicator": NAME, "op": OP, "value": V}    market.indicators[NAME]  e.g. rsi_14, macd_hist
    {"price": NAME, "op": OP, "value": V}        market.price[NAME]       e.g. close, change_5d_pct
    {"fundamental": NAME, "op": OP, "value": V}  eps_ttm, eps_growth_yoy_pct or latest quarter's
                                                 reported_eps, estimated_eps, surprise, surprise_pct
    {"market": NAME, "op": OP, "value": V}       news_count_7d, news_count_30d, sector
    {"portfolio": NAME, "op": OP, "value": V}    portfolio[NAME]  e.g. position_pct
    {"risk_state": NAME, "op": OP, "value": V}   risk_averse, drawdown_pct, halted
    {"output": "AGENT.FIELD", "op": OP, "value": V}   a field of an earlier agent's output
    {"signal": AGENT, "equals": VALUE}           that agent's signal, recommendation or action
                                                 (case-insensitive)
    {"all": [CONDITION, ...]}, {"any": [CONDITION, ...]}, {"not": CONDITION}
  OP is one of < <= > >= == !=; < <= > >= need a number. Missing data never satisfies a
  comparison. Anything else is rejected by `parse_belief` with a message naming the problem.

  EFFECT (at least one key):
    {"bias": B}       -1 <= B <= 1, added to the agent's directional score (negative = toward
                      selling); enough bias flips BUY to HOLD or SELL.
    {"size_mult": M}  0 <= M <= 2, multiplies every size the agent proposes.
  Risk roles, which have no direction of their own, shrink size by |B| when B opposes the trade.
"""

from __future__ import annotations

import json
import math
import operator
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from typing import Any

from flowkit.errors import ModelError
from flowkit.llm.base import ModelRequest, ModelResponse

MARK = "[offline rules-based model, not an LLM]"
THRESHOLD = 0.1

# ---------------------------------------------------------------- the finance lexicon

_POSITIVE = """
    beat beats beating surge surges surged soar soars soared jump jumps jumped rally rallies
    rallied gain gains gained rise rises climb climbs climbed record upgrade upgrades upgraded
    outperform outperforms outperformed strong stronger strength growth grows grew profit profits
    profitable raise raises raised boost boosts boosted bullish buyback buybacks dividend approval
    approved win wins won expands expansion exceeds exceeded tops topped rebound rebounds
    rebounded optimism optimistic breakthrough robust upbeat accelerates accelerating higher
    momentum partnership launch launches demand
""".split()
_NEGATIVE = """
    miss misses missed plunge plunges plunged fall falls fell drop drops dropped slump slumps
    slumped tumble tumbles tumbled sink sinks sank slide slides slid decline declines declined
    downgrade downgrades downgraded underperform underperforms weak weaker weakness loss losses
    lawsuit lawsuits sues sued probe investigation recall recalls cut cuts slashes bearish fraud
    layoffs layoff warning warns warned halt halts halted fined selloff sell-off crash crashes
    crashed bankruptcy default delay delays delayed concern concerns fears slowdown antitrust
    pessimism shortfall disappoint disappoints disappointing lower hack breach subpoena
""".split()
LEXICON: dict[str, int] = {**{w: 1 for w in _POSITIVE}, **{w: -1 for w in _NEGATIVE}}
_WORDS = str.maketrans({c: " " for c in string.punctuation if c != "-"})
_tone_cache: dict[str, tuple[int, int]] = {}  # headlines repeat for weeks in a backtest


def tone_counts(text: str) -> tuple[int, int]:
    """(positive, negative) lexicon hits in a text."""
    hit = _tone_cache.get(text)
    if hit is None:
        pos = neg = 0
        for word in text.lower().translate(_WORDS).split():
            w = LEXICON.get(word)
            if w == 1:
                pos += 1
            elif w == -1:
                neg += 1
        if len(_tone_cache) > 50_000:
            _tone_cache.clear()
        hit = _tone_cache[text] = (pos, neg)
    return hit


# ---------------------------------------------------------------- small helpers


def _f(d: Any, key: str) -> float | None:
    """A finite number from a mapping, or None for missing data. Hot path: exact type checks."""
    if not d:
        return None
    v = d.get(key)
    kind = type(v)
    if kind is float:
        return v if v - v == 0 else None  # NaN and infinities give NaN
    return float(v) if kind is int else None


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def _r(x: float, digits: int = 4) -> float:
    return round(x, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _price(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")  # keeps crypto prices like 0.00001234


def _p(x: float) -> str:
    """A price for text: cents above 1, significant digits below (crypto)."""
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.4g}"


def _action_for(score: float) -> str:
    return "BUY" if score > THRESHOLD else "SELL" if score < -THRESHOLD else "HOLD"


def _sign(action: str) -> int:
    return 1 if action == "BUY" else -1 if action == "SELL" else 0


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _quote(text: str, limit: int = 160) -> str:
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


class _Evidence:
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
        score = _clip(self.score)
        confidence = self.seen / inputs * (base + gain * abs(score))
        return Reading(score, _clip(confidence, 0.05, 0.95), self.drivers)


def _blend(readings: list[tuple[str, Reading]], what: str) -> Reading:
    """Confidence-weighted mean of labelled readings."""
    weight = sum(r.confidence for _, r in readings)
    if not weight:
        return Reading(0.0, 0.1, [f"no {what}"])
    score = sum(r.score * r.confidence for _, r in readings) / weight
    parts = ", ".join(f"{label} {r.score:+.2f}" for label, r in readings)
    return Reading(_clip(score), _clip(weight / len(readings), 0.05, 0.95),
                   [f"{what} {score:+.2f} ({parts})"])


# ---------------------------------------------------------------- beliefs

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_FIELDS: dict[str, frozenset[str]] = {
    "indicator": frozenset("""rsi_14 macd macd_signal macd_hist sma_20 sma_50 sma_200 ema_12 ema_26
        bb_upper bb_middle bb_lower bb_pct_b atr_14 volatility_20d volume_ratio_20d high_52w
        low_52w range_52w_pct""".split()),
    "price": frozenset("open high low close volume change_1d_pct change_5d_pct change_20d_pct "
                       "bars".split()),
    "fundamental": frozenset("eps_ttm eps_growth_yoy_pct reported_eps estimated_eps surprise "
                             "surprise_pct".split()),
    "market": frozenset(["news_count_7d", "news_count_30d", "sector"]),
    "portfolio": frozenset("cash equity position_qty position_value position_pct "
                           "gross_exposure_pct".split()),
    "risk_state": frozenset(["risk_averse", "drawdown_pct", "halted"]),
}


def _lookup(source: str, name: str, ctx: Mapping[str, Any]) -> Any:
    market = ctx.get("market") or {}
    if source == "indicator":
        return (market.get("indicators") or {}).get(name)
    if source == "price":
        return (market.get("price") or {}).get(name)
    if source == "fundamental":
        f = market.get("fundamentals") or {}
        return f[name] if name in f else (f.get("latest") or {}).get(name)
    if source == "market":
        return market.get(name)
    if source == "output":
        agent, _, key = name.partition(".")
        return ((ctx.get("outputs") or {}).get(agent) or {}).get(key)
    return (ctx.get(source) or {}).get(name)


def compile_condition(cond: Any) -> Callable[[Mapping[str, Any]], bool]:
    """A belief condition (see the module docstring) as a predicate over a context.
    Raises ValueError naming the problem."""
    if not cond:
        return lambda ctx: True
    if not isinstance(cond, dict):
        raise ValueError(f"a condition is an object, got {cond!r}")
    for key, combine in (("all", all), ("any", any)):
        if key in cond:
            parts = cond[key]
            if len(cond) != 1 or not isinstance(parts, list) or not parts:
                raise ValueError(f'"{key}" takes a non-empty list of conditions and nothing else')
            preds = [compile_condition(p) for p in parts]
            return lambda ctx: combine(p(ctx) for p in preds)
    if "not" in cond:
        if len(cond) != 1 or not cond["not"]:
            raise ValueError('"not" takes one condition and nothing else')
        pred = compile_condition(cond["not"])
        return lambda ctx: not pred(ctx)
    if "signal" in cond:
        agent, want = cond["signal"], cond.get("equals")
        if set(cond) != {"signal", "equals"} or not isinstance(agent, str) or not isinstance(want, str):
            raise ValueError('a signal condition is {"signal": AGENT, "equals": VALUE}')
        want = want.lower()

        def signal_is(ctx: Mapping[str, Any]) -> bool:
            out = (ctx.get("outputs") or {}).get(agent) or {}
            got = out.get("signal") or out.get("recommendation") or out.get("action")
            return isinstance(got, str) and got.lower() == want
        return signal_is
    sources = [s for s in (*_FIELDS, "output") if s in cond]
    if len(sources) != 1 or set(cond) != {sources[0], "op", "value"}:
        raise ValueError(f"unknown condition {dict(cond)!r}: expected one of {sorted(_FIELDS)} or "
                         f'"output" with "op" and "value", or "signal"/"all"/"any"/"not"')
    source, name, op, value = sources[0], cond[sources[0]], cond["op"], cond["value"]
    if source == "output":
        if not isinstance(name, str) or "." not in name:
            raise ValueError(f'"output" names AGENT.FIELD, got {name!r}')
    elif name not in _FIELDS[source]:
        raise ValueError(f"unknown {source} {name!r}; known: {', '.join(sorted(_FIELDS[source]))}")
    if op not in _OPS:
        raise ValueError(f"unknown op {op!r}; use one of {' '.join(_OPS)}")
    ordered = op in ("<", "<=", ">", ">=")
    if ordered and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise ValueError(f"{op} needs a number, got {value!r}")
    compare = _OPS[op]

    def compares(ctx: Mapping[str, Any]) -> bool:
        got = _lookup(source, name, ctx)
        if got is None or (ordered and (isinstance(got, (str, bool)))):
            return False
        return bool(compare(got, value))
    return compares


@dataclass(frozen=True)
class Belief:
    text: str
    holds: Callable[[Mapping[str, Any]], bool]
    bias: float = 0.0
    size_mult: float = 1.0

    def describe(self) -> str:
        effects = [f"bias {self.bias:+.2f}" if self.bias else "",
                   f"size x{self.size_mult:g}" if self.size_mult != 1 else ""]
        return f'"{self.text}" ({", ".join(e for e in effects if e)})'


def parse_belief(raw: Mapping[str, Any]) -> Belief:
    """Check and compile a stored belief. Raises ValueError naming the problem."""
    text, effect = raw.get("text"), raw.get("effect") or {}
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a belief needs a non-empty text")
    if not isinstance(effect, dict) or not effect or set(effect) - {"bias", "size_mult"}:
        raise ValueError(f'belief "{text}": effect must have "bias" and/or "size_mult", got {effect!r}')
    bias, mult = effect.get("bias", 0.0), effect.get("size_mult", 1.0)
    for key, value, lo, hi in (("bias", bias, -1, 1), ("size_mult", mult, 0, 2)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f'belief "{text}": {key} must be a number in [{lo}, {hi}], got {value!r}')
    try:
        holds = compile_condition(raw.get("condition"))
    except ValueError as exc:
        raise ValueError(f'belief "{text}": {exc}') from None
    return Belief(text.strip(), holds, float(bias), float(mult))


# ---------------------------------------------------------------- the view of one request


def _is_analyst(out: Any) -> bool:
    return isinstance(out, dict) and "signal" in out and _f(out, "score") is not None


def _is_proposal(out: Any) -> bool:
    return isinstance(out, dict) and "action" in out and "size_pct" in out and "entry" in out


def _is_verdict(out: Any) -> bool:
    return isinstance(out, dict) and "recommendation" in out and _f(out, "score") is not None


def _is_assessment(out: Any) -> bool:
    return isinstance(out, dict) and "approve" in out and "max_size_pct" in out


class _View:
    """The parts of the context the rules read, looked up once per request."""

    def __init__(self, request: ModelRequest):
        ctx = request.context
        agent = ctx.get("agent") or {}
        market = ctx.get("market") or {}
        self.ctx, self.role, self.me = ctx, request.role, agent.get("id") or request.agent
        self.kind, self.stance = agent.get("kind"), agent.get("stance")
        self.symbol = ctx.get("symbol") or market.get("symbol") or "?"
        self.as_of = str(ctx.get("as_of") or market.get("as_of") or "")
        self.market, self.px, self.ind = market, market.get("price") or {}, market.get("indicators") or {}
        self.close, self.atr = _f(self.px, "close"), _f(self.ind, "atr_14")
        self.outputs: Mapping[str, Any] = ctx.get("outputs") or {}
        self.transcript: list[Mapping[str, Any]] = ctx.get("transcript") or []
        self.portfolio = ctx.get("portfolio") or {}
        self.risk = ctx.get("risk") or {}
        self.risk_state = ctx.get("risk_state") or {}
        self.averse = bool(self.risk_state.get("risk_averse"))
        self.max_pos = _f(self.risk, "max_position_pct") or 20.0
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
        for agent in reversed(list(self.outputs)):
            if agent != self.me and test(self.outputs[agent]):
                return self.outputs[agent]
        return None

    @cached_property
    def analysts(self) -> list[tuple[str, Reading]]:
        """Earlier analyst reports (anything with a signal and a score), as readings."""
        return [(agent, Reading(_f(out, "score") or 0.0, _conf(out)))
                for agent, out in self.outputs.items() if agent != self.me and _is_analyst(out)]

    def consensus(self) -> Reading:
        """The analysts' confidence-weighted view, or this model's own read of the data."""
        return _blend(self.analysts, "analyst consensus") if self.analysts else _composite(self)

    @property
    def atr_pct(self) -> float | None:
        return self.atr / self.close * 100 if self.atr and self.close else None

    @property
    def vol_scale(self) -> float:
        """Size multiplier targeting a 2% daily ATR."""
        atr_pct = self.atr_pct
        return _clip(2.0 / atr_pct, 0.5, 1.5) if atr_pct else 1.0

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
        scale = _f(self.risk.get("cvar") or {}, "scale")
        return 0.5 if scale is None else scale

    def news_ratio(self) -> float | None:
        n7, n30 = _f(self.market, "news_count_7d"), _f(self.market, "news_count_30d")
        return n7 / (n30 * 7 / 30) if n7 is not None and n30 else None


def _conf(out: Mapping[str, Any], default: float = 0.5) -> float:
    c = _f(out, "confidence")
    return default if c is None else _clip(c, 0.0, 1.0)


# ---------------------------------------------------------------- analysts


def _technical(v: _View) -> Reading:
    e, close, ind = _Evidence(), v.close, v.ind
    for key, label, weight in (("sma_50", "SMA50", 0.25), ("sma_200", "SMA200", 0.2)):
        level = _f(ind, key)
        if close is not None and level:
            above = close >= level
            e.add(weight if above else -weight,
                  f"price {'above' if above else 'below'} {label} ({_p(close)} vs {_p(level)})")
    hist = _f(ind, "macd_hist")
    if hist is not None:
        scale = min(1.0, abs(hist) / (0.004 * close)) if close else 1.0
        e.add(math.copysign(0.2 * scale, hist), f"MACD hist {'+' if hist >= 0 else '-'}{_p(abs(hist))}")
    rsi = _f(ind, "rsi_14")
    if rsi is not None:
        if rsi > 70:
            e.add(-0.25, f"RSI {rsi:.0f} overbought")
        elif rsi < 30:
            e.add(0.25, f"RSI {rsi:.0f} oversold")
        else:
            e.add((rsi - 50) / 100, f"RSI {rsi:.0f}")
    pct_b = _f(ind, "bb_pct_b")
    if pct_b is not None:
        where = "above the upper" if pct_b > 1 else "below the lower" if pct_b < 0 else "inside the"
        e.add(-0.15 if pct_b > 1 else 0.15 if pct_b < 0 else 0.0,
              f"{where} Bollinger band (%b {pct_b:.2f})")
    change = _f(v.px, "change_20d_pct")
    if change is not None:
        e.add(0.15 * math.tanh(change / 10), f"20-day change {change:+.1f}%")
    return e.reading(6)


def _fundamentals(v: _View) -> Reading:
    f = v.market.get("fundamentals")
    if not f:
        return Reading(0.0, 0.1, ["no fundamentals available"])
    e, latest = _Evidence(), f.get("latest") or {}
    surprise = _f(latest, "surprise_pct")
    if surprise is not None:
        eps, est = _f(latest, "reported_eps"), _f(latest, "estimated_eps")
        detail = f" ({eps:.2f} vs est. {est:.2f})" if eps is not None and est is not None else ""
        e.add(_clip(surprise / 20, -0.4, 0.4), f"EPS surprise {surprise:+.1f}%{detail}")
    growth = _f(f, "eps_growth_yoy_pct")
    if growth is not None:
        e.add(_clip(growth / 50, -0.35, 0.35), f"EPS growth {growth:+.1f}% YoY")
    quarters = sorted((q for q in f.get("history") or () if _f(q, "surprise") is not None),
                      key=lambda q: str(q.get("fiscal_date_ending")))[-4:]
    if quarters:
        beats = sum(1 for q in quarters if q["surprise"] > 0)
        e.add(0.15 * (2 * beats / len(quarters) - 1),
              f"beat estimates in {beats} of the last {len(quarters)} quarters")
    ttm = _f(f, "eps_ttm")
    if ttm is not None:
        e.add(-0.1 if ttm <= 0 else 0.0, f"trailing EPS {ttm:.2f}")
    reading = e.reading(4, base=0.4, gain=0.5)
    reported, today = _day(latest.get("reported_date")), _day(v.as_of)
    if reported and today and (today - reported).days > 120:
        reading.confidence *= 0.6
        reading.drivers.append(f"last report {(today - reported).days} days old")
    return reading


def _tone(items: list[Mapping[str, Any]], with_text: bool) -> tuple[int, int, str | None]:
    """Lexicon hits over news items, and the headline with the strongest tone."""
    pos = neg = 0
    top, top_net = None, 0
    for item in items:
        p, n = tone_counts(str(item.get("headline") or ""))
        if abs(p - n) > abs(top_net):
            top, top_net = item.get("headline"), p - n
        if with_text and item.get("text"):
            tp, tn = tone_counts(str(item["text"])[:600])
            p, n = p + tp, n + tn
        pos, neg = pos + p, neg + n
    return pos, neg, top


def _news(v: _View) -> Reading:
    today = _day(v.as_of)
    cutoff = (today - timedelta(days=7)).isoformat() if today else ""
    recent = [n for n in v.market.get("news") or () if n and str(n.get("time") or "") >= cutoff]
    ratio = v.news_ratio()
    if not recent:
        return Reading(0.0, 0.1, ["no headlines in the last 7 days"])
    pos, neg, top = _tone(recent, with_text=True)
    tone = (pos - neg) / (pos + neg + 2)
    drivers = [f"tone {tone:+.2f} over {len(recent)} headlines in 7 days ({pos} positive, "
               f"{neg} negative words)"]
    if top:
        drivers.append(f'loudest headline: "{_quote(str(top), 100)}"')
    amplify = 1.0
    if ratio is not None:
        amplify = 1 + 0.5 * _clip(ratio - 1, 0.0, 2.0)
        drivers.append(f"news flow {ratio:.1f}x its 30-day norm")
    confidence = 0.2 + 0.04 * min(pos + neg, 10) + (0.1 if ratio and ratio > 1.5 else 0.0)
    return Reading(_clip(0.75 * tone * amplify), _clip(confidence, 0.05, 0.9), drivers)


def _sentiment(v: _View) -> Reading:
    news = [n for n in v.market.get("news") or () if n]
    pos, neg, top = _tone(news, with_text=False)
    tone = (pos - neg) / (pos + neg + 2)
    drivers = [f"headline tone {tone:+.2f} over {len(news)} headlines" if news else "no headlines"]
    change = _f(v.px, "change_5d_pct")
    confidence = 0.15 + 0.04 * min(pos + neg, 10)
    if change is None:
        score = tone
    else:
        score = 0.6 * tone + 0.4 * math.tanh(change / 5)
        confidence += 0.1
        drivers.append(f"5-day return {change:+.1f}%")
    volume = _f(v.ind, "volume_ratio_20d")
    if volume is not None:
        drivers.append(f"volume {volume:.1f}x its 20-day average")
        confidence += 0.1 if volume > 1.3 else 0.0
    if top:
        drivers.append(f'most charged headline: "{_quote(str(top), 100)}"')
    return Reading(_clip(score), _clip(confidence, 0.05, 0.9), drivers)


_ANALYSTS: dict[str, Callable[[_View], Reading]] = {
    "technical_analyst": _technical, "fundamentals_analyst": _fundamentals,
    "news_analyst": _news, "sentiment_analyst": _sentiment,
}


def _composite(v: _View) -> Reading:
    return _blend([(name.split("_")[0], rule(v)) for name, rule in _ANALYSTS.items()],
                  "own read of the data")


def _analyst_report(v: _View) -> dict[str, Any]:
    r = _ANALYSTS.get(v.role, _composite)(v)
    peers = {t["agent"]: Reading(_f(t["output"], "score") or 0.0, _conf(t["output"]))
             for t in v.transcript if t.get("agent") != v.me and _is_analyst(t.get("output"))}
    if peers:  # broadcast: move a quarter of the way toward each peer's latest post
        board = _blend(list(peers.items()), "peers on the board")
        r = Reading(0.75 * r.score + 0.25 * board.score, r.confidence, board.drivers + r.drivers)
    score = _clip(r.score + v.bias)
    signal = "bullish" if score > THRESHOLD else "bearish" if score < -THRESHOLD else "neutral"
    return {"signal": signal, "score": _r(score), "confidence": _r(r.confidence),
            "summary": v.explain(f"{v.symbol} {signal} at {score:+.2f}", r.drivers[:4]),
            "key_points": r.drivers}


# ---------------------------------------------------------------- research debate


def _research_argument(v: _View) -> dict[str, Any]:
    stance = "bear" if "bear" in (v.role or "") else "bull"
    side = 1 if stance == "bull" else -1
    views = v.analysts
    consensus = v.consensus()
    support = sorted((x for x in views if side * x[1].score > THRESHOLD),
                     key=lambda x: -side * x[1].score)
    against = [x for x in views if side * x[1].score < -THRESHOLD]
    points = [_point(agent, v.outputs[agent]) for agent, _ in support]
    if not points:
        points = [f"no analyst leans {stance}ish; {consensus.drivers[0]}"]
    conviction = 0.5 + 0.5 * side * consensus.score
    opponent = _last_turn(v.transcript, "bear" if stance == "bull" else "bull")
    if opponent is not None:  # concede a little to a strong opponent
        conviction -= 0.2 * ((_f(opponent["output"], "conviction") or 0.5) - 0.5)
    conviction = _clip(conviction + side * v.bias, 0.05, 0.95)
    headline = (f"{stance.title()} case for {v.symbol}: {len(support)} of {len(views)} analyst "
                f"reports lean {stance}ish, {len(against)} against")
    return {"stance": stance, "argument": v.explain(headline, consensus.drivers),
            "points": points, "rebuttal": _rebuttal(v, opponent, support),
            "conviction": _r(conviction)}


def _point(agent: str, out: Mapping[str, Any]) -> str:
    detail = next((p for p in out.get("key_points") or () if isinstance(p, str)), None)
    text = f"{agent} reads {out.get('signal')} at {_f(out, 'score') or 0:+.2f} (confidence {_conf(out):.2f})"
    return f"{text}: {detail}" if detail else text


def _last_turn(transcript: list[Mapping[str, Any]], stance: str) -> Mapping[str, Any] | None:
    for turn in reversed(transcript):
        out = turn.get("output")
        if isinstance(out, dict) and out.get("stance") == stance:
            return turn
    return None


def _rebuttal(v: _View, opponent: Mapping[str, Any] | None,
              support: list[tuple[str, Reading]]) -> str | None:
    """Quote the opponent's latest turn verbatim and answer it; None before it has spoken."""
    if opponent is None:
        return None
    out = opponent["output"]
    points = [p for p in out.get("points") or () if isinstance(p, str) and p.strip()]
    if points:
        claim = points[((v.ctx.get("round") or 1) - 1) % len(points)]
    else:
        claim = str(out.get("argument") or "").removeprefix(MARK).split(". ")[0]
    claim = _quote(claim)
    if not claim:
        return None
    if support:
        agent, best = support[0]
        answer = (f"{agent} reads {best.score:+.2f} at confidence {best.confidence:.2f}, which "
                  "that point does not answer")
    else:
        answer = "no analyst report backs it strongly enough to act on"
    return f'{opponent.get("agent")} argued "{claim}", but {answer}.'


def _debate_edge(transcript: list[Mapping[str, Any]]) -> tuple[float, float] | None:
    """Round-weighted mean conviction of bull and bear, if both spoke."""
    sums = {"bull": [0.0, 0.0], "bear": [0.0, 0.0]}
    for turn in transcript:
        out = turn.get("output")
        if not isinstance(out, dict):
            continue
        conviction, stance = _f(out, "conviction"), out.get("stance")
        if conviction is not None and stance in sums:
            w = float(turn.get("round") or 1)
            sums[stance][0] += w * conviction
            sums[stance][1] += w
    if not (sums["bull"][1] and sums["bear"][1]):
        return None
    return sums["bull"][0] / sums["bull"][1], sums["bear"][0] / sums["bear"][1]


def _verdict(v: _View) -> dict[str, Any]:
    consensus = v.consensus()
    drivers = list(consensus.drivers)
    edge = _debate_edge(v.transcript)
    if edge is None:
        score, winner = consensus.score, "tie"
    else:
        bull, bear = edge
        score = 0.5 * consensus.score + 0.5 * (bull - bear)
        winner = "bull" if bull - bear > 0.05 else "bear" if bull - bear < -0.05 else "tie"
        drivers.insert(0, f"debate conviction bull {bull:.2f} vs bear {bear:.2f}")
    score = _clip(score + v.bias)
    action = _action_for(score)
    confidence = _clip(0.5 * consensus.confidence + 0.5 * abs(score), 0.05, 0.95)
    return {"recommendation": action, "winner": winner, "confidence": _r(confidence),
            "score": _r(score),
            "rationale": v.explain(f"{action} {v.symbol} at net score {score:+.2f}", drivers),
            "plan": _plan_text(v, action)}


def _plan_text(v: _View, action: str) -> str:
    entry, stop, take = _levels(v, action)
    if entry is None:
        return (f"No new trade in {v.symbol}; revisit when the net score moves beyond "
                f"±{THRESHOLD:.2f}.")
    verb = "Buy" if action == "BUY" else "Sell short" if stop else "Reduce or exit"
    levels = "".join(f", {label} {x:g}" for label, x in (("stop", stop), ("target", take)) if x)
    sma50 = _f(v.ind, "sma_50")
    exit_if = (f"a close {'below' if action == 'BUY' else 'above'} SMA50 ({_p(sma50)})"
               if sma50 else "the signal reversing")
    return f"{verb} near {entry:g}{levels}; size with the confidence; reassess on {exit_if}."


# ---------------------------------------------------------------- sizing and orders


def _levels(v: _View, action: str) -> tuple[float | None, float | None, float | None]:
    """Entry at the close; stop 2 ATR and target 3 ATR away, no wider than the risk defaults.
    A SELL that only trims a long (shorting off) carries no stop or target."""
    close = v.close
    if close is None or action == "HOLD":
        return None, None, None
    if action == "SELL" and not v.risk.get("allow_short"):
        return _price(close), None, None
    side = 1 if action == "BUY" else -1
    stop_pct, take_pct = _f(v.risk, "stop_loss_pct"), _f(v.risk, "take_profit_pct")
    stop_d = 2 * v.atr if v.atr else None
    take_d = 3 * v.atr if v.atr else None
    if stop_pct:
        stop_d = min(stop_d or math.inf, close * stop_pct / 100)
    if take_pct:
        take_d = min(take_d or math.inf, close * take_pct / 100)
    stop = close - side * stop_d if stop_d else None
    take = close + side * take_d if take_d else None
    return (_price(close), _price(stop) if stop and stop > 0 else None, _price(take) if take and take > 0 else None)


def _sized(v: _View, action: str, desired: float) -> tuple[str, float, str | None]:
    """Fit a desired size (% of equity) to the position limit, cash floor and shorting rule."""
    if action == "HOLD":
        return "HOLD", 0.0, None
    position = _f(v.portfolio, "position_pct") or 0.0
    halted = bool(v.risk_state.get("halted"))
    if action == "BUY":
        if halted:
            return "HOLD", 0.0, "trading halted by the drawdown limit"
        room = v.max_pos - position
        cash, equity = _f(v.portfolio, "cash"), _f(v.portfolio, "equity")
        if cash is not None and equity:
            room = min(room, cash / equity * 100 - (_f(v.risk, "min_cash_pct") or 0.0))
        why = f"no room under the {v.max_pos:g}% position limit and cash floor"
    else:
        short = bool(v.risk.get("allow_short")) and not halted
        room = position + v.max_pos if short else max(position, 0.0)
        why = "no position to sell and shorting is off" if not short else "short already at the limit"
    size = min(desired, room)
    if size < 0.5:
        return "HOLD", 0.0, why
    return action, _r(size, 2), None


def _lean(v: _View, source: Reading) -> tuple[float, str, float]:
    """Net score after beliefs, the action it calls for, and the decision's confidence."""
    score = _clip(source.score + v.bias)
    return score, _action_for(score), _clip(0.5 * source.confidence + 0.5 * abs(score), 0.05, 0.95)


def _emit(v: _View, who: str, score: float, wanted: str, desired: float, confidence: float,
          drivers: list[str], levels: tuple[Any, Any, Any] | None = None) -> dict[str, Any]:
    """A trade_proposal: the wanted action fitted to the limits, with entry, stop and target."""
    action, size, why = _sized(v, wanted, desired)
    if why:
        drivers.append(f"{wanted} not possible: {why}")
    entry, stop, take = levels if levels and action == wanted else _levels(v, action)
    return {"action": action, "size_pct": size, "entry": entry, "stop_loss": stop,
            "take_profit": take, "confidence": _r(confidence),
            "reasoning": v.explain(f"{who}: {action} {size:g}% of equity (net score {score:+.2f})",
                                   drivers)}


def _order(v: _View, source: Reading, who: str) -> dict[str, Any]:
    """Size from confidence: max_position_pct x confidence x belief size_mult; deciders and
    managers also shrink while the firm is risk-averse."""
    score, wanted, confidence = _lean(v, source)
    drivers = list(source.drivers)
    desired = v.max_pos * confidence * v.size_mult
    if v.averse and v.kind in ("decider", "manager"):
        desired *= v.cvar_scale
        drivers.append(f"risk-averse (CVaR trigger): size x{v.cvar_scale:g}")
    return _emit(v, who, score, wanted, desired, confidence, drivers)


def _trade_proposal(v: _View) -> dict[str, Any]:
    if v.kind == "decider":
        return _final_decision(v)
    verdict = v.latest(_is_verdict)
    if verdict is None:
        return _order(v, v.consensus(), "Trader")
    score = _f(verdict, "score") or 0.0
    return _order(v, Reading(score, _conf(verdict), [
        f"research verdict {verdict.get('recommendation')} at {score:+.2f} "
        f"(confidence {_conf(verdict):.2f})"]), "Trader")


def _final_decision(v: _View) -> dict[str, Any]:
    """Portfolio manager: the trader's direction, sized by the risk debate, capped or vetoed by
    the risk review, shrunk while risk-averse."""
    proposal = v.latest(_is_proposal)
    if proposal is None:
        return _order(v, _direction(v), "Portfolio manager")
    p_action, p_size = str(proposal.get("action")), _f(proposal, "size_pct") or 0.0
    score, wanted, confidence = _lean(v, Reading(_sign(p_action) * _conf(proposal), _conf(proposal)))
    drivers = [f"trader proposes {p_action} {p_size:g}% (confidence {_conf(proposal):.2f})"]
    desired = p_size if wanted == p_action else v.max_pos * confidence
    sizes = _risk_views(v)
    if sizes and wanted == p_action:
        weights = {"neutral": 0.5, "aggressive": 0.25, "conservative": 0.25}
        desired = sum(weights[s] * x for s, x in sizes.items()) / sum(weights[s] for s in sizes)
        drivers.append("risk debate " + ", ".join(f"{s} {x:g}%" for s, x in sizes.items()))
    review = v.latest(_is_assessment)
    if review is not None and wanted != "HOLD":
        if not review.get("approve"):
            concern = next(iter(review.get("concerns") or ()), "no reason given")
            drivers.append(f"risk review withheld approval: {concern}")
            wanted = "HOLD"
        elif (cap := _f(review, "max_size_pct")) is not None and cap < desired:
            desired = cap
            drivers.append(f"capped at the risk review's {cap:g}%")
    desired = v.risk_scaled(desired, wanted, drivers)
    levels = (proposal.get("entry"), proposal.get("stop_loss"), proposal.get("take_profit"))
    return _emit(v, "Portfolio manager", score, wanted, desired * v.size_mult, confidence, drivers,
                 levels if wanted == p_action and levels[1] is not None else None)


# ---------------------------------------------------------------- risk


def _risk_views(v: _View) -> dict[str, float]:
    """Latest recommended size per stance in the current transcript."""
    sizes: dict[str, float] = {}
    for turn in v.transcript:
        out = turn.get("output")
        if not isinstance(out, dict):
            continue
        size, stance = _f(out, "recommended_size_pct"), out.get("stance")
        if size is not None and stance in ("aggressive", "conservative", "neutral"):
            sizes[stance] = size
    return sizes


def _concerns(v: _View, proposal: Mapping[str, Any] | None) -> list[tuple[int, str]]:
    """(severity 1-3, concern) about a proposal: 3 blocks it, 2 is material, 1 is minor."""
    found: list[tuple[int, str]] = []
    action = str(proposal.get("action")) if proposal else "HOLD"
    size = _f(proposal, "size_pct") or 0.0
    position = _f(v.portfolio, "position_pct") or 0.0
    if v.risk_state.get("halted"):
        found.append((3, "trading is halted by the drawdown limit"))
    if action == "SELL" and not v.risk.get("allow_short") and position <= 0:
        found.append((3, "SELL with no position while shorting is off"))
    atr_pct = v.atr_pct
    if atr_pct is not None and atr_pct > 2.5:
        found.append((2 if atr_pct > 4 else 1, f"volatile: ATR {atr_pct:.1f}% of price"))
    drawdown = abs(_f(v.risk_state, "drawdown_pct") or 0.0)
    if drawdown > 5:
        found.append((2 if drawdown > 10 else 1, f"firm drawdown {drawdown:.1f}%"))
    if v.averse:
        found.append((2, "CVaR trigger: the firm is risk-averse"))
    if action == "BUY":
        if position + size > 0.8 * v.max_pos:
            found.append((2, f"position would reach {position + size:.1f}% of a {v.max_pos:g}% limit"))
        rsi, sma200 = _f(v.ind, "rsi_14"), _f(v.ind, "sma_200")
        if rsi is not None and rsi > 70:
            found.append((1, f"buying into an overbought RSI {rsi:.0f}"))
        if sma200 and v.close is not None and v.close < sma200:
            found.append((1, f"buying below the 200-day average ({_p(sma200)})"))
        for other, corr in (v.portfolio.get("correlations") or {}).items():
            if isinstance(corr, float) and corr > 0.8:
                found.append((1, f"moves with {other} already held (correlation {corr:.2f})"))
    ratio = v.news_ratio()
    if ratio is not None and ratio > 2:
        found.append((1, f"news flow {ratio:.1f}x normal: event risk"))
    if proposal and action != "HOLD" and _conf(proposal) < 0.4:
        found.append((1, f"low-confidence proposal ({_conf(proposal):.2f})"))
    return found


def _risk_factor(v: _View, action: str) -> float:
    """Beliefs on a risk role: size_mult, and a bias against the trade shrinks it by |bias|."""
    against = v.bias * _sign(action) < 0
    return v.size_mult * (1 - min(abs(v.bias), 1.0) if against else 1.0)


_STANCE_RULES = {
    # stance: (size multiplier on the proposal, lowest severity it raises, its case)
    "aggressive": (1.25, 3, "the edge is in the signal; volatility is the price of the return"),
    "neutral": (1.0, 2, "size to volatility, targeting a 2% daily ATR"),
    "conservative": (0.5, 1, "protect capital first: half size and every risk counted"),
}


def _risk_argument(v: _View) -> dict[str, Any]:
    stance = v.stance if v.stance in _STANCE_RULES else "neutral"
    mult, threshold, case = _STANCE_RULES[stance]
    proposal = v.latest(_is_proposal)
    concerns = [text for severity, text in _concerns(v, proposal) if severity >= threshold]
    action = str(proposal.get("action")) if proposal else "HOLD"
    drivers = [case]
    if action == "HOLD" or v.risk_state.get("halted"):
        size = 0.0
        drivers.append("no trade to size")
    else:
        base = _f(proposal, "size_pct") or 0.0
        vol = v.vol_scale
        size = base * mult * (max(vol, 1.0) if stance == "aggressive" else
                              vol if stance == "neutral" else min(vol, 1.0))
        if v.averse and stance != "aggressive":
            size *= v.cvar_scale
            drivers.append(f"risk-averse: x{v.cvar_scale:g}")
        size = _clip(size * _risk_factor(v, action), 0.0, v.max_pos)
        drivers.insert(0, f"proposal {action} {base:g}%, volatility scale {vol:.2f}")
    others = {s: x for s, x in _risk_views(v).items() if s != stance}
    if others:
        drivers.append("others on the desk: " + ", ".join(f"{s} {x:g}%" for s, x in others.items()))
    return {"stance": stance, "recommended_size_pct": _r(size, 2), "concerns": concerns,
            "argument": v.explain(f"{stance.title()} view: {_r(size, 2):g}% of equity", drivers)}


def _risk_assessment(v: _View) -> dict[str, Any]:
    proposal = v.latest(_is_proposal)
    if proposal is None:
        return {"approve": False, "max_size_pct": 0.0, "concerns": ["no trade proposal to review"],
                "reasoning": v.explain("Nothing to approve", ["no trade proposal in the outputs"])}
    action = str(proposal.get("action"))
    concerns = _concerns(v, proposal)
    blocking = [text for severity, text in concerns if severity >= 3 and action != "HOLD"]
    cap = v.max_pos * min(v.vol_scale, 1.0) * _risk_factor(v, action)
    drivers = [f"volatility scale {v.vol_scale:.2f}"]
    cap = v.risk_scaled(cap, action, drivers)
    cap = _r(_clip(cap, 0.0, v.max_pos), 2)
    size = _f(proposal, "size_pct") or 0.0
    if blocking:
        drivers.insert(0, f"blocked: {blocking[0]}")
    elif action != "HOLD":
        drivers.insert(0, f"{action} {size:g}% {'within' if size <= cap else 'resized to'} a {cap:g}% cap")
    return {"approve": not blocking, "max_size_pct": 0.0 if blocking else cap,
            "concerns": [text for severity, text in concerns if severity >= 2],
            "reasoning": v.explain(f"Risk review of {action} {size:g}%", drivers)}


# ---------------------------------------------------------------- FinCon manager


def _directional(out: Any) -> Reading | None:
    """Any output with a direction: an analyst report, a verdict or a sized trade."""
    if not isinstance(out, dict):
        return None
    score = _f(out, "score")
    if score is not None:
        return Reading(_clip(score), _conf(out))
    action = out.get("action")
    if action in ("BUY", "SELL", "HOLD"):
        return Reading(_sign(action) * _conf(out), _conf(out))
    return None


def _manager_plan(v: _View) -> dict[str, Any]:
    workers = [w for w in v.ctx.get("workers") or () if isinstance(w, str)]
    reports = v.ctx.get("reports") or []
    if workers and not reports and not v.ctx.get("final"):
        day = v.as_of[:10]
        return {"assignments": [{"worker": w, "instruction": f"Report on {v.symbol} as of {day}: "
                                 "signal, score in [-1, 1] and confidence, citing the numbers."}
                                for w in workers],
                "action": "HOLD", "size_pct": 0.0, "stop_loss": None, "take_profit": None,
                "confidence": 0.0, "beliefs_applied": [],
                "reasoning": f"{MARK} Assigning {len(workers)} worker(s) ({', '.join(workers)}) "
                             "before deciding."}
    views = [(r.get("agent", "?"), d) for r in reports if (d := _directional(r.get("output")))]
    failed = [str(r.get("agent")) for r in reports if r.get("output") is None]
    source = _blend(views, "worker reports") if views else v.consensus()
    if failed:
        source.drivers.append(f"no report from {', '.join(failed)}")
    order = _order(v, source, "Manager")
    return {"assignments": [], "action": order["action"], "size_pct": order["size_pct"],
            "stop_loss": order["stop_loss"], "take_profit": order["take_profit"],
            "confidence": order["confidence"], "reasoning": order["reasoning"],
            "beliefs_applied": [b.text for b in v.applied]}


# ---------------------------------------------------------------- user-defined schemas

_SYNONYMS = {
    1: ("bullish", "buy", "long", "positive", "up", "bull", "overweight"),
    -1: ("bearish", "sell", "short", "negative", "down", "bear", "underweight"),
    0: ("neutral", "hold", "flat", "none", "mixed", "tie", "equal-weight"),
}
_TEXT_FIELDS = ("reasoning", "summary", "rationale", "argument", "explanation", "analysis", "thesis")


def _from_schema(v: _View, schema: Mapping[str, Any]) -> Any:
    """A valid instance of an inline schema: known field names get the data-driven values,
    everything else its default, first enum value or the type's zero."""
    rule = _ANALYSTS.get(v.role, _composite) if v.kind == "analyst" else _direction
    reading = rule(v)
    score = _clip(reading.score + v.bias)
    direction = _sign(_action_for(score))
    size = v.max_pos * reading.confidence * v.size_mult if direction else 0.0
    text = v.explain(f"{v.role} on {v.symbol}: net score {score:+.2f}", reading.drivers)
    values: dict[str, Any] = {
        "score": score, "confidence": reading.confidence, "size_pct": size,
        "signal": direction, "action": direction, "recommendation": direction,
        **{name: text for name in _TEXT_FIELDS}}
    return _Filler(schema, values, v.as_of).instance(schema, None, 0)


def _direction(v: _View) -> Reading:
    """The firm's current lean: the latest trade proposal, else verdict, else the analysts."""
    for test in (_is_proposal, _is_verdict):
        out = v.latest(test)
        if out is not None:
            return _directional(out) or v.consensus()
    return v.consensus()


def _fit(value: Any, node: Mapping[str, Any]) -> Any:
    """A data value shaped to a schema node, or None when it does not fit."""
    types = node.get("type")
    types = set(types) if isinstance(types, list) else {types}
    enum = node.get("enum")
    if isinstance(value, int) and (enum or "string" in types):
        labels = _SYNONYMS[value]  # a direction (-1, 0, 1) as whichever label the schema uses
        return next((e for e in enum if isinstance(e, str) and e.lower() in labels), None) \
            if enum else labels[0]
    if isinstance(value, (int, float)) and types & {"number", "integer"}:
        value = _clip(float(value), node.get("minimum", -math.inf), node.get("maximum", math.inf))
        value = round(value) if "number" not in types else _r(value)
        if value <= node.get("exclusiveMinimum", -math.inf) or \
                value >= node.get("exclusiveMaximum", math.inf):
            return None
        return value
    if isinstance(value, str) and "string" in types:
        limit = node.get("maxLength")
        return value[:limit] if isinstance(limit, int) else value
    return None


class _Filler:
    def __init__(self, root: Mapping[str, Any], values: dict[str, Any], as_of: str):
        self.root, self.values = root, values
        self.formats = {"date": as_of[:10], "date-time": as_of}

    def resolve(self, node: Any) -> Any:
        ref = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return self.resolve(target)
        return node

    def instance(self, node: Any, name: str | None, depth: int) -> Any:
        node = self.resolve(node)
        if not isinstance(node, dict) or depth > 12:
            return None
        if "const" in node:
            return node["const"]
        if name in self.values and (fitted := _fit(self.values[name], node)) is not None:
            return fitted
        if "default" in node:
            return node["default"]
        if node.get("enum"):
            return node["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = [o for o in node.get(key) or () if self.resolve(o).get("type") != "null"]
            if options:
                return self.instance(options[0], name, depth + 1)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or "properties" in node:
            return {p: self.instance(sub, p, depth + 1)
                    for p, sub in (node.get("properties") or {}).items()}
        if kind == "array":
            return [self.instance(node.get("items") or {}, None, depth + 1)
                    for _ in range(node.get("minItems", 0))]
        if kind in ("number", "integer"):
            zero = _clip(0.0, node.get("minimum", -math.inf), node.get("maximum", math.inf))
            if zero <= node.get("exclusiveMinimum", -math.inf):
                zero = node["exclusiveMinimum"] + 1
            return int(zero) if kind == "integer" else zero
        if kind == "string":
            return self.formats.get(str(node.get("format")), "n/a".ljust(node.get("minLength", 0), "."))
        return False if kind == "boolean" else None


# ---------------------------------------------------------------- the model

_BUILDERS: dict[str, Callable[[_View], dict[str, Any]]] = {
    "analyst_report": _analyst_report,
    "research_argument": _research_argument,
    "research_verdict": _verdict,
    "trade_proposal": _trade_proposal,
    "risk_argument": _risk_argument,
    "risk_assessment": _risk_assessment,
    "manager_plan": _manager_plan,
}


def _chars(messages: list[dict[str, Any]]) -> int:
    return sum(len(c) if isinstance(c := m.get("content"), str) else len(str(c or ""))
               for m in messages)


class OfflineModel:
    """ChatModel answering every role from the data in `request.context`; see the module docstring."""

    name = "offline"

    def answer(self, request: ModelRequest) -> dict[str, Any]:
        """The structured answer, before serialisation."""
        try:
            view = _View(request)
        except ValueError as exc:  # a malformed belief
            raise ModelError(f"offline model, agent '{request.agent}': {exc}") from None
        build = _BUILDERS.get(request.output_name)
        if build is not None:
            return build(view)
        if not request.output_schema:
            raise ModelError(f"offline model, agent '{request.agent}': output "
                             f"'{request.output_name}' is not built in and no schema was given")
        return _from_schema(view, request.output_schema)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        start = time.perf_counter()
        content = json.dumps(self.answer(request), ensure_ascii=False, separators=(",", ":"))
        return ModelResponse(model=self.name, content=content,
                             prompt_tokens=_chars(request.messages) // 4,
                             completion_tokens=len(content) // 4, cost_usd=0.0,
                             latency_ms=(time.perf_counter() - start) * 1000)

    async def aclose(self) -> None:
        return None
