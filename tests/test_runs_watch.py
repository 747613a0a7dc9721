"""`flowkit runs` tells a user where each run stands and how to resume it; `flowkit export`
hands a run's tables to other tools as Parquet."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from flowkit.store._db import schema
from runtime_support import rows

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["workflows/fincon.yaml", "--symbol", "BTC-USDT", "--symbol", "ETH-USDT",
        "--start", "2024-01-01", "--end", "2024-04-30", "--every", "1w", "--quiet"]


def flowkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowkit.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """One completed backtest, and one killed after its second checkpoint (of every 5 dates)."""
    where = tmp_path_factory.mktemp("runs")
    done, killed = where / "done.duckdb", where / "killed.duckdb"
    assert flowkit("run", *ARGS, "--db", str(done)).returncode == 0
    kill = flowkit("run", *ARGS, "--db", str(killed),
                   env={"FLOWKIT_CHECKPOINT_EVERY": "5", "FLOWKIT_TEST_KILL_AFTER_CHECKPOINTS": "2"})
    assert kill.returncode == 137, kill.stderr
    return done, killed


def test_runs_shows_status_progress_and_the_resume_command(logs):
    done, killed = logs
    (total,), = rows(done, "SELECT decision_times FROM runs")
    assert total >= 17  # weekly, four months
    listed = flowkit("runs", "--db", str(done))
    assert listed.returncode == 0 and "completed" in listed.stdout
    assert f"{total}/{total}" in listed.stdout and "flowkit resume" not in listed.stdout

    (run_id,), = rows(killed, "SELECT run_id FROM runs")
    listed = flowkit("runs", "--db", str(killed))
    assert listed.returncode == 0, listed.stderr
    assert "interrupted, resumable" in listed.stdout  # the log still says running: the process is gone
    assert f"10/{total}" in listed.stdout
    assert f"flowkit resume {run_id} --db {killed}" in listed.stdout


def test_export_writes_every_table_of_the_run_as_parquet(logs, tmp_path):
    done, _ = logs
    (run_id,), = rows(done, "SELECT run_id FROM runs")
    out = tmp_path / "parquet"
    exported = flowkit("export", run_id, "--db", str(done), "--parquet", str(out))
    assert exported.returncode == 0, exported.stderr
    tables = set(schema()) - {"prompt_parts"}
    assert {p.stem for p in out.glob("*.parquet")} == tables
    for table in tables - {"model_cache"}:
        logged = rows(done, f'SELECT count(*) FROM "{table}" WHERE run_id = ?', run_id)[0][0]
        assert duckdb.sql(f"SELECT count(*) FROM '{out / table}.parquet'").fetchall()[0][0] == logged, table
    assert rows(done, "SELECT count(*) FROM decisions")[0][0] > 0
    # the prompts are whole: the same text model_calls_full rebuilds
    frame = duckdb.sql(f"SELECT call_id, request FROM '{out}/model_calls.parquet' ORDER BY call_id").fetchall()
    full = rows(done, "SELECT call_id, request FROM model_calls_full ORDER BY call_id")
    assert frame == full and '"content":' in frame[0][1] and "content_parts" not in frame[0][1]


def test_export_of_an_unknown_run_is_a_clear_error(logs, tmp_path):
    done, _ = logs
    exported = flowkit("export", "nope", "--db", str(done), "--parquet", str(tmp_path / "x"))
    assert exported.returncode == 1 and "nope" in exported.stderr and "Traceback" not in exported.stderr


def _summary(**pace):
    from flowkit.store.runstore import RunSummary

    fields = dict(run_id="r", workflow_name="w", mode="backtest", status="running",
                  started_at=None, decisions=0, model_calls=0, cost_usd=0.0,
                  decision_times=110, pid=os.getpid(), host=socket.gethostname())
    return RunSummary(**{**fields, **pace})


def test_the_eta_of_a_running_run_follows_the_pace_of_its_latest_attempt():
    from flowkit.app import eta_seconds

    t0 = datetime(2024, 1, 1, 12, 0, 0)
    # resumed at 10 done, 60 done 50 s later: 1 a second, 50 to go, 5 s spent since
    resumed = _summary(done=60, attempt_done=10, attempt_at=t0, checkpoint_at=t0 + timedelta(seconds=50))
    assert eta_seconds(resumed, now=t0 + timedelta(seconds=55)) == pytest.approx(45.0)
    fresh = _summary(done=55, attempt_done=0, attempt_at=t0, checkpoint_at=t0 + timedelta(seconds=11))
    assert eta_seconds(fresh, now=t0 + timedelta(seconds=11)) == pytest.approx(11.0)  # 5 a second
    assert eta_seconds(fresh, now=t0 + timedelta(hours=1)) == 0.0  # overdue: nearly done, not negative
    # no checkpoint since it (re)started, a run no process runs, a finished one: no ETA
    assert eta_seconds(_summary(done=60, attempt_done=60, attempt_at=t0, checkpoint_at=None)) is None
    assert eta_seconds(_summary(done=60, attempt_done=10, attempt_at=t0,
                                checkpoint_at=t0 + timedelta(seconds=50), pid=2**22 + 1)) is None
    assert eta_seconds(_summary(done=110, attempt_done=10, attempt_at=t0, status="completed",
                                checkpoint_at=t0 + timedelta(seconds=50))) is None
