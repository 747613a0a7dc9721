"""A backtest killed with SIGKILL resumes from its last checkpoint with `flowkit resume` and ends
with exactly the orders, fills, equity and steps of a run never interrupted: nothing lost,
nothing done or logged twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_support import rows

ROOT = Path(__file__).resolve().parents[1]
# The TradingAgents firm (debates, reflection lessons carried in the checkpoint) on three
# symbols over ~13 months: long enough that a run takes several seconds and commits a few
# checkpoints (at most one a second), short enough for the default suite.
ARGS = ["workflows/tradingagents.yaml", "--symbol", "AAPL", "--symbol", "MSFT", "--symbol", "NVDA",
        "--start", "2022-06-01", "--end", "2023-06-30", "--quiet"]
SESSIONS = 272  # NYSE sessions in the window
# Kill points by count, never by timing: a checkpoint every EVERY decision times, and the process
# dies (os._exit, as kill -9) right after committing its Nth (see flowkit.store.eventlog).
EVERY = 40
KILLED = 137


def flowkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowkit.cli", *args]


def start(db: Path) -> subprocess.Popen:
    return subprocess.Popen(flowkit("run", *ARGS, "--db", str(db)), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def killed_after(n: int, db: Path, *command: str) -> None:
    """Run `command` (run or resume) so that it dies right after its `n`th checkpoint."""
    env = {**os.environ, "FLOWKIT_CHECKPOINT_EVERY": str(EVERY),
           "FLOWKIT_TEST_KILL_AFTER_CHECKPOINTS": str(n)}
    done = subprocess.run(flowkit(*command, "--db", str(db)), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == KILLED, done.stdout + done.stderr


def decided(db: Path) -> int:
    return rows(db, "SELECT count(DISTINCT as_of) FROM decisions")[0][0]


def resume(db: Path, run_id: str) -> None:
    done = subprocess.run(flowkit("resume", run_id, "--db", str(db), "--quiet"), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def results(db: Path) -> dict[str, list]:
    """Everything a run decided and did, by content: no run ids, no wall-clock times."""
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    q = lambda sql: rows(db, sql, run_id)  # noqa: E731
    return {
        "status": q("SELECT status FROM runs WHERE run_id = ?"),
        "decisions": q("SELECT symbol, as_of, action, size_pct, confidence FROM decisions "
                       "WHERE run_id = ? ORDER BY ALL"),
        "risk_reviews": q("SELECT symbol, as_of, verdict, rule, requested_qty, approved_qty, details "
                          "FROM risk_reviews WHERE run_id = ? ORDER BY ALL"),
        "orders": q("SELECT symbol, as_of, side, quantity, order_type, limit_price, reason, status "
                    "FROM orders WHERE run_id = ? ORDER BY ALL"),
        "fills": q("SELECT symbol, time, side, quantity, price, fee, slippage FROM fills "
                   "WHERE run_id = ? ORDER BY ALL"),
        "portfolio": q("SELECT time, cash, equity, gross_exposure, drawdown, positions FROM portfolio "
                       "WHERE run_id = ? ORDER BY time"),
        "steps": q("SELECT symbol, as_of, step_id, status, output FROM steps WHERE run_id = ? "
                   "ORDER BY ALL"),
        "model_calls": q("SELECT count(*) FROM model_calls WHERE run_id = ? AND superseded IS NOT TRUE"),
        "lessons": q("SELECT symbol, as_of, decided_at, agents, text, outcome_pct FROM lessons "
                     "WHERE run_id = ? ORDER BY ALL"),
        "metrics": q("SELECT strategy, symbol, metrics FROM metrics WHERE run_id = ? ORDER BY ALL"),
        "risk_state": q("SELECT time, equity, drawdown, daily_return, cvar, reference_cvar, "
                        "risk_averse, halted, reason FROM risk_state WHERE run_id = ? ORDER BY time"),
    }


def check_logged_once(db: Path) -> None:
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    for what, sql in {
        "order ids": "SELECT order_id FROM orders WHERE run_id = ? GROUP BY 1 HAVING count(*) > 1",
        "fill ids": "SELECT fill_id FROM fills WHERE run_id = ? GROUP BY 1 HAVING count(*) > 1",
        "steps": "SELECT symbol, as_of, step_id FROM steps WHERE run_id = ? GROUP BY ALL "
                 "HAVING count(*) > 1",
        "step numbers": "SELECT seq FROM steps WHERE run_id = ? GROUP BY 1 HAVING count(*) > 1",
        "decisions": "SELECT symbol, as_of FROM decisions WHERE run_id = ? GROUP BY ALL "
                     "HAVING count(*) > 1",
        "risk reviews": "SELECT symbol, as_of FROM risk_reviews WHERE run_id = ? GROUP BY ALL "
                        "HAVING count(*) > 1",
        "snapshots": "SELECT time FROM portfolio WHERE run_id = ? GROUP BY 1 HAVING count(*) > 1",
        "risk states": "SELECT time FROM risk_state WHERE run_id = ? GROUP BY 1 HAVING count(*) > 1",
        "metrics": "SELECT strategy, symbol FROM metrics WHERE run_id = ? GROUP BY ALL "
                   "HAVING count(*) > 1",
        "lessons": "SELECT symbol, decided_at FROM lessons WHERE run_id = ? GROUP BY ALL "
                   "HAVING count(*) > 1",
        "model calls": "SELECT call_id, as_of, symbol FROM model_calls WHERE run_id = ? AND superseded IS NOT TRUE GROUP BY ALL "
                       "HAVING count(*) > 1",
    }.items():
        assert rows(db, sql, run_id) == [], f"{what} logged twice"


def assert_same_as_uninterrupted(resumed: Path, full: Path) -> None:
    a, b = results(resumed), results(full)
    assert a["status"] == [("completed",)]
    for table in b:
        assert a[table] == b[table], f"{table}: the resumed run differs from the uninterrupted one"
    check_logged_once(resumed)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same firm and window never interrupted, started in the background."""
    db = tmp_path_factory.mktemp("full") / "log.duckdb"
    proc = start(db)
    yield lambda: (proc.wait(timeout=300), db)[1]
    if proc.poll() is None:
        proc.kill()


