"""Response cache and replay: any ChatModel wrapped so identical requests are answered from a
store keyed by content hash. `replay` answers only from the store: zero model calls."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from typing import Any, Literal, Protocol

from flowkit.errors import CacheMiss, ModelError
from flowkit.llm.base import Attempt, ChatModel, ModelRequest, ModelResponse, ToolCall

CacheMode = Literal["off", "read_write", "replay"]


def cache_key(model_name: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """sha256 of canonical JSON of everything that shapes the answer."""
    canonical = json.dumps([model_name, messages, params], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def response_text(content: str, tool_calls: list[ToolCall]) -> str:
    """How an answer is logged (model_calls.response): its text, or its tool calls as JSON."""
    return content or json.dumps([asdict(c) for c in tool_calls])


def request_params(request: ModelRequest) -> dict[str, Any]:
    """The request fields besides messages that change what a model answers."""
    return {"output_name": request.output_name, "output_schema": request.output_schema,
            "tools": request.tools, "temperature": request.temperature,
            "max_tokens": request.max_tokens, "seed": request.seed}


class CacheStore(Protocol):
    """Where cached responses live. The DuckDB store implements it on the `model_cache` table.

    get(key): the payload stored under key, or None.
    put(key, model, payload): store a JSON-serialisable payload (overwriting is fine: the same
    key always maps to an equivalent answer).
    """

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, model: str, payload: dict[str, Any]) -> None: ...


class MemoryCacheStore:
    """A dict-backed CacheStore, for tests and single-process runs."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, model: str, payload: dict[str, Any]) -> None:
        self.entries[key] = payload


class CachedModel:
    """Wraps a ChatModel with a CacheStore in mode off | read_write | replay.

    The key covers the inner model's name, the messages and `inner.cache_params(request)` when
    the inner model has it (so profile defaults such as temperature count), else the request's
    own parameters. Every outcome is stored, flagged: answers the request's `accept` refused and
    failed calls are never served to a live run (it asks again), only to a replay, which thus
    reproduces the original run's failures too.
    """

    def __init__(self, inner: ChatModel, store: CacheStore, mode: CacheMode = "read_write"):
        self.inner = inner
        self.store = store
        self.mode = mode
        self.name = inner.name

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if self.mode == "off":
            return await self.inner.complete(request)
        started = time.perf_counter()
        params = getattr(self.inner, "cache_params", request_params)(request)
        key = cache_key(self.name, request.messages, params)
        payload = self.store.get(key)
        # A live run is served only answers that were usable; a replay is served the original
        # run's outcome whatever it was, so it fails, repairs and re-asks exactly as that did.
        if payload is not None and (self.mode == "replay" or payload.get("valid", True)):
            if "failed" in payload:
                raise ModelError(payload["failed"])
            return _from_payload(payload, key, (time.perf_counter() - started) * 1000)
        if self.mode == "replay":
            raise CacheMiss(f"replay: no cached response for agent {request.agent!r} (model "
                            f"{self.name}, key {key[:12]}): its prompt or parameters changed "
                            f"since the original run, or that run stored no answers (--cache off)")
        try:
            response = await self.inner.complete(request)
        except ModelError as exc:
            self.store.put(key, self.name, {"failed": str(exc), "valid": False})
            raise
        response.cache_key = key
        valid = request.accept is None or request.accept(response)
        self.store.put(key, response.model, {**_to_payload(response), "valid": valid})
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _to_payload(response: ModelResponse) -> dict[str, Any]:
    return {"model": response.model, "content": response.content,
            "tool_calls": [asdict(c) for c in response.tool_calls],
            "prompt_tokens": response.prompt_tokens,
            "completion_tokens": response.completion_tokens,
            "cost_usd": response.cost_usd, "latency_ms": response.latency_ms}


def _from_payload(payload: dict[str, Any], key: str, latency_ms: float) -> ModelResponse:
    """A hit: the original answer and token counts, but no cost and the lookup's latency."""
    tool_calls = [ToolCall(**c) for c in payload["tool_calls"]]
    attempt = Attempt(model=payload["model"], latency_ms=latency_ms,
                      prompt_tokens=payload["prompt_tokens"],
                      completion_tokens=payload["completion_tokens"],
                      response=response_text(payload["content"], tool_calls), cached=True)
    return ModelResponse(model=payload["model"], content=payload["content"], tool_calls=tool_calls,
                         prompt_tokens=payload["prompt_tokens"],
                         completion_tokens=payload["completion_tokens"], latency_ms=latency_ms,
                         cached=True, cache_key=key, attempts=[attempt])
