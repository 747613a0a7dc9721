"""What the framework costs per model call, measured against the fake server at 0 ms latency:
the same request sent through litellm.acompletion directly and through flowkit's RemoteModel
(retries, accounting, parsing), interleaved so machine drift hits both alike; the server's own
handling time is subtracted. Also the cost of a response-cache hit.

    python bench/llm_overhead.py
"""

from __future__ import annotations

import asyncio
import statistics
import time

from flowkit.llm.base import ModelRequest
from flowkit.llm.cache import CachedModel, MemoryCacheStore
from flowkit.testing.fakeserver import FakeOpenAIServer
from flowkit.llm.remote import RemoteModel
from flowkit.llm.transport import _litellm
from flowkit.spec.models import ModelProfile

CALLS = 150
SCHEMA = {"type": "object", "properties": {
    "action": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "reasoning": {"type": "string"}}, "required": ["action", "confidence", "reasoning"]}


async def measure() -> None:
    litellm = _litellm()
    request = ModelRequest(agent="trader", role="trader", output_name="trade_proposal",
                           output_schema=SCHEMA,
                           messages=[{"role": "system", "content": "You are a trader. " * 50},
                                     {"role": "user", "content": "Decide on AAPL."}])
    async with FakeOpenAIServer(latency_ms=0) as srv:
        model = RemoteModel(ModelProfile(model="openai/fake", api_base=srv.base_url))
        cached = CachedModel(model, MemoryCacheStore(), "read_write")
        kwargs = model._kwargs(model.profile, request)  # the very same HTTP request, sent raw

        async def timed(call) -> float:
            """Wall ms of one call minus the server's own time for it."""
            served = len(srv.requests)
            started = time.perf_counter()
            await call()
            wall = (time.perf_counter() - started) * 1000
            return wall - sum(r.handled_ms for r in srv.requests[served:])

        for _ in range(20):  # warm connections, lazy imports, caches
            await litellm.acompletion(**kwargs)
            await model.complete(request)
        raw, ours = [], []
        for _ in range(CALLS):  # interleaved so drift hits both alike
            raw.append(await timed(lambda: litellm.acompletion(**kwargs)))
            ours.append(await timed(lambda: model.complete(request)))
        await cached.complete(request)
        hits = [await timed(lambda: cached.complete(request)) for _ in range(CALLS)]
        await model.aclose()

    litellm_ms, flowkit_ms = statistics.median(raw), statistics.median(ours)
    hit_ms = statistics.median(hits)
    print(f"\nper call, median of {CALLS}, server time excluded: "
          f"litellm.acompletion {litellm_ms:.2f} ms; RemoteModel.complete (lean transport) "
          f"{flowkit_ms:.2f} ms "
          f"(difference {flowkit_ms - litellm_ms:+.2f} ms); cache hit {hit_ms:.3f} ms")


if __name__ == "__main__":
    asyncio.run(measure())
