"""The one small interface every model sits behind (`ChatModel`: litellm, the offline model, the
cache) and the contract of the providers that build them (`ModelProvider`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from flowkit.llm.limits import Limiter
    from flowkit.spec.models import ModelProfile


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
    # Whether an answer is usable (validates, possibly after repair). Only accepted answers are
    # served from the cache; never sent, never part of the cache key.
    accept: Callable[[ModelResponse], bool] | None = field(default=None, repr=False, compare=False)


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
    structured_output: str | None = None  # how the typed output was asked for (structured.MODES)


def billed(attempts: Sequence[Attempt]) -> tuple[int, int, float]:
    """Prompt tokens, completion tokens and dollars the provider billed for `attempts`: failed
    tries included (an empty answer with usage, a refusal), answers from the cache not."""
    fresh = [a for a in attempts if not a.cached]
    return (sum(a.prompt_tokens for a in fresh), sum(a.completion_tokens for a in fresh),
            sum(a.cost_usd for a in fresh))


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


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers a ModelRequest."""

    name: str

    async def complete(self, request: ModelRequest) -> ModelResponse: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ModelProvider(Protocol):
    """Builds the ChatModel for a model profile. Registered under a name in the
    `flowkit.providers` entry point group, it serves the model ids `<name>` and `<name>/<model>`;
    every other id goes to `litellm`.

    Contract (checked by `flowkit.testing.conformance.check_model_provider`): `create` is cheap
    and does no I/O (connections open on the first call); the model answers a ModelRequest whose
    `output_schema` is set with JSON text satisfying it; `aclose` may be called more than once.
    `cacheable` says whether answers are worth caching by content hash (False for a model that
    is deterministic and cheaper to recompute than to look up)."""

    cacheable: bool

    def create(self, profile: ModelProfile, fallbacks: Sequence[ModelProfile],
               limiter: Limiter) -> ChatModel: ...
