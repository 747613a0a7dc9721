"""Any litellm model behind the ChatModel interface, with retries, fallbacks and accounting.

Each profile gets `retries` retries (tenacity: exponential backoff with jitter, or the server's
Retry-After) on 429, 408, 5xx, timeouts and connection errors; other errors skip straight to the
next fallback profile. Every try, failed or not, is an Attempt on the response (or on the
ModelError when all fail). litellm is imported on the first call: it costs 2-3 s.
"""

from __future__ import annotations

import asyncio

import email.utils
import functools
import os
import random
import re
import sys
import time
from contextlib import nullcontext
from types import ModuleType
from typing import Any, AsyncContextManager, Sequence

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from flowkit import secrets
from flowkit.errors import ConfigError, ModelError
from flowkit.llm.base import Attempt, ModelRequest, ModelResponse, ToolCall
from flowkit.llm.cache import request_params, response_text
from flowkit.llm.limits import Limiter
from flowkit.spec.models import ModelProfile

# Sent to a custom api_base that names no api_key_env: the SDKs refuse to send without a key,
# and an explicit one stops litellm from falling back to the provider's key in the environment.
LOCAL_API_KEY = "sk-local"


@functools.cache
def _litellm() -> ModuleType:
    # Without these, importing litellm fetches a cost map over the network and logs chatter.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    litellm.disable_hf_tokenizer_download = True
    return litellm


