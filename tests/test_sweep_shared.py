"""What the workers of a sweep share: the model response cache (a re-scored sweep asks no model
again) and the model-call limits (the concurrency cap and the rpm pace hold across workers,
not per worker). Against the fake OpenAI server, counting what it receives."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from flowkit.store import RunStore
from flowkit.sweep.limits import SharedLimiter
from flowkit.sweep.run import run_sweep
from flowkit.testing.fakeserver import FakeOpenAIServer
from sweep_support import here  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
PARALLEL = ROOT / "workflows" / "examples" / "parallel.yaml"


def sweep_file(tmp: Path, srv: FakeOpenAIServer, *, cache: str, concurrency: int = 8) -> Path:
    # Every branch awaited (no quorum): a cancelled call would stay in flight at the server.
    firm = tmp / "parallel.yaml"
    firm.write_text(PARALLEL.read_text().replace("join: quorum:2", "join: all"))
    path = tmp / "grid.yaml"
    path.write_text(f"""sweep: grid
firms: [{firm}]
vary:
  models.default.model: [openai/fake]
  models.default.api_base: ["{srv.base_url}"]
  runtime.cache: ["{cache}"]
  runtime.concurrency: [{concurrency}]
symbols: [NVDA, [AAPL, MSFT]]
windows:
  fixed: [{{start: 2024-01-02, end: 2024-01-19}}]
every: 1w
metrics: [sharpe, cumulative_return]
""")
    return path


def test_rescoring_a_sweep_asks_no_model_again(here: Path) -> None:
    with FakeOpenAIServer() as srv:
        path = sweep_file(here, srv, cache="read_write")
        first = run_sweep(path, workers=2)
        assert not first.failed and first.ran == 2
        asked = len(srv.requests)
        assert asked > 0
        again = run_sweep(path, workers=2, force=True)
        assert again.ran == 2 and not again.failed
        assert len(srv.requests) == asked  # every answer came from the cells' cache
    assert [r["metrics"] for r in again.records] == [r["metrics"] for r in first.records]
    assert all(r["cache_seeded"] > 0 for r in again.records)
    store = RunStore.open(here / "sweeps" / "grid" / "sweep.duckdb")
    for r in again.records:  # the runs the sweep database now holds: the re-scored ones
        totals = store.call_totals(r["run_id"])
        assert totals.calls > 0 and totals.cached == totals.calls and totals.cost_usd == 0


def test_the_concurrency_cap_holds_across_workers(here: Path) -> None:
    # Three analysts in parallel per decision, two cells at once, a cap of 2: unshared, the
    # server would see up to 4 calls at once.
    with FakeOpenAIServer(latency_ms=150) as srv:
        result = run_sweep(sweep_file(here, srv, cache="off", concurrency=2), workers=2)
        assert not result.failed
        assert len(srv.requests) >= 12
        assert srv.max_in_flight == 2


def test_shared_limiters_in_one_folder_act_as_one(tmp_path: Path) -> None:
    """Two limiters on one folder (as two workers hold): at most `concurrency` slots between
    them, and one rpm schedule, not one each."""
    a, b = SharedLimiter(tmp_path, concurrency=3), SharedLimiter(tmp_path, concurrency=3)
    steps: list[int] = []  # +1 entering a slot, -1 leaving it

    async def call(limiter: SharedLimiter) -> None:
        async with limiter.acquire("m"):
            steps.append(1)
            await asyncio.sleep(0.02)
            steps.append(-1)

    async def main() -> None:
        await asyncio.gather(*(call(x) for x in (a, b) * 6))

    asyncio.run(main())
    assert max(itertools.accumulate(steps)) == 3

    async def paced() -> None:
        await asyncio.gather(*(x._pace("m", 0.05) for x in (a, b, a, b)))

    started = time.time()
    asyncio.run(paced())
    [pace] = tmp_path.glob("pace-*")
    # Four reservations on one schedule: the next free slot is four intervals on.
    assert float(pace.read_text()) >= started + 4 * 0.05 - 1e-6
