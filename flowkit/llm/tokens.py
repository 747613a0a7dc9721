"""Prompt tokens counted as litellm counts them, without importing litellm (2-3 s, ~100 MB).

flowkit runs litellm with Hugging Face tokenizers off, so litellm's `token_counter` counts
every model with tiktoken: `o200k_base` for OpenAI's gpt-4o family, tiktoken's encoding for
another OpenAI chat model it knows, `cl100k_base` for any other id; 3 tokens per message, 1
more per `name`, the arguments of tool calls, and 3 to prime the reply. The encodings are the
files litellm ships (tiktoken would otherwise download them). tests/test_llm_tokens.py checks
the counts against litellm's."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable

from flowkit.llm import catalog

PER_MESSAGE, PER_NAME, REPLY = 3, 1, 3


def count(model: str, messages: list[dict[str, Any]]) -> int:
    """The prompt tokens of `messages` for `model`."""
    length = _counter(_encoding_name(model))
    total = REPLY
    for message in messages:
        total += PER_MESSAGE
        for key, value in message.items():
            if key == "tool_calls" and isinstance(value, list):
                total += sum(length(str((c.get("function") or {}).get("arguments", "")))
                             for c in value if isinstance(c, dict))
            elif isinstance(value, str):
                total += length(value) + (PER_NAME if key == "name" else 0)
    return total


def _encoding_name(model: str) -> str:
    if not catalog.openai_chat(model):
        return "cl100k_base"  # litellm counts an id it does not know as gpt-3.5-turbo
    if "gpt-4o" in model:
        return "o200k_base"
    import tiktoken.model

    try:
        return tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return "cl100k_base"


@functools.cache
def _counter(name: str) -> Callable[[str], int]:
    spec = importlib.util.find_spec("litellm")  # finds the package without running it
    if spec is not None and spec.origin is not None and "TIKTOKEN_CACHE_DIR" not in os.environ:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(
            Path(spec.origin).parent / "litellm_core_utils" / "tokenizers")
    import tiktoken

    encoding = tiktoken.get_encoding(name)
    return lambda text: len(encoding.encode(text, disallowed_special=()))
