"""A user's mistake on the command line is one clear line on stderr and exit 1: never a
traceback, never "internal error", and nothing is started or logged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from runtime_support import WORKFLOWS, dicts

from flowkit.errors import BudgetExceeded, CacheMiss, FlowkitError, ModelError, RunAborted

TA = str(WORKFLOWS / "tradingagents.yaml")
FINCON = str(WORKFLOWS / "fincon.yaml")
SHORT_TRAINING = ["--set", "learning.train.start=2023-06-01", "--set", "learning.train.end=2023-06-14"]


def flowkit(*args: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWKIT_DB", "FLOWKIT_MODEL")}
    return subprocess.run([sys.executable, "-m", "flowkit.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """An event log holding one decision run and one (short, one-episode) training."""
    db = tmp_path_factory.mktemp("errors") / "log.duckdb"
    done = flowkit("run", TA, "--symbol", "MSFT", "--db", db, "--quiet")
    assert done.returncode == 0, done.stderr
    done = flowkit("train", FINCON, "--symbol", "AAPL", "--episodes", "1", *SHORT_TRAINING,
                   "--db", db, "--quiet")
    assert done.returncode == 0, done.stderr
    runs = {r["mode"]: r["run_id"] for r in dicts(db, "SELECT mode, run_id FROM runs")}
    (db.parent / "a-file").write_text("not a folder")
    return db, runs["decide"], runs["train"]


@pytest.mark.parametrize("args, message", [
    (["replay", "{training}"], "error: run {training} is episode 1 of a training (`flowkit "
                               "train`) and cannot be replayed; run `flowkit train` again instead"),
    (["resume", "{training}"], "error: run {training} is episode 1 of a training (`flowkit "
                               "train`) and cannot be resumed; run `flowkit train` again instead"),
    (["resume", "{decision}"], "error: run {decision} already completed"),
    (["report", "no-such-run"], "error: no run no-such-run in "),
    (["resume", "no-such-run"], "error: no run no-such-run in "),
    (["run", TA, "--set", "nonsense"], "error: --set expects dotted.path=value, got 'nonsense'"),
    (["run", TA, "--set", "pipeline.99.agent=x"], "error: --set pipeline.99.agent: 'pipeline' "
                                                  "has no key or index '99'"),
    (["run", TA, "--start", "2024-02-30", "--end", "2024-03-08"],
     "error: bad --start: day is out of range for month"),
    (["run", TA, "--start", "2024-03-08", "--end", "2024-01-02"],
     "error: --start 2024-03-08 is after --end 2024-01-02"),
    (["run", TA, "--date", "last friday"], "error: bad --date: Invalid isoformat string"),
    (["run", TA, "--seeds", "0"], "error: --seeds 0: expected at least 1"),
    (["run", TA, "--date", "2024-03-28", "--start", "2024-03-01", "--end", "2024-03-28"],
     "error: --date is for one decision; --start/--end for a backtest"),
    (["compare", TA, "--end", "2024-03-28"], "error: --start and --end go together"),
    (["compare", TA], "error: compare needs a window: --start and --end"),
    (["train", TA], "error: the workflow has no learning.train window"),
    (["train", FINCON, "--episodes", "0"], "error: --episodes must be at least 1"),
    (["run", TA, "--every", "1w"], "error: --every is the decision frequency of a backtest"),
    (["runs", "--limit", "0"], "error: --limit 0: expected at least 1"),
    (["report", "{decision}", "--out", "{folder}/a-file/report.html"],
     "error: cannot write {folder}/a-file: "),
    (["run", TA, "--symbol", "../../etc/passwd"],
     "error: --symbol '../../etc/passwd': expected an upper-case symbol such as AAPL"),
    (["run", TA, "--symbol", "msft"], "error: --symbol 'msft': expected an upper-case symbol"),
    (["run", TA, "--symbol", "AAPL/../../../ETC/PASSWD"],  # the symbol pattern allows / and .
     "error: no 1d bars for AAPL/../../../ETC/PASSWD: a symbol read from files names one in "),
    (["run", TA, "--symbol", "ETH-USDT", "--set", "market.timeframe=1h", "--start", "2024-03-01",
      "--end", "2024-03-02", "--every", "1h"], "error: no 1h bars for SPY: "),
    (["report", "{decision}", "--out", "/proc/flowkit-report.html"],
     "error: cannot write /proc/flowkit-report.html: "),
    (["export", "{decision}", "--parquet", "{folder}/a-file"],
     "error: cannot export run {decision} to {folder}/a-file: "),
    (["export", "{decision}", "--parquet", "/proc/flowkit-export"],
     "error: cannot export run {decision} to /proc/flowkit-export: "),
    (["compare", TA, "--start", "2024-01-02", "--end", "2024-01-03", "--out", "{folder}/a-file/c.html"],
     "error: cannot write {folder}/a-file: "),
], ids=lambda v: v if isinstance(v, str) else None)
def test_mistakes_are_one_clean_line(logged: tuple[Path, str, str], args: list[str],
                                     message: str) -> None:
    db, decision, training = logged
    before = dicts(db, "SELECT count(*) AS n FROM runs")
    fill = {"decision": decision, "training": training, "folder": db.parent}
    proc = flowkit(*[a.format(**fill) for a in args], "--db", db)
    one_line_error(proc, message.format(**fill))
    if "SPY" in message:  # the symbol came from a setting, not from the command line: which one
        assert "SPY is market.benchmark: set it to a symbol with 1h bars, or to null" in proc.stderr
        assert "(1h bars there: BTC-USDT, ETH-USDT)" in proc.stderr  # symbols, not file names
    if args[0] != "compare":  # compare writes its report after running the firms
        assert dicts(db, "SELECT count(*) AS n FROM runs") == before  # nothing was started


def test_a_limit_beyond_any_integer_lists_every_run(logged: tuple[Path, str, str]) -> None:
    db, decision, training = logged
    proc = flowkit("runs", "--limit", "99999999999999999999", "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert decision in proc.stdout and training in proc.stdout


@pytest.mark.parametrize("out", ["{folder}/existing", "{folder}/new/"])
def test_an_out_naming_a_folder_writes_the_report_inside_it(logged: tuple[Path, str, str],
                                                              out: str) -> None:
    db, decision, _ = logged
    (db.parent / "existing").mkdir(exist_ok=True)
    folder = Path(out.format(folder=db.parent))
    proc = flowkit("report", decision, "--out", out.format(folder=db.parent), "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert (folder / f"{decision}.html").stat().st_size > 0
    assert (folder / f"{decision}.png").stat().st_size > 0


def test_compare_out_naming_a_folder_writes_the_report_inside_it(tmp_path: Path) -> None:
    folder = tmp_path / "reports-here"
    folder.mkdir()
    proc = flowkit("compare", TA, FINCON, "--symbol", "ETH-USDT", "--start", "2024-01-01",
                   "--end", "2024-02-29", "--every", "1w", "--out", folder,
                   "--db", tmp_path / "c.duckdb", "--quiet")
    assert proc.returncode == 0, proc.stderr
    [report] = folder.glob("compare-*.html")
    assert report.stat().st_size > 0 and f"wrote {report}" in proc.stdout


def test_run_aborting_errors_share_one_base_and_model_errors_carry_their_attempts() -> None:
    assert issubclass(BudgetExceeded, RunAborted) and issubclass(CacheMiss, RunAborted)
    assert issubclass(CacheMiss, ModelError) and issubclass(RunAborted, FlowkitError)
    assert not issubclass(ModelError, RunAborted)  # a failed call may be survived (fallback, continue)
    assert BudgetExceeded("x").status == "budget_exceeded" and CacheMiss("x").status == "failed"
    assert ModelError("boom").attempts == []
    assert ModelError("boom", attempts=["a1", "a2"]).attempts == ["a1", "a2"]


@pytest.mark.parametrize("command", ["replay", "resume"])
def test_a_run_row_without_its_workflow_is_a_clear_error(tmp_path: Path, command: str) -> None:
    """A row written by hand or by another tool into a log (no config recorded)."""
    from flowkit.store import EventLog

    db = tmp_path / "hand.duckdb"
    with EventLog(db) as log:
        log.append("runs", {"run_id": "hand", "status": "failed", "mode": "backtest"})
    one_line_error(flowkit(command, "hand", "--db", db),
                   "error: run hand has no recorded workflow: it cannot be replayed or resumed")
