"""Fitting a step's prompt into its model's context window (`flowkit.llm.context.Budget`).

The step's template variables are trimmed and the prompt rendered again, never the rendered text
chopped mid-line, in this order, each as little as needed:
1. older debate turns (`transcript`), oldest first, down to the newest one; an agent whose every
   turn was dropped leaves `outputs` too (its output is its last turn);
2. news (`market.news`, newest first) beyond the newest `KEEP_NEWS`;
3. history: price bars (`market.recent_bars`), then reported quarters
   (`market.fundamentals.history`), oldest first;
4. last resort: the longest text left in the variables (an earlier agent's argument, a
   headline) is halved, with a marker, until the prompt fits; later messages of the
   conversation (tool results, a re-asked bad answer) the same way.
A prompt whose fixed parts (system message, output schema, the template's own text) cannot fit
is a ConfigError naming the agent and the window. What was trimmed is recorded on the step
(`steps.input.trimmed`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowkit.errors import ConfigError
from flowkit.llm.context import Budget, request_tokens, utf8_bytes

KEEP_NEWS = 3
CUT_MARK = " …[cut]"
MIN_CUT = 40        # texts shorter than this are not cut further
HARDER = 0.6        # after an endpoint reports an overflow, the retry's share of what was sent

Vars = dict[str, Any]


@dataclass
class Trim:
    """What fitting took out of one step's prompt; tokens are flowkit's estimate."""

    window: int | None
    budget: int
    tokens_before: int
    tokens_after: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # debate_turns, news, bars, quarters
    cut: list[str] = field(default_factory=list)           # where text was halved
    retried: bool = False  # the endpoint still reported an overflow: trimmed harder, asked again

    def record(self) -> dict[str, Any]:
        return {"window": self.window, "budget": self.budget, "tokens_before": self.tokens_before,
                "tokens_after": self.tokens_after, "dropped": self.dropped, "cut": self.cut,
                "retried": self.retried}


def describe(trim: dict[str, Any]) -> str:
    """One line for `flowkit show`."""
    nouns = {"debate_turns": "debate turn", "news": "news item", "bars": "price bar",
             "quarters": "reported quarter"}
    parts = [f"dropped the {n} oldest {nouns.get(k, k)}{'s' if n != 1 else ''}"
             for k, n in (trim.get("dropped") or {}).items()]
    parts += [f"halved {c}" for c in trim.get("cut") or []]
    window = f"{trim['window']:,}-token window" if trim.get("window") else "the endpoint's window"
    again = "; the endpoint still overflowed, trimmed harder" if trim.get("retried") else ""
    return (f"trimmed to fit the {window}: {', '.join(parts) or 'nothing dropped'} "
            f"(~{trim['tokens_before']:,} -> ~{trim['tokens_after']:,} tokens){again}")


class Fitter:
    """One step's prompt, kept within `budget` (None: the window is unknown, nothing is done)."""

    def __init__(self, agent_id: str, system: str, schema: dict[str, Any] | None,
                 tools: list[dict[str, Any]] | None, budget: Budget | None,
                 render: Callable[[Vars], str]):
        self.agent_id, self.system, self.schema, self.tools = agent_id, system, schema, tools
        self.budget, self.render = budget, render
        self.limit = budget.tokens if budget else None
        self.trim: Trim | None = None

    def prompt(self, variables: Vars) -> tuple[Vars, list[dict[str, Any]]]:
        """The variables the prompt was rendered from and its first two messages."""
        user = self.render(variables)
        if self.limit is None or self._fits(self._messages(user)) \
                or (tokens := self._cost(user)) <= self.limit:
            return variables, self._messages(user)
        earlier = self.trim  # fitting again after an overflow starts from the full variables
        trim = Trim(self.budget.window if self.budget else None, self.limit,
                    earlier.tokens_before if earlier else tokens,
                    retried=earlier.retried if earlier else False)
        self.trim = trim
        for name, count, keep, least in _LEVERS:
            variables, user = self._lever(variables, user, name, count, keep, least, trim)
        shown: set[tuple[Any, ...]] = set()  # texts the template does not show: never cut
        while self._cost(user) > self.limit:
            path = _longest(variables, shown)
            if path is None:
                raise ConfigError(self._too_small(self._cost(user), "its prompt template's "
                                                  "own text"))
            cut = _replace(variables, path, _halve(_get(variables, path)))
            text = self.render(cut)
            if text == user:
                shown.add(path)
                continue
            variables, user = cut, text
            if (where := ".".join(map(str, path))) not in trim.cut:
                trim.cut.append(where)
        trim.tokens_after = self._cost(user)
        return variables, self._messages(user)

    def conversation(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`messages` with later turns (tool results, a quoted bad answer) halved until the
        request fits; the first two are the fitted prompt."""
        if self.limit is None or self._fits(messages):
            return messages
        tokens = request_tokens(messages, self.schema, self.tools)
        if tokens <= self.limit:
            return messages
        trim = self.trim or Trim(self.budget.window if self.budget else None, self.limit, tokens)
        self.trim, messages = trim, list(messages)
        while tokens > self.limit:
            later = [i for i, m in enumerate(messages[2:], start=2)
                     if len(m.get("content") or "") >= MIN_CUT]
            if not later:
                raise ConfigError(self._too_small(tokens, "its conversation"))
            i = max(later, key=lambda j: len(messages[j]["content"]))
            messages[i] = {**messages[i], "content": _halve(messages[i]["content"])}
            if (where := f"message {i + 1} ({messages[i]['role']})") not in trim.cut:
                trim.cut.append(where)
            tokens = request_tokens(messages, self.schema, self.tools)
        trim.tokens_after = tokens
        return messages

    def harder(self, sent: list[dict[str, Any]]) -> bool:
        """The endpoint said the prompt overflowed: lower the limit below what was sent, once.
        False when that was done already."""
        if self.trim is not None and self.trim.retried:
            return False
        tokens = request_tokens(sent, self.schema, self.tools)
        self.limit = int(min(tokens, self.limit or tokens) * HARDER)
        window = self.budget.window if self.budget else None
        self.trim = self.trim or Trim(window, self.limit, tokens)
        self.trim.budget, self.trim.retried = self.limit, True
        return True

    def _lever(self, variables: Vars, user: str, name: str, count: Callable[[Vars], int],
               keep: Callable[[Vars, int], Vars], least: int,
               trim: Trim) -> tuple[Vars, str]:
        """Keep the most items of one kind that fit (a binary search over renderings)."""
        assert self.limit is not None
        have = count(variables)
        if self._cost(user) <= self.limit or have <= least:
            return variables, user
        fewest = self.render(keep(variables, least))
        if fewest == user:  # the template does not show these items: dropping them saves nothing
            return variables, user
        lo, hi, best = least, have - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            text = self.render(keep(variables, mid))
            if self._cost(text) <= self.limit:
                best, lo = (mid, text), mid + 1
            else:
                hi = mid - 1
        kept, text = best if best else (least, fewest)
        trim.dropped[name] = trim.dropped.get(name, 0) + have - kept
        return keep(variables, kept), text

    def _fits(self, messages: list[dict[str, Any]]) -> bool:
        """Cheap and sure: the bytes bound is within the limit (most calls of a big window)."""
        assert self.limit is not None
        return request_tokens(messages, self.schema, self.tools, count=utf8_bytes) <= self.limit

    def _cost(self, user: str) -> int:
        return request_tokens(self._messages(user), self.schema, self.tools)

    def _messages(self, user: str) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def _too_small(self, tokens: int, what: str) -> str:
        where = self.budget.describe() if self.budget else "the endpoint reported an overflow"
        return (f"agent '{self.agent_id}': the prompt does not fit: {where}, and with everything "
                f"trimmed it still takes ~{tokens:,} ({what}). Raise the profile's "
                f"context_window or lower its max_tokens")


def fixed_tokens(system: str, schema: dict[str, Any] | None,
                 tools: list[dict[str, Any]] | None) -> int:
    """What every prompt of an agent costs before its template says a word."""
    return request_tokens([{"role": "system", "content": system}, {"role": "user", "content": ""}],
                          schema, tools)


# ---------------------------------------------------------------- the levers, in order


def _turns(v: Vars) -> int:
    return len(v.get("transcript") or ())


def _keep_turns(v: Vars, k: int) -> Vars:
    transcript = list(v.get("transcript") or ())
    kept, dropped = transcript[len(transcript) - k:], transcript[:len(transcript) - k]
    speaking = {t.get("agent") for t in kept}
    outputs = dict(v.get("outputs") or {})
    for t in dropped:
        agent = t.get("agent")
        if agent not in speaking and outputs.get(agent) is t.get("output"):
            outputs.pop(agent)
    return {**v, "transcript": kept, "outputs": outputs}


def _news(v: Vars) -> int:
    return len((v.get("market") or {}).get("news") or ())


def _keep_news(v: Vars, k: int) -> Vars:
    market = v["market"]
    newest = sorted(market["news"], key=lambda n: str(n.get("time") or ""), reverse=True)
    return {**v, "market": {**market, "news": newest[:k]}}


def _bars(v: Vars) -> int:
    return len((v.get("market") or {}).get("recent_bars") or ())


def _keep_bars(v: Vars, k: int) -> Vars:
    market = v["market"]
    bars = list(market["recent_bars"])
    return {**v, "market": {**market, "recent_bars": bars[len(bars) - k:]}}


def _quarters(v: Vars) -> int:
    return len(((v.get("market") or {}).get("fundamentals") or {}).get("history") or ())


def _keep_quarters(v: Vars, k: int) -> Vars:
    market = v["market"]
    fundamentals = market["fundamentals"]
    return {**v, "market": {**market, "fundamentals": {
        **fundamentals, "history": list(fundamentals["history"])[:k]}}}


_LEVERS: list[tuple[str, Callable[[Vars], int], Callable[[Vars, int], Vars], int]] = [
    ("debate_turns", _turns, _keep_turns, 1),
    ("news", _news, _keep_news, KEEP_NEWS),
    ("bars", _bars, _keep_bars, 0),
    ("quarters", _quarters, _keep_quarters, 0),
]


# ---------------------------------------------------------------- the last resort


def _halve(value: Any) -> Any:
    """A text's first half and a marker; a list's first half (lists are ordered most important
    first: key points, news), without a marker, which would change the items' type."""
    if isinstance(value, str):
        value = value.removesuffix(CUT_MARK)
        return value[: len(value) // 2] + CUT_MARK
    return list(value)[: len(value) // 2]


def _longest(v: Vars, skip: set[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """The path of the longest text or list (by its JSON size) worth cutting, or None."""
    best: tuple[int, tuple[Any, ...]] | None = None
    stack: list[tuple[Any, tuple[Any, ...]]] = [(v[k], (k,)) for k in v if k != "agent"]
    while stack:
        value, path = stack.pop()
        size = 0
        if isinstance(value, str):
            size = len(value) if len(value) >= MIN_CUT else 0
        elif isinstance(value, dict):
            stack.extend((x, (*path, k)) for k, x in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((x, (*path, i)) for i, x in enumerate(value))
            size = len(json.dumps(value, default=str)) if len(value) > 1 else 0
        if size and path not in skip and (best is None or size > best[0]):
            best = (size, path)
    return best[1] if best else None


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of `value` with the item at `path` replaced; shared state is never mutated."""
    if not path:
        return new
    key, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, key: _replace(value[key], rest, new)}
    items = list(value)
    items[key] = _replace(items[key], rest, new)
    return items if isinstance(value, list) else tuple(items)
