"""SIGTERM and SIGINT stop a backtest cleanly (issue 10, item 6): the process exits non-zero,
`flowkit runs` shows the run `interrupted` (not `running` forever), and `flowkit resume` ends it
with the same decisions, orders, fills and equity as a run never interrupted. The run sends
the signal to itself right after a given checkpoint (a test hook), never by timing."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from flowkit.cli import main
from flowkit.store import RunStore
from test_backtest_resume import (ARGS, EVERY, ROOT, SESSIONS, assert_same_as_uninterrupted,
                                  flowkit, resume, rows)
from test_backtest_resume import uninterrupted  # noqa: F401 - the reference run, a fixture


# SIGINT takes the same path as SIGTERM (and asyncio already cancelled on it): slow only.
@pytest.mark.parametrize("signum", [pytest.param(signal.SIGTERM, id="SIGTERM"),
                                    pytest.param(signal.SIGINT, id="SIGINT",
                                                 marks=pytest.mark.slow)])
def test_a_signalled_run_is_interrupted_and_resumes_to_the_uninterrupted_result(
        tmp_path, capsys, uninterrupted, signum):  # noqa: F811 - the imported fixture
    db = tmp_path / "log.duckdb"
    # The run signals itself right after its second checkpoint: mid-run by construction.
    env = {**os.environ, "FLOWKIT_CHECKPOINT_EVERY": str(EVERY),
           "FLOWKIT_TEST_KILL_AFTER_CHECKPOINTS": "2",
           "FLOWKIT_TEST_KILL_SIGNAL": signal.Signals(signum).name}
    done = subprocess.run(flowkit("run", *ARGS, "--db", str(db)), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    err = done.stderr
    assert done.returncode == 128 + signum, err
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    assert f"interrupted by {signal.Signals(signum).name}" in err
    assert f"flowkit resume {run_id}" in err and "Traceback" not in err

    assert main(["runs", "--db", str(db)]) == 0
    (line,) = [row for row in capsys.readouterr().out.splitlines() if row.startswith(run_id)]
    assert "interrupted, resumable" in line
    with RunStore.open(db) as store:
        run = store.run(run_id)
        done = store.decision_count(run_id)
    assert run["status"] == "interrupted" and signal.Signals(signum).name in run["error"]
    assert 2 * EVERY * 3 <= done < SESSIONS * 3, "the signal did not land mid-run"

    resume(db, run_id)
    assert_same_as_uninterrupted(db, uninterrupted())
