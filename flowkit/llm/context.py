"""Context windows: how many tokens a model profile takes, and a cheap count of what a prompt
costs, without importing litellm or any tokenizer.

A profile's window is, in order: its declared `context_window`; what its provider knows (a
provider may define `context_window(profile) -> int | None`: the `local` provider starts
llama.cpp with a fixed n_ctx); litellm's model table (`flowkit.llm.catalog`, read without
importing litellm); else unknown, and nothing is trimmed. A prompt may use the window less the
completion (`max_tokens`) and a safety margin (`MARGIN` of the window).

The count (`estimate`) is an over-estimate by design, scanned in one regex pass: a run of ASCII
letters costs 1 token per 4 letters when it is word-sized (up to 12 letters; +1 per camelCase
hump) and 3 per 4 letters beyond (identifiers, base64, gibberish); every digit, punctuation
mark, newline and UTF-8 byte of non-ASCII text costs 1; a single space costs nothing (it joins
the next word); no piece costs more than its bytes. Measured on the TradingAgents firm's real
prompts (`bench/context_tokens.py`), per whole request it over-counts OpenAI's cl100k and o200k
tokenizers by 1.5-1.7x and SmolLM2's (the least efficient measured) by 1.2-1.6x; a
numbers-heavy message alone comes down to 1.01x on SmolLM2. Adversarial strings (base64, hex, long numbers) can be under-counted by up to 11% on
SmolLM2, which the margin covers; an endpoint that still reports an overflow gets a harder
trim and one more try (`flowkit.graph.fit`). It costs about 0.2 ms per KB, so a call first
checks the bytes bound (`utf8_bytes`), which settles every prompt far from its window."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowkit.spec.models import ModelProfile

MARGIN = 0.10        # of the window, kept free for chat-template tokens and estimate error
MESSAGE_TOKENS = 8   # per message: role markers of the chat template
WORD_LETTERS = 12    # a longer letter run is not one word of any vocabulary

_PIECE = re.compile(r"[A-Za-z]+|[0-9]|[^\x00-\x7f]+|\s+|[^A-Za-z0-9\s]")
_HUMP = re.compile(r"[a-z][A-Z]")


def estimate(text: str) -> int:
    """Tokens `text` costs, over-estimated (see the module docstring)."""
    n = 0
    for m in _PIECE.finditer(text):
        s = m.group()
        c = s[0]
        if c.isascii() and c.isalpha():
            k = len(s)
            cost = 1 + (k - 1) // 4 if k <= WORD_LETTERS else (3 * k + 3) // 4
            n += min(k, cost + (len(_HUMP.findall(s)) if k > 1 else 0))
        elif not c.isascii():
            n += len(s.encode("utf-8"))
        elif c.isspace():
            n += s.count("\n") + (1 if len(s) > 1 and " " in s else 0)
        else:
            n += 1
    return n


def utf8_bytes(text: str) -> int:
    """An upper bound of `estimate` (no piece costs more than its bytes), in microseconds."""
    return len(text.encode("utf-8"))


def request_tokens(messages: Iterable[dict[str, Any]], schema: dict[str, Any] | None = None,
                   tools: Sequence[dict[str, Any]] | None = None, *,
                   count: Callable[[str], int] = estimate) -> int:
    """What a chat request costs in prompt tokens: every message, plus the output schema and
    tool specs, which some endpoints put in the prompt (counted even where they do not).
    `count=utf8_bytes` gives a bound that is cheap enough to check before every call."""
    total = 0
    for message in messages:
        total += MESSAGE_TOKENS + count(str(message.get("content") or ""))
        if message.get("tool_calls"):
            total += count(json.dumps(message["tool_calls"]))
    for extra in (schema, tools):
        if extra:
            total += count(json.dumps(extra, separators=(",", ":")))
    return total


def window(profile: ModelProfile) -> int | None:
    """The profile's context window in tokens, or None when nobody knows it."""
    if profile.context_window:
        return profile.context_window
    from flowkit.llm import catalog
    from flowkit.plugins import PROVIDERS, provider_name

    known = getattr(PROVIDERS[provider_name(profile.model)], "context_window", None)
    if callable(known) and (tokens := known(profile)):
        return int(tokens)
    info = catalog.model_info(profile.model)
    return info.max_input_tokens if info else None


@dataclass(frozen=True)
class Budget:
    """Prompt tokens a step may send: the tightest of its profile and fallbacks (any of them
    may answer the call), each its window less its max_tokens and the margin."""

    window: int          # the window that sets the budget
    max_tokens: int      # that profile's completion limit
    profile: str         # that profile's model id, for messages
    tokens: int          # what the prompt may cost

    @staticmethod
    def of(profiles: Sequence[ModelProfile]) -> Budget | None:
        budgets = [Budget(w, p.max_tokens, p.model, w - p.max_tokens - int(w * MARGIN))
                   for p in profiles if (w := window(p)) is not None]
        return min(budgets, key=lambda b: b.tokens) if budgets else None

    def describe(self) -> str:
        return (f"model {self.profile} has a context window of {self.window:,} tokens; less "
                f"max_tokens {self.max_tokens:,} and a {MARGIN:.0%} margin, a prompt may "
                f"use {max(self.tokens, 0):,}")
