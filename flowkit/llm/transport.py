"""How one attempt reaches a model: a `Transport` per profile, chosen by `transport_for`.

The policy around an attempt (retries, fallbacks, circuit breaker, structured-output
negotiation, deadlines, accounting) lives once, in `flowkit.llm.remote.RemoteModel`; a
transport only sends one request and reads one answer. Two ship:

- `openai_compat.OpenAICompatTransport`: `openai/<model>` at an `api_base` (any
  OpenAI-compatible server, and the `local` provider's llama.cpp server), straight over
  HTTP/1.1 on asyncio streams with kept-alive connections (httpx behind a proxy): ~0.2 ms
  per call on loopback where litellm adds ~5 ms and 2-3 s of import;
- `LiteLLMTransport`: every other model id, through `litellm.acompletion`.

Contract of a Transport (checked by tests/test_llm_transports.py on both):
- `send(args)` takes the completion arguments (`model`, `messages`, `temperature`,
  `max_tokens`, `timeout`, and when set `seed`, `tools`, `tool_choice`, `response_format`,
  plus `api_base`/`api_key` from `connection`, and litellm's `max_retries`/`drop_params`, which
  others ignore) and returns a `Completion` read by `read`;
- its errors classify under `flowkit.llm.faults` exactly as litellm's do: an HTTP status
  error carries `status_code` (and the server's headers as `headers`, for Retry-After) and
  the server's message, a refused connection has a `ConnectError`/`ConnectionRefusedError`
  in its chain, a dropped one a `ReadError`/`RemoteProtocolError`, an unreadable body a
  `JSONDecodeError`, a timeout is a TimeoutError; an unusable 200 is a `ProviderFault` that
  carries the tokens and cost the provider billed for it;
- it never sends a key but `args["api_key"]`; `aclose` may be called more than once;
- an optional `prepare()` does slow one-time setup (litellm's import) before the first
  attempt's deadline starts.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Awaitable, Callable, Protocol, TypeVar

from flowkit.errors import ConfigError
from flowkit.llm import faults
from flowkit.llm.base import ToolCall
from flowkit.spec.models import ModelProfile

# Sent to a custom api_base that names no api_key_env: the SDKs refuse to send without a key,
# and an explicit one stops litellm from falling back to the provider's key in the environment.
LOCAL_API_KEY = "sk-local"
# Model id prefixes served by the lean transport when the profile has an api_base.
LEAN_PREFIXES: tuple[str, ...] = ("openai/",)
T = TypeVar("T")


@dataclass
class Completion:
    """One usable answer as a transport read it."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class Transport(Protocol):
    async def send(self, args: dict[str, Any]) -> Completion: ...

    async def aclose(self) -> None: ...


def transport_for(profile: ModelProfile) -> Transport:
    if profile.api_base and profile.model.startswith(LEAN_PREFIXES):
        from flowkit.llm.openai_compat import OpenAICompatTransport

        return OpenAICompatTransport(profile.model)
    return LiteLLMTransport()


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`awaitable` or TimeoutError after `seconds`; without wait_for's extra task where the
    running Python has asyncio.timeout."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10


def connection(profile: ModelProfile) -> dict[str, Any]:
    """Where the call goes and the one key it may carry. A key leaves only for its owner: with
    a custom api_base, the key named by api_key_env or a placeholder, never litellm's fallback
    to the provider's own variable (OPENAI_API_KEY for `gpt-4o-mini`...)."""
    conn: dict[str, Any] = {}
    if profile.api_base:
        conn["api_base"] = profile.api_base
    if profile.api_key_env:
        key = os.environ.get(profile.api_key_env)
        if not key:
            raise ConfigError(f"model {profile.model}: environment variable "
                              f"{profile.api_key_env} (its api_key_env) is not set")
        conn["api_key"] = key
    elif profile.api_base:
        conn["api_key"] = LOCAL_API_KEY
    return conn


def read(raw: Any, price: Callable[[int, int], float]) -> Completion:
    """The first choice of a parsed completion (an SDK object or the JSON dict), or a
    ProviderFault saying why it is unusable, carrying the usage the provider billed anyway."""
    usage = faults.field(raw, "usage")
    prompt_tokens = _tokens(faults.field(usage, "prompt_tokens"))
    completion_tokens = _tokens(faults.field(usage, "completion_tokens"))
    cost = price(prompt_tokens, completion_tokens) if usage is not None else 0.0
    try:
        message = faults.check_completion(raw)
    except faults.ProviderFault as fault:
        fault.prompt_tokens, fault.completion_tokens, fault.cost_usd = \
            prompt_tokens, completion_tokens, cost
        raise
    calls = []
    for call in faults.field(message, "tool_calls") or []:
        function = faults.field(call, "function")
        calls.append(ToolCall(id=faults.field(call, "id") or "",
                              name=faults.field(function, "name") or "",
                              arguments=faults.field(function, "arguments") or "{}"))
    content = faults.field(message, "content") or ""
    if not isinstance(content, str):  # a server's list of parts or an object: its JSON text
        content = json.dumps(content, default=str)
    return Completion(content, calls, prompt_tokens, completion_tokens, cost)


def _tokens(value: Any) -> int:
    """A usage count as a server wrote it; anything but a non-negative number counts 0."""
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0


def catalog_price(model: str) -> Callable[[int, int], float]:
    """Dollars for a usage from litellm's model table (0 for a model it does not know)."""
    from flowkit.llm.catalog import model_info

    info = model_info(model)
    return info.cost if info is not None else lambda prompt, completion: 0.0


@functools.cache
def _litellm() -> ModuleType:
    # Without these, importing litellm fetches a cost map over the network and logs chatter.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    litellm.disable_hf_tokenizer_download = True
    # What a first completion would import lazily (seconds on a busy machine): imported here,
    # off the clock of any call's deadline.
    for module in ("openai.resources", "litellm.proxy._types", "litellm._service_logger"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    return litellm


def supports_schema(model: str) -> bool:
    """litellm's word on whether `model` takes a response schema (imports litellm)."""
    return bool(_litellm().supports_response_schema(model))


class LiteLLMTransport:
    """Any litellm model id through `litellm.acompletion`; litellm is imported on first use."""

    def prepare(self) -> None:
        """Import litellm (2-3 s), off the clock of any call's deadline."""
        _litellm()

    async def send(self, args: dict[str, Any]) -> Completion:
        litellm = _litellm()
        raw = await litellm.acompletion(**args)
        # litellm prices every response it can; a missing price means it does not know the model.
        hidden = getattr(raw, "_hidden_params", None) or {}
        return read(raw, lambda p, c: float(hidden.get("response_cost") or 0.0)
                    if "response_cost" in hidden else catalog_price(args["model"])(p, c))

    async def aclose(self) -> None:
        # Only if a call imported litellm: closing must not pay for the import.
        if "litellm" in sys.modules:
            litellm = _litellm()
            await litellm.close_litellm_async_clients()
            # Closed clients stay cached and are bound to this event loop: drop them.
            litellm.in_memory_llm_clients_cache.flush_cache()