class LiteLLMModel:
    """A ChatModel for `profile`, falling back to `fallbacks` in order."""

    def __init__(self, profile: ModelProfile, fallbacks: Sequence[ModelProfile] = (), *,
                 limiter: Limiter | None = None, backoff: float = 1.0, max_backoff: float = 30.0,
                 retry_after_cap: float = 30.0):
        self.name = profile.model
        self.profile = profile
        self.profiles = [profile, *fallbacks]
        self.limiter = limiter
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.retry_after_cap = retry_after_cap
        for p in self.profiles:  # whatever its name, the variable holds a key: mask its value
            if p.api_key_env:
                secrets.remember_env(p.api_key_env)

    def cache_params(self, request: ModelRequest) -> dict[str, Any]:
        """What the cache keys on besides model and messages: profile defaults resolved."""
        return {**request_params(request), "temperature": self._temperature(self.profile, request),
                "max_tokens": request.max_tokens or self.profile.max_tokens}

    async def complete(self, request: ModelRequest) -> ModelResponse:
        _litellm()  # the first call pays the import; keep it off the clock
        started = time.perf_counter()
        attempts: list[Attempt] = []
        for profile in self.profiles:
            kwargs = self._kwargs(profile, request)
            try:
                response = await self._with_retries(profile, kwargs, attempts)
            except Exception:  # recorded in attempts; the next profile gets its turn
                continue
            response.attempts = attempts
            response.cost_usd = sum(a.cost_usd for a in attempts)
            response.latency_ms = _ms(started)
            return response
        raise ModelError(f"agent {request.agent!r}: model call failed after {len(attempts)} "
                         f"attempts (models: {', '.join(p.model for p in self.profiles)}); "
                         f"last error: {attempts[-1].error}", attempts=attempts)

    async def aclose(self) -> None:
        # Only if a call imported litellm: closing must not pay for the import.
        if "litellm" in sys.modules:
            litellm = _litellm()
            await litellm.close_litellm_async_clients()
            # Closed clients stay cached and are bound to this event loop: drop them.
            litellm.in_memory_llm_clients_cache.flush_cache()

    async def _with_retries(self, profile: ModelProfile, kwargs: dict[str, Any],
                            attempts: list[Attempt]) -> ModelResponse:
        """The first try goes straight out; tenacity (built per call, ~0.1 ms) only steps in
        after a retryable failure, which keeps the common path cheap."""
        try:
            return await self._attempt(profile, kwargs, attempts)
        except Exception as exc:
            if not profile.retries or not _retryable(exc):
                raise
            first = exc
        retrying = AsyncRetrying(stop=stop_after_attempt(profile.retries), wait=self._wait,
                                 retry=retry_if_exception(_retryable), reraise=True)
        await asyncio.sleep(self._delay(first, 1))
        return await retrying(self._attempt, profile, kwargs, attempts)

    async def _attempt(self, profile: ModelProfile, kwargs: dict[str, Any],
                       attempts: list[Attempt]) -> ModelResponse:
        litellm = _litellm()
        slot: AsyncContextManager[Any] = (
            self.limiter.acquire(profile.model, profile.rpm) if self.limiter else nullcontext())
        async with slot:
            started = time.perf_counter()
            try:
                raw = await litellm.acompletion(**kwargs)
                response, attempt = _parse(profile.model, raw, _ms(started))
            except Exception as exc:
                # a provider's error may echo the key: mask it before anyone keeps it
                attempts.append(Attempt(model=profile.model, latency_ms=_ms(started),
                                        error=secrets.redact(_describe(exc))))
                raise
        attempts.append(attempt)
        return response

    def _wait(self, state: RetryCallState) -> float:
        assert state.outcome is not None
        # tenacity counts from the first retry; the direct first try came before it.
        return self._delay(state.outcome.exception(), state.attempt_number + 1)

    def _delay(self, exc: BaseException | None, failures: int) -> float:
        """Seconds before the next try after `failures` failed ones."""
        retry_after = _retry_after(exc)
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        # Exponential with additive jitter, so concurrent agents do not retry in lockstep.
        exponential = self.backoff * 2.0 ** (failures - 1)
        return min(self.max_backoff, exponential) + random.uniform(0, self.backoff)

    def _kwargs(self, profile: ModelProfile, request: ModelRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": profile.model,
            "messages": request.messages,
            "temperature": self._temperature(profile, request),
            "max_tokens": request.max_tokens or profile.max_tokens,
            "timeout": request.timeout or profile.timeout,
            "max_retries": 0,     # the SDK's own retries would multiply tenacity's
            "drop_params": True,  # a provider without seed/response_format support still answers
            **_connection(profile),
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.output_schema is not None:
            kwargs["response_format"] = (
                {"type": "json_schema",
                 "json_schema": {"name": _schema_name(request.output_name),
                                 "schema": request.output_schema, "strict": False}}
                if _supports_schema(profile.model, bool(profile.api_base))
                else {"type": "json_object"})  # the schema is in the prompt already
        if request.tools:
            kwargs["tools"] = request.tools
        return kwargs

    @staticmethod
    def _temperature(profile: ModelProfile, request: ModelRequest) -> float:
        return profile.temperature if request.temperature is None else request.temperature


def _parse(model: str, raw: Any, latency_ms: float) -> tuple[ModelResponse, Attempt]:
    message = raw.choices[0].message
    tool_calls = [ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
                  for c in message.tool_calls or []]
    content = message.content or ""
    usage = getattr(raw, "usage", None)
    prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
    completion_tokens = getattr(usage, "completion_tokens", 0) or 0
    # litellm prices every response it can; None means the model is not in its tables.
    cost = float(raw._hidden_params.get("response_cost") or 0.0)
    attempt = Attempt(model=model, latency_ms=latency_ms, prompt_tokens=prompt_tokens,
                      completion_tokens=completion_tokens, cost_usd=cost,
                      response=response_text(content, tool_calls))
    response = ModelResponse(model=model, content=content, tool_calls=tool_calls,
                             prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return response, attempt


def _connection(profile: ModelProfile) -> dict[str, Any]:
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


@functools.cache
def _supports_schema(model: str, has_api_base: bool) -> bool:
    # An OpenAI-compatible server behind api_base is assumed to take json_schema like OpenAI.
    if has_api_base and model.startswith("openai/"):
        return True
    return bool(_litellm().supports_response_schema(model))


def _schema_name(name: str) -> str:
    """OpenAI wants ^[a-zA-Z0-9_-]{1,64}$."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "output"


def _retryable(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in (408, 429) or status >= 500
    return isinstance(exc, (TimeoutError, ConnectionError))


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, or Retry-After in seconds or as an
    HTTP date), if it said."""
    # litellm keeps the provider's headers here; exc.response is often a bare stand-in.
    headers = getattr(exc, "litellm_response_headers", None) or getattr(
        getattr(exc, "response", None), "headers", None) or {}
    headers = {k.lower(): v for k, v in headers.items()}
    if (ms := _float(headers.get("retry-after-ms"))) is not None:
        return max(0.0, ms / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _float(value)
    if seconds is None:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    # litellm's messages already start with their class name; the status code is not in them.
    text = text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}: {text}" if isinstance(status, int) else text


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