def killed_run_resumes(tmp_path: Path, uninterrupted, n: int) -> None:
    db = tmp_path / "log.duckdb"
    killed_after(n, db, "run", *ARGS)
    (run_id, status), = rows(db, "SELECT run_id, status FROM runs")
    assert status == "running"  # killed: nobody marked it finished
    assert decided(db) >= n * EVERY and rows(db, "SELECT max(seq) FROM checkpoints")[0][0] == n * EVERY - 1
    resume(db, run_id)
    assert_same_as_uninterrupted(db, uninterrupted())


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted):
    killed_run_resumes(tmp_path, uninterrupted, 3)  # the middle of the run


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 6], ids=["early", "late"])
def test_run_killed_early_or_late_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted, n):
    killed_run_resumes(tmp_path, uninterrupted, n)


@pytest.mark.slow
def test_resume_killed_itself_still_ends_the_same(tmp_path, uninterrupted):
    db = tmp_path / "log.duckdb"
    killed_after(1, db, "run", *ARGS)
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    killed_after(2, db, "resume", run_id, "--quiet")  # resumed from seq 39, killed after 119
    assert rows(db, "SELECT max(seq), status FROM checkpoints, runs GROUP BY ALL") == [(3 * EVERY - 1, "running")]
    resume(db, run_id)
    assert_same_as_uninterrupted(db, uninterrupted())


@pytest.mark.slow
def test_run_killed_twice_and_before_its_first_checkpoint_still_ends_the_same(tmp_path, uninterrupted):
    # Killed after the first checkpoint, resumed, and the resume killed at its first checkpoint.
    db = tmp_path / "twice.duckdb"
    killed_after(1, db, "run", *ARGS)
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    killed_after(1, db, "resume", run_id, "--quiet")
    assert rows(db, "SELECT max(seq), status FROM checkpoints, runs GROUP BY ALL") == [(2 * EVERY - 1, "running")]
    assert rows(db, "SELECT count(DISTINCT as_of) FROM decisions")[0][0] < SESSIONS
    resume(db, run_id)
    assert_same_as_uninterrupted(db, uninterrupted())
    # Killed as its first checkpoint was due (none logged): resume starts over, same run id.
    early = tmp_path / "early.duckdb"
    killed_after(0, early, "run", *ARGS)
    (run_id,), = rows(early, "SELECT run_id FROM runs")
    assert rows(early, "SELECT count(*) FROM checkpoints")[0][0] == 0
    assert rows(early, "SELECT count(*) FROM decisions")[0][0] > 0  # it had decided, unsaved
    resume(early, run_id)
    assert_same_as_uninterrupted(early, uninterrupted())
