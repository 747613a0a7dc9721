"""The one small interface every model sits behind: litellm, the offline model, the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol


@dataclass
class ModelRequest:
    agent: str                      # agent id in the workflow
    role: str                       # role name (built-in or user-defined)
    messages: list[dict[str, Any]]  # OpenAI-style chat messages
    output_name: str                # name of the output schema
    output_schema: dict[str, Any] | None = None   # JSON Schema the answer must satisfy
    tools: list[dict[str, Any]] | None = None     # OpenAI-style tool specs
    context: Mapping[str, Any] = field(default_factory=dict)  # structured state; never sent over the network
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    seed: int | None = None


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model produced it


@dataclass
class Attempt:
    """One try at a model call; every attempt becomes a model_calls row."""

    model: str
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    response: str | None = None
    error: str | None = None
    cached: bool = False


@dataclass
class ModelResponse:
    model: str                      # the model id that answered (after fallbacks)
    content: str                    # text (JSON for structured outputs)
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    cached: bool = False
    cache_key: str | None = None
    attempts: list[Attempt] = field(default_factory=list)  # failed tries before this answer, then this one


class ChatModel(Protocol):
    """Anything that answers a ModelRequest."""

    name: str

    async def complete(self, request: ModelRequest) -> ModelResponse: ...

    async def aclose(self) -> None: ...
