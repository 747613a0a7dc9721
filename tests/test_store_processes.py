"""EventLog across real processes: kill -9 durability, readers during writes, a held lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from flowkit.errors import StoreError
from flowkit.store import EventLog, open_reader

ROWS_PER_ROUND = 300

# Appends a round of steps and an order, then checkpoints, forever; prints each checkpoint's seq
# once checkpoint() has returned. Nothing is committed except by checkpoint().
CHECKPOINTING_CHILD = f"""
import sys
from datetime import datetime, timedelta
from flowkit.store import EventLog

log = EventLog(sys.argv[1], flush_interval=3600, max_buffer_rows=10**9)
t0 = datetime(2024, 1, 1)
k = 0
while True:
    as_of = t0 + timedelta(days=k)
    for i in range({ROWS_PER_ROUND}):
        log.append("steps", {{"run_id": "r", "seq": k * {ROWS_PER_ROUND} + i, "round": k,
                             "as_of": as_of, "input": "prompt " * 40}})
    log.append("orders", {{"run_id": "r", "order_id": f"o{{k}}", "as_of": as_of}})
    log.checkpoint("r", k, as_of, {{"round": k, "cash": 1000.0 - k}})
    print(k, flush=True)
    k += 1
"""

# Logs continuously for argv[2] seconds with frequent flushes, then prints how many rows.
WRITING_CHILD = """
import sys, time
from flowkit.store import EventLog

log = EventLog(sys.argv[1], flush_interval=0.05)
print("ready", flush=True)
n, end = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    for _ in range(50):
        log.append("steps", {"run_id": "w", "seq": n, "input": "prompt " * 20})
        n += 1
    time.sleep(0.002)
log.close()
print(n, flush=True)
"""

# Holds the file open (as a DuckDB CLI or notebook would) for argv[2] seconds.
HOLDING_CHILD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def spawn(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("delay_ms", [0, 1, 3, 7, 15])
def test_kill_9_leaves_exactly_the_checkpointed_rows(tmp_path, delay_ms):
    path = tmp_path / "killed.duckdb"
    child = spawn(CHECKPOINTING_CHILD, path)
    try:
        while True:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            if int(line) >= 3:
                break
        time.sleep(delay_ms / 1000)  # land somewhere inside the next round or its commit
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    confirmed = int(line) + sum(1 for _ in child.stdout)  # checkpoints reported as returned

    with open_reader(path) as con:  # the file opens (replaying its WAL if the kill left one)
        checkpoints = con.execute("SELECT seq, state FROM checkpoints ORDER BY seq").fetchall()
        last = checkpoints[-1][0]
        assert [seq for seq, _ in checkpoints] == list(range(last + 1))
        assert [json.loads(state)["round"] for _, state in checkpoints] == list(range(last + 1))
        assert last >= confirmed - 1  # every checkpoint that returned is durable
        per_round = con.execute("SELECT round, count(*) FROM steps GROUP BY round ORDER BY round").fetchall()
        assert per_round == [(k, ROWS_PER_ROUND) for k in range(last + 1)]  # nothing partial
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (last + 1,)

    with EventLog(path) as log:  # and a writer can resume on it
        assert log.discard_after("r", log.query("SELECT max(as_of) FROM checkpoints")[0][0]) == 0
        log.append("steps", {"run_id": "r", "round": last + 1})
        assert log.query("SELECT count(*) FROM steps") == [((last + 1) * ROWS_PER_ROUND + 1,)]


def test_readers_succeed_while_another_process_writes(tmp_path):
    path = tmp_path / "busy.duckdb"
    writer = spawn(WRITING_CHILD, path, 3)
    assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
    counts, waits = [], []
    while writer.poll() is None:
        started = time.perf_counter()
        with open_reader(path, timeout=15) as con:
            waits.append(time.perf_counter() - started)
            counts.append(con.execute("SELECT count(*) FROM steps").fetchone()[0])
        time.sleep(0.01)
    written = int(writer.stdout.readline())
    assert writer.returncode == 0, writer.stderr.read()
    assert len(counts) >= 10 and counts == sorted(counts)  # every read succeeded, none went back
    with open_reader(path) as con:
        assert con.execute("SELECT count(*), count(DISTINCT seq) FROM steps").fetchone() == (written, written)
    waits.sort()
    print(f"\n{len(waits)} reads while writing {written} rows: open wait median "
          f"{waits[len(waits) // 2] * 1e3:.1f} ms, max {waits[-1] * 1e3:.1f} ms")


def test_a_held_lock_delays_flush_but_loses_nothing(tmp_path):
    path = tmp_path / "held.duckdb"
    with EventLog(path, lock_timeout=0.3) as log:
        log.append("steps", {"run_id": "r", "seq": 1})
        log.flush()
        holder = spawn(HOLDING_CHILD, path, 1.5)
        try:
            assert holder.stdout.readline().strip() == "held", holder.stderr.read()
            log.append("steps", {"run_id": "r", "seq": 2})
            started = time.monotonic()
            with pytest.raises(StoreError, match="busy .*Conflicting lock"):
                log.flush()
            assert time.monotonic() - started < 1.2
        finally:
            holder.wait()
        log.flush()  # the holder is gone: the kept row goes in
        assert log.query("SELECT seq FROM steps ORDER BY seq") == [(1,), (2,)]


def test_open_reader_gives_up_with_a_clear_message(tmp_path):
    path = tmp_path / "held.duckdb"
    EventLog(path).close()
    holder = spawn(HOLDING_CHILD, path, 2)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        with pytest.raises(StoreError, match=r"busy \(waited 0.2s\).*PID"), open_reader(path, timeout=0.2):
            pass
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(StoreError, match="no event log"), open_reader(tmp_path / "missing.duckdb"):
        pass


def test_rows_appended_before_exit_are_written_without_close(tmp_path):
    path = tmp_path / "atexit.duckdb"
    code = ("import sys; from flowkit.store import EventLog\n"
            "log = EventLog(sys.argv[1], flush_interval=3600)\n"
            "log.append('steps', {'run_id': 'r', 'seq': 1})\n")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    with open_reader(path) as con:
        assert con.execute("SELECT count(*) FROM steps").fetchone() == (1,)
