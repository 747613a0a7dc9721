"""The belief condition language: when a learned belief applies, as data a rules-based model
can evaluate (and an LLM reads as the belief's sentence).

A belief is {"text": str, "condition": CONDITION or null, "effect": EFFECT}.

CONDITION (null or {} always holds):
  {"indicator": NAME, "op": OP, "value": V}    market.indicators[NAME]: any name in the indicator
                                               catalogue (flowkit.market.indicators.NAMES)
  {"price": NAME, "op": OP, "value": V}        market.price[NAME]: open high low close volume,
                                               the change_*_pct columns, bars
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
comparison. Anything else is rejected with a ValueError naming the problem.

EFFECT (at least one key):
  {"bias": B}       -1 <= B <= 1, added to the agent's directional score (negative = toward
                    selling); enough bias flips BUY to HOLD or SELL.
  {"size_mult": M}  0 <= M <= 2, multiplies every size the agent proposes.

A context is the mapping an agent's template sees (market snapshot, outputs, portfolio,
risk_state), or the compact features `flowkit train` keeps of a past decision."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowkit.market import indicators
from flowkit.market.sources import OHLCV
from flowkit.market.view import CHANGES

Predicate = Callable[[Mapping[str, Any]], bool]

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
# The names a condition may compare, per source: the market ones follow the snapshot the data
# layer builds (its indicator catalogue and price columns), so a new indicator is usable at once.
FIELDS: dict[str, frozenset[str]] = {
    "indicator": frozenset(indicators.NAMES),
    "price": frozenset((*OHLCV, *(name for name, _ in CHANGES), "bars")),
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


def compile_condition(cond: Any) -> Predicate:
    """A condition (see the module docstring) as a predicate over a context.
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
        return _signal(cond)
    return _comparison(cond)


def _signal(cond: dict[str, Any]) -> Predicate:
    agent, want = cond["signal"], cond.get("equals")
    if set(cond) != {"signal", "equals"} or not isinstance(agent, str) or not isinstance(want, str):
        raise ValueError('a signal condition is {"signal": AGENT, "equals": VALUE}')
    want = want.lower()

    def signal_is(ctx: Mapping[str, Any]) -> bool:
        out = (ctx.get("outputs") or {}).get(agent) or {}
        got = out.get("signal") or out.get("recommendation") or out.get("action")
        return isinstance(got, str) and got.lower() == want
    return signal_is


def _comparison(cond: dict[str, Any]) -> Predicate:
    sources = [s for s in (*FIELDS, "output") if s in cond]
    if len(sources) != 1 or set(cond) != {sources[0], "op", "value"}:
        raise ValueError(f"unknown condition {dict(cond)!r}: expected one of {sorted(FIELDS)} or "
                         f'"output" with "op" and "value", or "signal"/"all"/"any"/"not"')
    source, name, op, value = sources[0], cond[sources[0]], cond["op"], cond["value"]
    if source == "output":
        if not isinstance(name, str) or "." not in name:
            raise ValueError(f'"output" names AGENT.FIELD, got {name!r}')
    elif name not in FIELDS[source]:
        raise ValueError(f"unknown {source} {name!r}; known: {', '.join(sorted(FIELDS[source]))}")
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; use one of {' '.join(OPS)}")
    ordered = op in ("<", "<=", ">", ">=")
    if ordered and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise ValueError(f"{op} needs a number, got {value!r}")
    compare = OPS[op]

    def compares(ctx: Mapping[str, Any]) -> bool:
        got = _lookup(source, name, ctx)
        if got is None or (ordered and (isinstance(got, (str, bool)))):
            return False
        return bool(compare(got, value))
    return compares


@dataclass(frozen=True)
class Belief:
    """A checked belief: its sentence, when it holds, and its effect."""

    text: str
    holds: Predicate
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
