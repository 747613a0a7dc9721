"""How a typed output is asked of an endpoint: the `structured_output` modes and their
negotiation.

Modes, strongest first:
- `json_schema`: OpenAI's `response_format: {type: json_schema, ...}` (OpenAI, vLLM; litellm turns
  it into Ollama's `format` schema for `ollama/` ids);
- `json_object`: `{type: json_object, schema: ...}`, which llama.cpp's server constrains to the
  schema and others read as "answer JSON";
- `tools`: one function whose parameters are the schema, which the model is made to call;
- `prompt`: nothing but the schema in the system message (always there).

`auto` starts from what litellm knows about the model (json_schema if it supports response
schemas, an OpenAI-compatible `api_base` is assumed to, else json_object). When an endpoint
rejects a mode (HTTP 400/422 naming response_format, json_schema, schema or tools, or
llama-cpp-python's HTTP 500 validation error on response_format), the call
steps down to the next mode once and the endpoint keeps that mode for the rest of the run."""

from __future__ import annotations

import functools
import re
from typing import Any, Callable

MODES = ("json_schema", "json_object", "tools", "prompt")
NEGOTIATED = ("json_schema", "json_object", "prompt")  # what `auto` steps through
_REJECTION = re.compile(r"response_format|json_schema|json_object|schema|tool", re.IGNORECASE)


def rejects_mode(exc: BaseException, mode: str) -> bool:
    """Did the endpoint refuse the request because of how the output was asked for?
    llama-cpp-python's server answers a request it cannot validate with HTTP 500 naming the
    field (`'loc': ('body', 'response_format', 'type')`), others with 400 or 422."""
    status = getattr(exc, "status_code", None)
    if mode == "prompt":
        return False
    if status in (400, 422):
        return bool(_REJECTION.search(str(exc)))
    return status == 500 and "validation error" in str(exc) and "response_format" in str(exc)


def next_mode(mode: str) -> str | None:
    order = NEGOTIATED if mode in NEGOTIATED else MODES
    i = order.index(mode)
    return order[i + 1] if i + 1 < len(order) else None


@functools.cache
def auto_mode(model: str, has_api_base: bool, supports_schema: Callable[[str], bool]) -> str:
    if has_api_base and model.startswith("openai/"):
        return "json_schema"  # an OpenAI-compatible server: try the best, negotiate down
    try:
        return "json_schema" if supports_schema(model) else "json_object"
    except Exception:  # litellm does not know the model: JSON without a schema is safe
        return "json_object"


def request_fields(mode: str, output_name: str, schema: dict[str, Any],
                   tools: list[dict[str, Any]] | None, compatible: bool) -> dict[str, Any]:
    """The completion arguments that ask for `schema` in `mode`. `compatible`: an
    OpenAI-compatible server at an api_base, which may read a json_object's schema (llama.cpp);
    litellm's own providers get the plain form they know."""
    if mode == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": schema_name(output_name), "schema": schema, "strict": False}}}
    if mode == "json_object":
        return {"response_format": {"type": "json_object", "schema": schema} if compatible
                else {"type": "json_object"}}
    if mode == "tools":
        tool = {"type": "function", "function": {
            "name": schema_name(output_name), "description": "Give your answer.",
            "parameters": schema}}
        if tools:  # the agent's own tools stay callable; the answer tool is one more
            return {"tools": [*tools, tool]}
        return {"tools": [tool], "tool_choice": {"type": "function",
                                                 "function": {"name": tool["function"]["name"]}}}
    return {}


def schema_name(name: str) -> str:
    """OpenAI wants ^[a-zA-Z0-9_-]{1,64}$."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "output"
