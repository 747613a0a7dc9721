"""Test chat models: answer like the offline model (or from a script) and record what each
agent saw, so a test can assert who saw whose output.

`EagerModel` never yields to the event loop (like the offline model or a cache hit: the case
where concurrent siblings could otherwise see each other's writes); `JitterModel` waits a
seeded random moment before every answer, so concurrent calls finish in shuffled orders;
`RecordingModel` waits the delays it is given. A pattern whose prompts differ between them
depends on timing."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from flowkit.errors import ModelError
from flowkit.llm.base import ModelRequest, ModelResponse
from flowkit.llm.offline import OfflineModel


@dataclass
class Call:
    agent: str
    messages: list[dict[str, Any]]
    outputs_seen: list[str]         # agent ids in the context's `outputs` when the model answered
    transcript_seen: list[tuple[str, int]]
    started: float
    finished: float


@dataclass
class RecordingModel:
    """A ChatModel that answers like the offline model (or from a script), optionally after a
    delay or with an error, and records every request it got.

    delays: agent -> seconds to sleep before answering (an await, like a real HTTP call).
    fail: agent ids whose calls raise ModelError (after the delay).
    script: agent -> list of answers (dicts, sent as JSON, or callables of the request) used
    one per call, before offline.
    """

    delays: dict[str, float] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)
    script: dict[str, list[Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    name: str = "recording"
    _offline: OfflineModel = field(default_factory=OfflineModel)

    async def wait(self, request: ModelRequest) -> None:
        await asyncio.sleep(self.delays.get(request.agent, 0.0))

    async def complete(self, request: ModelRequest) -> ModelResponse:
        started = time.monotonic()
        await self.wait(request)
        ctx = request.context
        call = Call(request.agent, request.messages, sorted(ctx.get("outputs", {})),
                    [(t["agent"], t["round"]) for t in ctx.get("transcript", [])], started, 0.0)
        self.calls.append(call)
        call.finished = time.monotonic()
        if request.agent in self.fail:
            raise ModelError(f"scripted failure for {request.agent}")
        queue = self.script.get(request.agent)
        if queue:
            answer = queue.pop(0)
            content = answer(request) if callable(answer) else answer
            text = content if isinstance(content, str) else json.dumps(content)
            return ModelResponse(model=self.name, content=text, prompt_tokens=1,
                                 completion_tokens=1)
        response = await self._offline.complete(request)  # never yields
        response.model = self.name
        return response

    async def aclose(self) -> None:
        return None

    def by_agent(self, agent: str) -> list[Call]:
        return [c for c in self.calls if c.agent == agent]

    def seen(self) -> dict[str, list[list[str]]]:
        """agent -> the outputs each of its calls saw, in call order."""
        out: dict[str, list[list[str]]] = {}
        for c in self.calls:
            out.setdefault(c.agent, []).append(c.outputs_seen)
        return out


@dataclass
class EagerModel(RecordingModel):
    """Answers without ever yielding to the event loop."""

    name: str = "eager"

    def __post_init__(self) -> None:
        if self.delays:
            raise ValueError("EagerModel never waits; use RecordingModel for delays")

    async def wait(self, request: ModelRequest) -> None:
        return None


@dataclass
class JitterModel(RecordingModel):
    """Waits a random 0..`max_delay` seconds before each answer, from `seed`."""

    seed: int = 0
    max_delay: float = 0.005
    name: str = "jitter"

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def wait(self, request: ModelRequest) -> None:
        await asyncio.sleep(self._rng.uniform(0.0, self.max_delay))
