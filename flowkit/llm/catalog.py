"""What is known about a model id without importing litellm: its prices and context window.

litellm ships its model table as JSON inside the package; reading that file costs ~0.1 s, once,
where `import litellm` costs 2-3 s. Lookup follows litellm's `get_model_info`: the id as given,
then without its provider prefix (`openai/gpt-4o-mini` -> `gpt-4o-mini`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

_TABLE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True)
class ModelInfo:
    key: str                          # the table's name for the model
    max_input_tokens: int | None      # context window for the prompt, if the table says
    input_cost_per_token: float | None
    output_cost_per_token: float | None

    @property
    def priced(self) -> bool:
        return self.input_cost_per_token is not None and self.output_cost_per_token is not None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars for a response's usage; 0 when the table has no price (as litellm)."""
        if not self.priced:
            return 0.0
        assert self.input_cost_per_token is not None and self.output_cost_per_token is not None
        return prompt_tokens * self.input_cost_per_token + \
            completion_tokens * self.output_cost_per_token


@functools.cache
def _table() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")  # finds the package without running it
    if spec is None or spec.origin is None:
        return {}
    try:
        data = (Path(spec.origin).parent / _TABLE).read_bytes()
    except OSError:
        return {}
    try:
        return orjson.loads(data)  # ~1.5x faster than json on this 3 MB table
    except orjson.JSONDecodeError:  # what orjson refuses (NaN, huge integers), json may read
        pass
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        return {}


@functools.cache
def model_info(model: str) -> ModelInfo | None:
    """The table's entry for `model`, or None when litellm does not know it."""
    table = _table()
    for key in (model, model.split("/", 1)[1] if "/" in model else None):
        entry = table.get(key) if key else None
        if isinstance(entry, dict) and key != "sample_spec":
            return ModelInfo(key=key, max_input_tokens=_int(entry.get("max_input_tokens")),
                             input_cost_per_token=_float(entry.get("input_cost_per_token")),
                             output_cost_per_token=_float(entry.get("output_cost_per_token")))
    return None


def openai_chat(model: str) -> bool:
    """Is `model`, exactly as written, one of OpenAI's own chat models in the table (litellm's
    `open_ai_chat_completion_models`)?"""
    entry = _table().get(model)
    return isinstance(entry, dict) and entry.get("litellm_provider") == "openai" \
        and not (model.startswith("ft:") and model.count(":") <= 1)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
