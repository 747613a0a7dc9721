"""Limiter (concurrency, rpm pacing) and Budget."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from flowkit.errors import BudgetExceeded
from flowkit.llm.base import ModelResponse
from flowkit.llm.limits import Budget, Limiter


async def start_times(limiter: Limiter, calls: list[tuple[str, int | None]],
                      hold: float = 0.0) -> list[tuple[str, float]]:
    """When each call got through, in order of arrival."""
    origin = time.monotonic()
    starts: list[tuple[str, float]] = []

    async def one(label: str, model: str, rpm: int | None) -> None:
        async with limiter.acquire(model, rpm):
            starts.append((label, time.monotonic() - origin))
            await asyncio.sleep(hold)

    await asyncio.gather(*(one(f"{m}{i}", m, rpm) for i, (m, rpm) in enumerate(calls)))
    return starts


async def test_rpm_spacing_is_even_and_fifo() -> None:
    starts = await start_times(Limiter(), [("a", 600)] * 5)  # one per 0.1 s
    assert [label for label, _ in starts] == [f"a{i}" for i in range(5)]
    times = [t for _, t in starts]
    # never early; a late wake-up does not push the schedule back (slots are fixed at arrival)
    assert all(t >= i * 0.1 - 0.005 for i, t in enumerate(times)), times
    assert times[-1] < 0.55


async def test_burst_then_pace() -> None:
    starts = await start_times(Limiter(burst=3), [("a", 600)] * 5)
    times = [t for _, t in starts]
    assert times[2] < 0.05 and times[3] >= 0.095 and times[4] >= 0.195 and times[4] < 0.35


async def test_models_are_paced_independently_and_unpaced_pass() -> None:
    starts = dict(await start_times(Limiter(), [("a", 60), ("b", 60), ("c", None), ("c", None)]))
    assert max(starts.values()) < 0.05  # different models (or no rpm) never wait for each other


async def test_concurrency_cap() -> None:
    limiter = Limiter(concurrency=2)
    in_flight = peak = 0

    async def one() -> None:
        nonlocal in_flight, peak
        async with limiter.acquire("m"):
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1

    await asyncio.gather(*(one() for _ in range(7)))
    assert peak == 2


def response(cost: float = 0.0, tokens: int = 0, cached: bool = False) -> ModelResponse:
    return ModelResponse(model="m", content="{}", prompt_tokens=tokens, completion_tokens=0,
                         cost_usd=cost, cached=cached)


def test_budget_cost() -> None:
    budget = Budget(max_cost_usd=1.0)
    budget.charge(response(cost=0.6))
    budget.charge(response(cost=0.4))  # exactly at the limit is allowed
    with pytest.raises(BudgetExceeded, match="cost budget exceeded"):
        budget.charge(response(cost=0.01))
    with pytest.raises(BudgetExceeded):
        budget.check()  # and it stays exceeded


def test_budget_tokens_and_cached_responses_are_free() -> None:
    budget = Budget(max_tokens=100)
    budget.charge(response(tokens=100))
    budget.charge(response(tokens=5000, cost=9.0, cached=True))
    assert (budget.tokens, budget.cost_usd) == (100, 0.0)
    with pytest.raises(BudgetExceeded, match="token budget exceeded"):
        budget.charge(response(tokens=1))


def test_budget_is_thread_safe() -> None:
    budget = Budget()
    one = response(cost=0.001, tokens=3)

    def spend() -> None:
        for _ in range(2000):
            budget.charge(one)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.tokens == 8 * 2000 * 3
    assert budget.cost_usd == pytest.approx(16.0)
