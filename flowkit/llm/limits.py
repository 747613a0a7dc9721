"""Run-wide limits on model calls: how many in flight, how fast per model, how much spent."""

from __future__ import annotations

import asyncio
import threading
import time

from flowkit.errors import BudgetExceeded
from flowkit.llm.base import ModelResponse


class Limiter:
    """A global cap on concurrent calls plus a requests-per-minute pace per model.

    The pace is a virtual-time schedule (GCRA, the exact form of a token bucket): each caller
    reserves the next free slot at once and sleeps until it, so callers are served in arrival
    order and no lock is held while waiting. `burst` slots may be used back to back.
    """

    def __init__(self, concurrency: int = 8, burst: int = 1):
        self._slots = asyncio.Semaphore(concurrency)
        self._burst = burst
        self._next_free: dict[str, float] = {}  # model -> theoretical arrival time of next call

    def acquire(self, model: str, rpm: int | None = None) -> "_Slot":
        """`async with` it: one concurrency slot for `model`, after its rpm pace if it has one."""
        return _Slot(self, model, rpm)

    async def _pace(self, model: str, interval: float) -> None:
        now = time.monotonic()
        due = max(self._next_free.get(model, now), now)
        self._next_free[model] = due + interval
        wait = due - (self._burst - 1) * interval - now
        if wait > 0:
            await asyncio.sleep(wait)


class _Slot:
    """A plain async context manager: cheaper per call than @asynccontextmanager."""

    __slots__ = ("limiter", "model", "rpm")

    def __init__(self, limiter: Limiter, model: str, rpm: int | None):
        self.limiter, self.model, self.rpm = limiter, model, rpm

    async def __aenter__(self) -> None:
        if self.rpm:
            await self.limiter._pace(self.model, 60.0 / self.rpm)
        await self.limiter._slots.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.limiter._slots.release()


class Budget:
    """Cost and token ceilings for a run. `charge` is cheap and safe from any thread or task.

    Cached responses cost nothing and are not charged: a replay never hits a budget.
    """

    def __init__(self, max_cost_usd: float | None = None, max_tokens: int | None = None):
        self.max_cost_usd = max_cost_usd
        self.max_tokens = max_tokens
        self.cost_usd = 0.0
        self.tokens = 0
        self._lock = threading.Lock()

    def charge(self, response: ModelResponse) -> None:
        """Add a response's spend; raise BudgetExceeded once a ceiling is passed."""
        if not response.cached:
            self.spend(response.prompt_tokens + response.completion_tokens, response.cost_usd)
            self.check()

    def spend(self, tokens: int, cost_usd: float) -> None:
        """Add spend without checking the ceilings (`check` does)."""
        with self._lock:
            self.cost_usd += cost_usd
            self.tokens += tokens

    def check(self) -> None:
        """Raise BudgetExceeded if spend has passed a ceiling (call before starting work)."""
        if self.max_cost_usd is not None and self.cost_usd > self.max_cost_usd:
            raise BudgetExceeded(f"cost budget exceeded: ${self.cost_usd:.4f} spent, "
                                 f"limit ${self.max_cost_usd:.4f}")
        if self.max_tokens is not None and self.tokens > self.max_tokens:
            raise BudgetExceeded(f"token budget exceeded: {self.tokens} tokens used, "
                                 f"limit {self.max_tokens}")
