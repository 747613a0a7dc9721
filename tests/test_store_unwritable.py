"""A log that cannot be written at all fails the run at once, with one clear error, instead of
running on to lose every row at close."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_support import WORKFLOWS

from flowkit.errors import StoreError
from flowkit.store import EventLog, RunStore
from flowkit.store.parquet import export_tables, write_views


def flowkit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWKIT_DB", "FLOWKIT_MODEL")}
    return subprocess.run([sys.executable, "-m", "flowkit.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture
def views(tmp_path: Path) -> Path:
    """What a sweep leaves: runs exported to Parquet folders, read through a views database."""
    source = tmp_path / "cell.duckdb"
    done = flowkit("run", str(WORKFLOWS / "tradingagents.yaml"), "--db", str(source), "--quiet")
    assert done.returncode == 0, done.stderr
    (tmp_path / "cells").mkdir()
    export_tables(source, tmp_path / "cells" / "a", tmp_path / "scratch")
    db = tmp_path / "sweep.duckdb"
    write_views(db, str(tmp_path / "cells" / "*"))
    return db


def test_a_views_database_is_refused_at_the_first_write(views: Path) -> None:
    log = EventLog(views)
    log.append("runs", {"run_id": "new", "status": "running"})
    with pytest.raises(StoreError, match="is a read-only view of Parquet folders"):
        log.flush()
    with pytest.raises(StoreError, match="is a read-only view of Parquet folders"):
        log.append("steps", {"run_id": "new"})  # the run stops at its next row
    log.close()
    assert len(RunStore.open(str(views)).runs()) == 1  # still readable


def test_a_file_that_is_no_log_is_refused_at_the_first_write(tmp_path: Path) -> None:
    broken = tmp_path / "broken.duckdb"
    broken.write_bytes(b"\0" * 8 + b"DUCK" + os.urandom(4096))  # the magic, then garbage
    log = EventLog(broken)
    with pytest.raises(StoreError, match="cannot open the event log .*: Corrupt database file"):
        log.flush()
    log.close()


@pytest.mark.parametrize("command", ["run", "replay"])
def test_the_cli_says_so_and_exits_1(views: Path, command: str) -> None:
    [run] = RunStore.open(str(views)).runs()
    what = str(WORKFLOWS / "tradingagents.yaml") if command == "run" else run.run_id
    done = flowkit(command, what, "--db", str(views), "--quiet")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.endswith(f"is a read-only view of Parquet folders (a sweep's): runs, show, "
                                f"report and export read it; write runs to another --db\n")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "logged" not in done.stdout  # no claim the rows were kept
