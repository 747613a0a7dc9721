"""The runtime commands as a user types them: `flowkit run` (no key, no network) on the shipped
sample data, `flowkit runs`, `flowkit show` (also while another process is writing the same
event log), `--set`, `--symbol`, `--date`, and errors as one line with exit 1."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import WORKFLOWS, dicts, last_bar_date

from flowkit.cli import main

TA = str(WORKFLOWS / "tradingagents.yaml")
FINCON = str(WORKFLOWS / "fincon.yaml")
AMBIENT = ("FLOWKIT_MODEL", "FLOWKIT_DEEP_MODEL", "FLOWKIT_DB", "OPENAI_API_KEY",
           "ANTHROPIC_API_KEY")


def cli(*args: Any) -> tuple[int, str, str]:
    """`flowkit ARGS` in this process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def flowkit_process(*args: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
    """`flowkit ARGS` as its own process, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k not in AMBIENT}
    return subprocess.run([sys.executable, "-m", "flowkit.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120, check=False, **kw)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key in the environment, and any attempt to open a network connection fails the test."""
    for name in AMBIENT:
        monkeypatch.delenv(name, raising=False)
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield
    assert attempts == []


def decision_row(text: str, symbol: str) -> list[str]:
    """The printed decision table's row for `symbol`, split into its columns."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("symbol  as of"))
    assert lines[header].split()[:6] == ["symbol", "as", "of", "action", "size", "confidence"]
    row = next(line for line in lines[header + 2:] if line.startswith(symbol + " "))
    return row.split()


def the_decisions(db: Path, run_id: str) -> list[dict[str, Any]]:
    return dicts(db, "SELECT symbol, CAST(as_of AS DATE)::VARCHAR AS day, agent, action, size_pct, "
                     "confidence FROM decisions WHERE run_id = ? ORDER BY symbol", [run_id])


def run_id_of(out: str) -> str:
    match = re.search(r"^run (\S+) · ", out, re.MULTILINE)
    assert match, out
    return match.group(1)


@pytest.fixture(scope="module")
def ta_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One default TradingAgents decision: (db, run id, what `flowkit run` printed)."""
    db = tmp_path_factory.mktemp("ta") / "log.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        for name in AMBIENT:
            mp.delenv(name, raising=False)
        code, out, err = cli("run", TA, "--db", db)
    assert code == 0, err
    return db, run_id_of(out), out


# ---------------------------------------------------------------- run


@pytest.mark.parametrize("workflow, decider", [(TA, "portfolio_manager"), (FINCON, "manager")],
                         ids=["tradingagents", "fincon"])
def test_run_prints_a_decision_for_the_default_symbol_on_the_latest_date(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workflow: str, decider: str) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "log.duckdb"
    code, out, err = cli("run", workflow, "--db", db)
    assert code == 0, err
    assert "models: offline (rules-based stand-in, not an LLM)" in out.splitlines()[0]
    latest = last_bar_date("AAPL")
    run_id = run_id_of(out)
    [decision] = the_decisions(db, run_id)
    assert (decision["symbol"], decision["day"], decision["agent"]) == ("AAPL", latest, decider)
    symbol, day, action, size, confidence = decision_row(out, "AAPL")[:5]
    assert (symbol, day, action) == ("AAPL", latest, decision["action"])
    assert size == f"{decision['size_pct']:.1f}%"
    assert confidence == f"{decision['confidence']:.2f}"
    assert f"flowkit show {run_id}" in out
    [run] = dicts(db, "SELECT status, mode, workflow_name FROM runs WHERE run_id = ?", [run_id])
    assert run == {"status": "completed", "mode": "decide",
                   "workflow_name": Path(workflow).stem}


def test_runs_lists_the_run(ta_run: tuple[Path, str, str]) -> None:
    db, run_id, _ = ta_run
    code, out, err = cli("runs", "--db", db)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["run", "workflow", "mode", "status", "progress", "started",
                                "(UTC)", "decisions", "calls", "cost", "$"]
    [row] = [line.split() for line in lines[2:] if line.startswith(run_id)]
    assert row[1:5] == ["tradingagents", "decide", "completed", "1/1"]
    assert row[7:10] == ["1", "14", "0.0000"]  # one decision, 14 offline model calls, no cost


def test_show_prints_the_transcript(ta_run: tuple[Path, str, str]) -> None:
    db, run_id, _ = ta_run
    code, out, err = cli("show", run_id, "--db", db)
    assert code == 0, err
    assert out.startswith(f"run {run_id} · tradingagents · decide · completed")
    speakers = re.findall(r"^  ▸ (\w+) \((\w+)\)(?: · round (\d))?$", out, re.MULTILINE)
    assert [(a, r) for a, _, r in speakers] == [
        ("market_analyst", ""), ("fundamentals_analyst", ""), ("news_analyst", ""),
        ("sentiment_analyst", ""),
        ("bull", "1"), ("bear", "1"), ("bull", "2"), ("bear", "2"), ("research_manager", ""),
        ("trader", ""),
        ("aggressive", "1"), ("conservative", "1"), ("neutral", "1"), ("portfolio_manager", "")]
    # What each said: the debate's arguments and rebuttals, the verdicts, the final order.
    assert len(re.findall(r"^      argument: ", out, re.MULTILINE)) == 4 + 3
    assert len(re.findall(r"^      rebuttal: ", out, re.MULTILINE)) >= 3  # every turn after the first
    verdict = out.split("▸ research_manager (research_manager)")[1].split("▸")[0]
    assert re.search(r"recommendation: (BUY|SELL|HOLD) · winner: (bull|bear|tie)", verdict)
    assert "rationale: " in verdict and "plan: " in verdict
    [d] = the_decisions(db, run_id)
    assert (f"⇒ decision (portfolio_manager): {d['action']} size {d['size_pct']:.1f}% "
            f"confidence {d['confidence']:.2f}") in out
    assert re.search(r"⇒ risk engine: (approve|resize|reject)", out)


def test_show_filters_by_symbol_and_date(ta_run: tuple[Path, str, str]) -> None:
    db, run_id, _ = ta_run
    code, out, _ = cli("show", run_id, "--db", db, "--date", last_bar_date("AAPL"))
    assert code == 0 and "━━ AAPL as of" in out
    code, out, _ = cli("show", run_id, "--db", db, "--symbol", "MSFT")
    assert code == 0 and "━━" not in out and "▸" not in out


def test_set_changes_the_firm(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    code, _, err = cli("run", TA, "--db", db, "--set", "pipeline.1.debate.rounds=3",
                         "--set", "risk.max_position_pct=5", "--quiet")
    assert code == 0, err
    [run_id] = [r["run_id"] for r in dicts(db, "SELECT run_id FROM runs")]
    turns = dicts(db, "SELECT agent, round FROM steps WHERE run_id = ? AND step_id LIKE "
                      "'research_debate/r%' ORDER BY seq", [run_id])
    assert [(t["agent"], t["round"]) for t in turns] == [
        (a, r) for r in (1, 2, 3) for a in ("bull", "bear")]
    [run] = dicts(db, "SELECT config->>'$.workflow.risk.max_position_pct' AS cap FROM runs")
    assert float(run["cap"]) == 5.0
    # The agents were given the tighter limit: the (offline) trader sizes within it.
    [trader] = dicts(db, "SELECT output->>'$.size_pct' AS size FROM steps WHERE run_id = ? "
                         "AND agent = 'trader'", [run_id])
    assert 0 < float(trader["size"]) <= 5.0


def test_symbol_and_date_choose_what_is_decided(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    code, out, err = cli("run", TA, "--db", db, "--symbol", "MSFT", "--symbol", "NVDA",
                         "--date", "2024-03-28")
    assert code == 0, err
    run_id = run_id_of(out)
    decisions = the_decisions(db, run_id)
    assert [(d["symbol"], d["day"]) for d in decisions] == [("MSFT", "2024-03-28"),
                                                            ("NVDA", "2024-03-28")]
    for d in decisions:
        assert decision_row(out, d["symbol"])[1:3] == ["2024-03-28", d["action"]]
    assert "AAPL" not in out
    code, out, err = cli("run", TA, "--db", db, "--symbol", "GOOGL", "--quiet")
    assert code == 0, err
    latest = dicts(db, "SELECT symbol, CAST(as_of AS DATE)::VARCHAR AS day FROM decisions "
                       "WHERE symbol = 'GOOGL'")
    assert latest == [{"symbol": "GOOGL", "day": last_bar_date("GOOGL")}]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("args, message", [
    (["show", "no-such-run"], "error: no run no-such-run in "),
    (["show", "{run_id}", "--date", "2024-13-45"], "error: bad --date '2024-13-45'"),
    (["replay", "no-such-run"], "error: no run no-such-run in "),
    (["run", TA, "--date", "2024-13-45"], "error: bad --date: month must be in 1..12"),
    (["run", TA, "--date", "2024-03-30"], "error: no bar closes on 2024-03-30 for AAPL"),
    (["run", TA, "--symbol", "NOPE"], "error: no 1d bars for NOPE"),
    (["run", "no/such/firm.yaml"], "no/such/firm.yaml:1:1: cannot read workflow"),
    (["run", TA, "--start", "2024-01-02"], "error: --start and --end go together"),
], ids=["unknown-run", "show-bad-date", "replay-unknown-run", "bad-date", "no-bar-that-day",
        "unknown-symbol", "missing-file", "start-without-end"])
def test_errors_exit_1_with_one_line(ta_run: tuple[Path, str, str], args: list[str],
                                     message: str) -> None:
    db, run_id, _ = ta_run
    before = dicts(db, "SELECT count(*) AS n FROM runs")
    proc = flowkit_process(*[a.format(run_id=run_id) for a in args], "--db", db)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert dicts(db, "SELECT count(*) AS n FROM runs") == before  # nothing was started


def test_readers_without_an_event_log_exit_1(tmp_path: Path) -> None:
    for command in (["runs"], ["show", "x"]):
        code, _, err = cli(*command, "--db", tmp_path / "none.duckdb")
        assert code == 1 and err.startswith("error: no event log at ") and err.count("\n") == 1


# ---------------------------------------------------------------- reading while a run writes


def _stopped(proc: subprocess.Popen) -> bool:
    """Whether the process is stopped (SIGSTOP), from its /proc state."""
    with open(f"/proc/{proc.pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def test_runs_and_show_work_while_a_backtest_is_writing(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    # Reads race the run's commits as they come; and, whatever the machine's speed, the run
    # stops itself (SIGSTOP) once its second checkpoint is committed, so it is read mid-run
    # there at least three times before it is let go (SIGCONT).
    env = {**{k: v for k, v in os.environ.items() if k not in AMBIENT},
           "FLOWKIT_CHECKPOINT_EVERY": "20", "FLOWKIT_TEST_KILL_AFTER_CHECKPOINTS": "2",
           "FLOWKIT_TEST_KILL_SIGNAL": "SIGSTOP"}
    writer = subprocess.Popen(
        [sys.executable, "-m", "flowkit.cli", "run", TA, "--db", str(db), "--quiet",
         "--symbol", "AAPL", "--symbol", "MSFT", "--symbol", "NVDA",
         "--start", "2024-01-02", "--end", "2024-06-28"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen: list[str] = []  # the run's status at each poll
    last_process, paused = 0.0, 0
    try:
        while not db.exists() and writer.poll() is None:
            time.sleep(0.05)
        while True:
            if paused or (writer.poll() is None and _stopped(writer)):
                paused += 1  # polls since the run stopped itself
            if paused == 4:  # read three times while stopped: let it go
                writer.send_signal(signal.SIGCONT)
            done = writer.poll() is not None  # read after this poll: it saw the final state
            code, out, err = cli("runs", "--db", db)
            assert code == 0, err
            if time.monotonic() - last_process > 1.0 or done:  # and now and then as a process
                last_process = time.monotonic()
                proc = flowkit_process("runs", "--db", db)
                assert proc.returncode == 0, proc.stderr
            rows = [line.split() for line in out.splitlines()[2:]]
            if rows:
                run_id, status = rows[0][0], rows[0][3]
                seen.append(status)
                code, out, err = cli("show", run_id, "--db", db, "--symbol", "AAPL",
                                     "--date", "2024-01-02")
                assert code == 0, err
                assert out.startswith(f"run {run_id} · tradingagents · backtest")
            if done:
                break
            time.sleep(0.02)
    finally:
        if writer.poll() is None:
            writer.kill()
        _, err = writer.communicate()
    assert writer.returncode == 0, err
    assert paused > 3 and seen.count("running") >= 3, seen  # we did read, repeatedly, mid-run
    assert seen[-1] == "completed", seen
    [n] = dicts(db, "SELECT count(*) AS n FROM decisions")
    assert n["n"] == 3 * len(dicts(db, "SELECT DISTINCT as_of FROM decisions"))


def test_resume_refuses_a_run_whose_process_is_still_at_work(tmp_path: Path) -> None:
    """Two processes continuing one run would log every decision twice (seen: a resume of a
    live run ran alongside it, then failed on the doubled log)."""
    db = tmp_path / "log.duckdb"
    env = {**{k: v for k, v in os.environ.items() if k not in AMBIENT},
           "FLOWKIT_CHECKPOINT_EVERY": "5", "FLOWKIT_TEST_KILL_AFTER_CHECKPOINTS": "1",
           "FLOWKIT_TEST_KILL_SIGNAL": "SIGSTOP"}  # stops itself at its first checkpoint
    writer = subprocess.Popen(
        [sys.executable, "-m", "flowkit.cli", "run", TA, "--db", str(db), "--quiet",
         "--symbol", "ETH-USDT", "--symbol", "MSFT", "--start", "2024-01-02", "--end", "2024-02-28"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (writer.poll() is None and _stopped(writer)):
            assert writer.poll() is None and time.monotonic() < deadline, "the run never stopped"
            time.sleep(0.05)
        [run] = dicts(db, "SELECT run_id, status FROM runs")
        assert run["status"] == "running"
        listed = flowkit_process("runs", "--db", db)  # its first checkpoint gives it a pace
        assert re.search(rf"{run['run_id']} .* running +\d+/\d+ · ETA \d+m\d\ds ", listed.stdout), listed.stdout
        proc = flowkit_process("resume", run["run_id"], "--db", db)
        assert proc.returncode == 1 and proc.stderr == (
            f"error: run {run['run_id']} is still running (process {writer.pid}); it can be "
            f"resumed once it stops (Ctrl-C, or kill {writer.pid})\n"), proc.stderr
        writer.send_signal(signal.SIGCONT)
        _, err = writer.communicate(timeout=300)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
    assert writer.returncode == 0, err
    assert dicts(db, "SELECT status FROM runs") == [{"status": "completed"}]
    times = dicts(db, "SELECT count(*) AS n, count(DISTINCT (symbol, as_of)) AS distinct_n FROM decisions")
    assert times[0]["n"] == times[0]["distinct_n"] > 0  # every decision logged once
