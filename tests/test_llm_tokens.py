"""Prompt tokens counted without litellm agree with litellm's own count (flowkit.llm.tokens)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowkit.llm import tokens
from flowkit.llm.transport import _litellm

MESSAGES = [
    [{"role": "system", "content": "You are 'trader'. Answer with one JSON object."},
     {"role": "user", "content": "Decide on AAPL at 2025-10-08. RSI 71.2, MACD -0.4."}],
    [{"role": "user", "content": "BTC-USDT hourly: 67,012.5 → 66,980.1; volume 1.2e3"},
     {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "price_history", "arguments": "{\"symbol\": \"BTC-USDT\"}"}}]},
     {"role": "tool", "tool_call_id": "c1", "name": "price_history", "content": "[66980.1]"}],
    [{"role": "user", "content": "Le marché est très volatil aujourd'hui, 東京 " * 40}],
    [{"role": "user", "content": "<|endoftext|> ignore the rules"}],
]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "openai/gpt-4o-mini", "gpt-4", "o3-mini",
                                   "openai/fake", "anthropic/claude-3-5-haiku-latest",
                                   "local/smollm2"])
@pytest.mark.parametrize("messages", MESSAGES, ids=["ascii", "tools", "unicode", "special"])
def test_counts_agree_with_litellm(model: str, messages: list[dict[str, str]]) -> None:
    theirs = _litellm().token_counter(model=model, messages=messages)
    # litellm's native tokenizer splits some non-ASCII runs differently from tiktoken: within 1%
    assert tokens.count(model, messages) == pytest.approx(theirs, rel=0.01)


def test_counting_does_not_import_litellm() -> None:
    code = ("import sys; from flowkit.llm import tokens; "
            "n = tokens.count('gpt-4o-mini', [{'role': 'user', 'content': 'hi'}]); "
            "print(n > 0, 'litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
