"""Event log throughput: append cost, commit rate, one-row flush latency, and sustained
logging with the writer running.

    python bench/store_throughput.py
"""

from __future__ import annotations

import gc
import statistics
import time
from datetime import datetime

from flowkit.store import EventLog

T0 = datetime(2024, 1, 2, 21, 0)


def step_row(i: int) -> dict:
    """A typical steps row: a dozen scalar columns and a small output dict."""
    return {"run_id": "bench", "seq": i, "step_id": "research_debate/r2/bull", "symbol": "AAPL",
            "as_of": T0, "agent": "bull", "role": "bull_researcher", "pattern": "agent", "round": 2,
            "duration_ms": 12.5, "status": "ok", "output": {"stance": "bull", "confidence": 0.7}}


def append_rate(log: EventLog, rows: list[dict], clock=time.perf_counter) -> float:
    started = clock()
    for row in rows:
        log.append("steps", row)
    rate = len(rows) / (clock() - started)
    log.flush()  # as the writer would: the buffer never holds more than max_buffer_rows
    return rate


def append_cost(tmp_path):
    """append() only validates and buffers: the target is >= 200k rows/s (< 5 us a row).
    Measured in this thread's CPU time with the cyclic GC paused (its cost depends on the whole
    program's heap, not on append); even so a shared machine swings it by +-30%, so the
    assertion only catches a 2x regression."""
    rows = [step_row(i) for i in range(20_000)]
    with EventLog(tmp_path / "perf.duckdb", flush_interval=3600, max_buffer_rows=10**9) as log:
        gc.disable()
        try:
            best = max(append_rate(log, rows, time.thread_time) for _ in range(5))
        finally:
            gc.enable()
        wall = max(append_rate(log, rows) for _ in range(3))
    print(f"append: {best:,.0f} rows/s of CPU ({1e6 / best:.2f} us/row); wall clock {wall:,.0f} rows/s")


def commit_throughput(tmp_path):
    rows = [step_row(i) for i in range(100_000)]
    with EventLog(tmp_path / "perf.duckdb", flush_interval=3600, max_buffer_rows=10**9) as log:
        for row in rows:
            log.append("steps", row)
        started = time.perf_counter()
        log.flush()
        commit_rate = len(rows) / (time.perf_counter() - started)
        latencies = []
        for i in range(20):
            log.append("steps", step_row(i))
            started = time.perf_counter()
            log.flush()
            latencies.append(time.perf_counter() - started)
        assert log.query("SELECT count(*) FROM steps") == [(100_020,)]
    print(f"commit: {commit_rate:,.0f} rows/s in one flush; one-row flush (attach, insert, "
          f"commit, detach): median {statistics.median(latencies) * 1e3:.1f} ms, "
          f"max {max(latencies) * 1e3:.1f} ms")


def sustained(tmp_path):
    """Appends at full speed for a few seconds with the writer flushing in the background."""
    rows = [step_row(i) | {"input": "rendered prompt " * 30} for i in range(200_000)]
    with EventLog(tmp_path / "perf.duckdb") as log:
        started = time.perf_counter()
        rate = append_rate(log, rows)
        log.flush()
        total = len(rows) / (time.perf_counter() - started)
        assert log.query("SELECT count(*) FROM steps") == [(len(rows),)]
    print(f"sustained, rows with a 480-character prompt: append {rate:,.0f} rows/s while the writer "
          f"runs; appended and committed {total:,.0f} rows/s")


if __name__ == "__main__":
    import tempfile
    from pathlib import Path

    for bench in (append_cost, commit_throughput, sustained):
        with tempfile.TemporaryDirectory() as tmp:
            bench(Path(tmp))
