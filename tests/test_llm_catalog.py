"""The model table read without importing litellm agrees with litellm's own lookup."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flowkit.llm import catalog

IDS = ["gpt-4o-mini", "openai/gpt-4o-mini", "ollama/llama3", "deepseek/deepseek-chat",
       "claude-3-5-sonnet-20240620", "anthropic/claude-3-haiku-20240307", "openai/fake",
       "groq/llama3-8b-8192", "not-a-model"]


@pytest.mark.parametrize("model", IDS)
def test_catalog_agrees_with_litellm(model):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    try:
        theirs = litellm.get_model_info(model)
    except Exception:
        theirs = None
    ours = catalog.model_info(model)
    if theirs is None:
        assert ours is None
        return
    assert ours is not None
    assert ours.max_input_tokens == theirs.get("max_input_tokens")
    assert ours.input_cost_per_token == theirs.get("input_cost_per_token")
    assert ours.output_cost_per_token == theirs.get("output_cost_per_token")
    if ours.priced:
        expected = litellm.cost_per_token(model=model, prompt_tokens=1000,
                                          completion_tokens=200)
        assert ours.cost(1000, 200) == pytest.approx(sum(expected), rel=1e-9)


def test_catalog_does_not_import_litellm():
    code = ("import sys; from flowkit.llm import catalog; "
            "assert catalog.model_info('gpt-4o-mini').max_input_tokens; "
            "print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
