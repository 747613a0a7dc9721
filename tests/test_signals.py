"""SIGTERM and SIGINT stop a backtest cleanly (issue 10, item 6): the process exits non-zero,
`flowkit runs` shows the run `interrupted` (not `running` forever), and `flowkit resume` ends it
with the same decisions, orders, fills and equity as a run never interrupted. The signal is
sent once the run has committed a checkpoint, found by polling the log, never by timing."""

from __future__ import annotations

import signal

import pytest

from flowkit.cli import main
from flowkit.store import RunStore
from test_backtest_resume import (SESSIONS, assert_same_as_uninterrupted, kill_after_checkpoints,
                                  resume, start)
from test_backtest_resume import uninterrupted  # noqa: F401 - the reference run, a fixture


# SIGINT takes the same path as SIGTERM (and asyncio already cancelled on it): slow only.
@pytest.mark.parametrize("signum", [pytest.param(signal.SIGTERM, id="SIGTERM"),
                                    pytest.param(signal.SIGINT, id="SIGINT",
                                                 marks=pytest.mark.slow)])
def test_a_signalled_run_is_interrupted_and_resumes_to_the_uninterrupted_result(
        tmp_path, capsys, uninterrupted, signum):  # noqa: F811 - the imported fixture
    db = tmp_path / "log.duckdb"
    proc = start(db)
    run_id = kill_after_checkpoints(proc, db, more_than=0, signum=signum)
    err = proc.stderr.read().decode()
    assert proc.returncode == 128 + signum, err
    assert f"interrupted by {signal.Signals(signum).name}" in err
    assert f"flowkit resume {run_id}" in err and "Traceback" not in err

    assert main(["runs", "--db", str(db)]) == 0
    (line,) = [row for row in capsys.readouterr().out.splitlines() if row.startswith(run_id)]
    assert "interrupted, resumable" in line
    with RunStore.open(db) as store:
        run = store.run(run_id)
        done = store.decision_count(run_id)
    assert run["status"] == "interrupted" and signal.Signals(signum).name in run["error"]
    assert 0 < done < SESSIONS * 3, "the signal did not land mid-run"

    resume(db, run_id)
    assert_same_as_uninterrupted(db, uninterrupted())
