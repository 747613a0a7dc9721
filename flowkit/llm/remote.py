"""A remote model behind the ChatModel interface, with retries, fallbacks and accounting.

Each profile gets `retries` retries (tenacity: exponential backoff with jitter, or the server's
Retry-After) on what `faults.retryable` allows (408, 409, 429, 5xx, timeouts, lost connections,
empty answers); other errors skip straight to the next fallback profile. Each attempt has a total
deadline (twice the profile's timeout), so a slow drip cannot outlive it. A profile whose calls failed
`breaker_failures` times in a row is skipped for `breaker_cooldown` seconds while a fallback
exists (circuit breaker). The structured-output mode is negotiated per endpoint
(`flowkit.llm.structured`). Every try, failed or not, is an Attempt on the response (or on the
ModelError when all fail, or on the CancelledError when the call is cancelled, the try in flight
marked so); a response's tokens and cost are its attempts' sums, unusable-but-billed ones included.
How an attempt travels is its profile's Transport (`flowkit.llm.transport`): this policy is the
same whichever serves it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from contextlib import nullcontext
from typing import Any, AsyncContextManager, Sequence

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from flowkit import secrets
from flowkit.errors import ConfigError, ModelError
from flowkit.llm import faults, structured
from flowkit.llm.base import Attempt, ModelRequest, ModelResponse, billed
from flowkit.llm.cache import request_params, response_text
from flowkit.llm.limits import Limiter
from flowkit.llm.transport import (Completion, Transport, connection, supports_schema,
                                   transport_for, within)
from flowkit.spec.models import ModelProfile

log = logging.getLogger("flowkit.llm")
DEADLINE_FACTOR = 2  # one attempt's total deadline, in multiples of the profile's timeout


class RemoteModel:
    """A ChatModel for `profile`, falling back to `fallbacks` in order."""

    def __init__(self, profile: ModelProfile, fallbacks: Sequence[ModelProfile] = (), *,
                 limiter: Limiter | None = None, backoff: float = 1.0, max_backoff: float = 30.0,
                 retry_after_cap: float = 30.0, breaker_failures: int = 3,
                 breaker_cooldown: float = 60.0):
        self.name = profile.model
        self.profile = profile
        self.profiles = [profile, *fallbacks]
        self.limiter = limiter
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.retry_after_cap = retry_after_cap
        self.breaker_failures = breaker_failures
        self.breaker_cooldown = breaker_cooldown
        self.modes: dict[str, str] = {}  # endpoint -> the structured-output mode it took
        self._failures: dict[str, int] = {}     # endpoint -> failed calls in a row
        self._open_until: dict[str, float] = {}  # endpoint -> monotonic end of its cool-down
        self._transports: dict[str, Transport] = {}  # endpoint -> how its attempts travel
        for p in self.profiles:  # whatever its name, the variable holds a key: mask its value
            if p.api_key_env:
                secrets.remember_env(p.api_key_env)

    def cache_params(self, request: ModelRequest) -> dict[str, Any]:
        """What the cache keys on besides model and messages: profile defaults resolved."""
        return {**request_params(request), "temperature": self._temperature(self.profile, request),
                "max_tokens": request.max_tokens or self.profile.max_tokens}

    async def complete(self, request: ModelRequest) -> ModelResponse:
        attempts: list[Attempt] = []
        try:
            return await self._complete(request, attempts)
        except asyncio.CancelledError as exc:
            exc.attempts = attempts  # type: ignore[attr-defined]  # the caller logs them
            raise

    async def _complete(self, request: ModelRequest, attempts: list[Attempt]) -> ModelResponse:
        started = time.perf_counter()
        for i, profile in enumerate(self.profiles):
            endpoint = _endpoint(profile)
            if i < len(self.profiles) - 1 and self._open_until.get(endpoint, 0) > time.monotonic():
                continue  # circuit open: a primary that keeps failing waits out its cool-down
            try:
                response = await self._with_retries(profile, request, attempts)
            except ConfigError:  # a missing key is the user's to fix, not a fault to fall back on
                raise
            except Exception:  # recorded in attempts; the next profile gets its turn
                self._trip(endpoint)
                continue
            self._failures.pop(endpoint, None)
            response.attempts = attempts
            response.prompt_tokens, response.completion_tokens, response.cost_usd = \
                billed(attempts)
            response.latency_ms = _ms(started)
            return response
        last = attempts[-1].error if attempts else "every model is cooling down"
        raise ModelError(f"agent {request.agent!r}: model call failed after {len(attempts)} "
                         f"attempts (models: {', '.join(p.model for p in self.profiles)}); "
                         f"last error: {last}", attempts=attempts)

    async def aclose(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            await transport.aclose()

    def _transport(self, profile: ModelProfile) -> Transport:
        endpoint = _endpoint(profile)
        transport = self._transports.get(endpoint)
        if transport is None:
            transport = self._transports[endpoint] = transport_for(profile)
            prepare = getattr(transport, "prepare", None)
            if prepare is not None:  # a slow first import, off the clock of any deadline
                prepare()
        return transport

    def _trip(self, endpoint: str) -> None:
        failures = self._failures.get(endpoint, 0) + 1
        self._failures[endpoint] = failures
        if failures >= self.breaker_failures:
            self._open_until[endpoint] = time.monotonic() + self.breaker_cooldown
            self._failures[endpoint] = 0

    async def _with_retries(self, profile: ModelProfile, request: ModelRequest,
                            attempts: list[Attempt]) -> ModelResponse:
        """The first try goes straight out; tenacity (built per call, ~0.1 ms) only steps in
        after a retryable failure, which keeps the common path cheap."""
        try:
            return await self._negotiate(profile, request, attempts)
        except Exception as exc:
            if not profile.retries or not faults.retryable(exc):
                raise
            first = exc
        retrying = AsyncRetrying(stop=stop_after_attempt(profile.retries), wait=self._wait,
                                 retry=retry_if_exception(faults.retryable), reraise=True)
        await asyncio.sleep(self._delay(first, 1))
        return await retrying(self._negotiate, profile, request, attempts)

    async def _negotiate(self, profile: ModelProfile, request: ModelRequest,
                         attempts: list[Attempt]) -> ModelResponse:
        """One try; if the endpoint rejects the structured-output mode, the next mode at once
        (not a retry), remembered for the rest of the run."""
        endpoint = _endpoint(profile)
        while True:
            mode = self._mode(profile, request)
            try:
                return await self._attempt(profile, request, mode, attempts)
            except Exception as exc:
                fallback = structured.next_mode(mode)
                if profile.structured_output != "auto" or fallback is None \
                        or not structured.rejects_mode(exc, mode):
                    raise
                attempts[-1].error = f"{attempts[-1].error} [{mode} refused: using {fallback}]"
                if self.modes.get(endpoint) == fallback:
                    continue  # a concurrent call learnt it already and said so
                self.modes[endpoint] = fallback
                log.warning("%s at %s refused structured output %s; using %s for this run",
                            profile.model, profile.api_base or "its provider", mode, fallback)

    def _mode(self, profile: ModelProfile, request: ModelRequest) -> str | None:
        if request.output_schema is None:
            return None
        if profile.structured_output != "auto":
            return profile.structured_output
        endpoint = _endpoint(profile)
        if endpoint not in self.modes:
            self.modes[endpoint] = structured.auto_mode(
                profile.model, bool(profile.api_base), supports_schema)
        return self.modes[endpoint]

    async def _attempt(self, profile: ModelProfile, request: ModelRequest, mode: str | None,
                       attempts: list[Attempt]) -> ModelResponse:
        transport = self._transport(profile)
        kwargs = self._kwargs(profile, request, mode)
        slot: AsyncContextManager[Any] = (
            self.limiter.acquire(profile.model, profile.rpm) if self.limiter else nullcontext())
        async with slot:
            started = time.perf_counter()
            try:
                # The client's timeout restarts with every byte: a slow drip would outlive it.
                answer = await within(transport.send(kwargs), DEADLINE_FACTOR * kwargs["timeout"])
                response, attempt = _parse(profile.model, answer, _ms(started), mode,
                                           request.output_name)
            except asyncio.CancelledError:  # cancelled from outside: the try still gets its row
                attempts.append(Attempt(model=profile.model, latency_ms=_ms(started),
                                        error="cancelled before an answer",
                                        structured_output=mode))
                raise
            except Exception as exc:
                if isinstance(exc, asyncio.TimeoutError):
                    exc = TimeoutError(f"no complete answer within "
                                       f"{DEADLINE_FACTOR * kwargs['timeout']:g} s")
                # a provider's error may echo the key: describe() masks it
                attempts.append(Attempt(model=profile.model, latency_ms=_ms(started),
                                        prompt_tokens=getattr(exc, "prompt_tokens", 0),
                                        completion_tokens=getattr(exc, "completion_tokens", 0),
                                        cost_usd=getattr(exc, "cost_usd", 0.0),
                                        error=faults.describe(exc, profile.api_base),
                                        structured_output=mode))
                raise exc from None
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

    def _kwargs(self, profile: ModelProfile, request: ModelRequest,
                mode: str | None = None) -> dict[str, Any]:
        """The completion arguments of one attempt; `mode` defaults to the negotiated one."""
        mode = mode or self._mode(profile, request)
        kwargs: dict[str, Any] = {
            "model": profile.model,
            "messages": request.messages,
            "temperature": self._temperature(profile, request),
            "max_tokens": request.max_tokens or profile.max_tokens,
            "timeout": request.timeout or profile.timeout,
            "max_retries": 0,     # the SDK's own retries would multiply tenacity's
            "drop_params": True,  # a provider without seed/response_format support still answers
            **connection(profile),
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.tools:
            kwargs["tools"] = request.tools
        if mode is not None and request.output_schema is not None:
            kwargs.update(structured.request_fields(mode, request.output_name,
                                                    request.output_schema, request.tools,
                                                    bool(profile.api_base)))
        return kwargs

    @staticmethod
    def _temperature(profile: ModelProfile, request: ModelRequest) -> float:
        return profile.temperature if request.temperature is None else request.temperature


def _parse(model: str, answer: Completion, latency_ms: float, mode: str | None,
           output_name: str) -> tuple[ModelResponse, Attempt]:
    tool_calls, content = answer.tool_calls, answer.content
    if mode == "tools":  # the answer came as a call of the answer tool: it is the content
        name = structured.schema_name(output_name)
        for call in tool_calls:
            if call.name == name:
                content = call.arguments
        tool_calls = [c for c in tool_calls if c.name != name]
    attempt = Attempt(model=model, latency_ms=latency_ms, prompt_tokens=answer.prompt_tokens,
                      completion_tokens=answer.completion_tokens, cost_usd=answer.cost_usd,
                      response=response_text(content, tool_calls), structured_output=mode)
    response = ModelResponse(model=model, content=content, tool_calls=tool_calls,
                             prompt_tokens=answer.prompt_tokens,
                             completion_tokens=answer.completion_tokens)
    return response, attempt


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, or Retry-After in seconds or as an
    HTTP date), if it said."""
    # litellm keeps the provider's headers here; exc.response is often a bare stand-in.
    headers = getattr(exc, "litellm_response_headers", None) or getattr(exc, "headers", None) \
        or getattr(getattr(exc, "response", None), "headers", None) or {}
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


def _endpoint(profile: ModelProfile) -> str:
    return f"{profile.model}@{profile.api_base or ''}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
