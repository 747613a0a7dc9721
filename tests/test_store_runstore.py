"""RunStore: typed reads of an event log, the safe way (read-only, waiting out a writer), and
the reading commands built on it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import typing
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from flowkit.errors import RunNotFound, StoreError
from flowkit.store import EventLog, RunStore
from flowkit.store import runstore as rs
from flowkit.store._db import schema

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 1, 2, 21, 0)
DAY = timedelta(days=1)


@pytest.fixture
def db(tmp_path) -> Path:
    """Two backtests and a replay of one, a training run with two generations of beliefs."""
    path = tmp_path / "runs.duckdb"
    with EventLog(path) as log:
        for k, (run_id, mode, parent) in enumerate([("b1", "backtest", None), ("b2", "backtest", None),
                                                     ("p1", "replay", "b1"), ("p2", "replay", "b1")]):
            log.append("runs", {"run_id": run_id, "workflow_name": "fincon", "mode": mode,
                                "parent_run_id": parent, "status": "completed",
                                "started_at": T0 + k * timedelta(minutes=1), "config": {"k": k}})
        for k in range(3):
            for symbol in ("MSFT", "BTC-USDT"):
                log.append("decisions", {"run_id": "b1", "symbol": symbol, "as_of": T0 + k * DAY,
                                         "action": "BUY" if k else "HOLD", "size_pct": 2.0 * k})
                log.append("risk_reviews", {"run_id": "b1", "symbol": symbol, "as_of": T0 + k * DAY,
                                            "verdict": "approve", "details": {"rules": []}})
                log.append("steps", {"run_id": "b1", "seq": 10 * k + len(symbol), "symbol": symbol,
                                     "as_of": T0 + k * DAY, "agent": "trader", "status": "ok"})
        for seq, symbol in [(100, "MSFT"), (101, "MSFT")]:
            log.append("steps", {"run_id": "b1", "seq": seq, "symbol": symbol, "as_of": T0, "agent": "judge"})
        log.append("orders", {"run_id": "b1", "order_id": "o2", "symbol": "MSFT", "submitted_at": T0 + DAY})
        log.append("orders", {"run_id": "b1", "order_id": "o1", "symbol": "MSFT", "submitted_at": T0})
        for i, (model, cached) in enumerate([("gpt-4o-mini", False), ("claude", True), ("gpt-4o-mini", False)]):
            log.append("model_calls", {"run_id": "b1", "call_id": f"c{i}", "model": model, "cached": cached,
                                       "prompt_tokens": 100, "completion_tokens": 10 * i, "cost_usd": 0.01})
        for episode, when, text in [(1, T0, "old"), (2, T0 + DAY, "new b"), (2, T0 + DAY, "new a")]:
            log.append("beliefs", {"belief_id": f"{text}", "run_id": f"t{episode}", "episode": episode,
                                   "created_at": when, "workflow": "fincon", "text": text,
                                   "agents": ["manager"], "condition": {"indicator": "rsi_14", "op": ">", "value": 70},
                                   "effect": {"bias": -0.2}, "evidence": {"train_end": "2023-12-29"},
                                   "frozen": True})
        log.append("beliefs", {"belief_id": "draft", "run_id": "t3", "created_at": T0 + 5 * DAY,
                               "workflow": "fincon", "text": "not frozen", "frozen": False})
    return path


def test_runs_latest_first_with_counts(db):
    runs = RunStore.open(db).runs(limit=3)
    assert [r.run_id for r in runs] == ["p2", "p1", "b2"]
    b1 = next(r for r in RunStore.open(db).runs() if r.run_id == "b1")
    assert (b1.decisions, b1.model_calls, round(b1.cost_usd, 6)) == (6, 3, 0.03)


def test_one_run_and_its_children(db):
    store = RunStore.open(db)
    assert store.run("b2")["config"] == {"k": 1}
    assert store.latest_child("b1", "replay")["run_id"] == "p2"
    assert store.latest_child("b2", "replay") is None
    with pytest.raises(RunNotFound, match=r"no run nope in .*runs\.duckdb \(see `flowkit runs`\)"):
        store.run("nope")


def test_filters_by_symbol_and_day(db):
    store = RunStore.open(db)
    assert len(store.decisions("b1")) == 6
    assert [(d["symbol"], d["as_of"]) for d in store.decisions("b1")][:2] == [("BTC-USDT", T0), ("MSFT", T0)]
    assert [d["size_pct"] for d in store.decisions("b1", symbol="MSFT")] == [0.0, 2.0, 4.0]
    assert [d["symbol"] for d in store.decisions("b1", day="2024-01-03")] == ["BTC-USDT", "MSFT"]
    assert [d["symbol"] for d in store.risk_reviews("b1", symbol="BTC-USDT", day=date(2024, 1, 4))] == ["BTC-USDT"]
    assert store.risk_reviews("b1")[0]["details"] == {"rules": []}
    transcript = store.steps("b1", symbol="MSFT", day="2024-01-02")
    assert [s["seq"] for s in transcript] == [4, 100, 101]  # one decision's steps in order
    assert store.last_step_seq("b1") == 101 and store.last_step_seq("b2") == -1
    assert [o["order_id"] for o in store.orders("b1")] == ["o1", "o2"]


def test_call_totals_and_beliefs(db):
    store = RunStore.open(db)
    totals = store.call_totals("b1")
    assert (totals.calls, totals.cached, totals.prompt_tokens, totals.completion_tokens) == (3, 1, 300, 30)
    assert totals.models == ("claude", "gpt-4o-mini")
    assert store.call_totals("b2").models == ()
    latest = store.beliefs("fincon")  # the latest frozen training run's, in id order
    assert [b["text"] for b in latest] == ["new a", "new b"]
    assert latest[0]["evidence"] == {"train_end": "2023-12-29"} and latest[0]["agents"] == ["manager"]
    assert [b["text"] for b in store.beliefs("fincon", run_id="t1")] == ["old"]
    assert store.beliefs("tradingagents") == []


def test_a_missing_file_or_a_broken_one_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="no event log at"):
        RunStore.open(tmp_path / "nope.duckdb")
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="junk.duckdb"):
        RunStore.open(junk).runs()


def test_row_types_name_the_columns_of_schema_sql():
    tables = schema()
    for table, hint in [("runs", rs.Run), ("steps", rs.Step), ("decisions", rs.Decision),
                        ("risk_reviews", rs.RiskReview), ("orders", rs.Order), ("fills", rs.Fill),
                        ("portfolio", rs.Snapshot), ("metrics", rs.MetricsRow),
                        ("model_calls", rs.ModelCall), ("checkpoints", rs.Checkpoint),
                        ("beliefs", rs.Belief), ("run_history", rs.HistoryEvent)]:
        assert list(typing.get_type_hints(hint)) == list(tables[table]), table


# ---------------------------------------------------------------- no SQL outside the store

# Words that only SQL (or a raw DuckDB connection) uses, as flowkit would write them.
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|"
                 r"CREATE\s+(TABLE|VIEW|MACRO)|ATTACH\s|duckdb\.connect|import\s+duckdb|open_reader|"
                 r"store\._db)", re.S)


def sql_in(path: Path) -> list[str]:
    """The string literals (f-strings too) and imports of a module that look like SQL."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[int, str] = {}  # by line: an f-string's parts are literals too
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        if text is not None and SQL.search(text):
            found.setdefault(node.lineno, f"{path.name}:{node.lineno}: {text[:60]!r}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n == "duckdb" or n.startswith("flowkit.store._") or n == "open_reader" for n in names):
                found[node.lineno] = f"{path.name}:{node.lineno}: imports {', '.join(names)}"
    return [found[line] for line in sorted(found)]


def test_no_sql_outside_the_store():
    offenders = []
    for path in sorted((ROOT / "flowkit").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith("flowkit/store/"):
            offenders += [f"{rel}: {hit}" for hit in sql_in(path)]
    assert offenders == [], "SQL belongs in flowkit/store/:\n" + "\n".join(offenders)


def test_the_scan_finds_sql(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text('from flowkit.store import open_reader\n'
                      'import duckdb\n'
                      'def q(t):\n'
                      '    return f"""SELECT count(*)\n FROM {t}"""\n'
                      'SAY = "select the runs you want from the list"\n')  # prose is not SQL
    assert [hit.split(":")[1] for hit in sql_in(sneaky)] == ["1", "2", "4"]


# ---------------------------------------------------------------- the reading commands


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from flowkit.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("command", ["report", "show"])
def test_a_missing_run_is_one_clear_line(db, tmp_path, command):
    done = cli(command, "no-such-run", "--db", str(db), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: no run") and "no-such-run" in line and "flowkit runs" in line
    assert "internal error" not in line and "Traceback" not in done.stderr
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


# A run's writer in another process: the runs row, then a snapshot of the run and a batch of
# another run's steps every few milliseconds, flushed every 10 ms (a real run flushes every
# 0.5 s), until its stdin closes. Prints "ready" once the run is on disk. Against it, opening
# the file directly fails in about 5 reports of 8.
WRITER = """
import sys, threading
from datetime import datetime, timedelta
from flowkit.store import EventLog

log = EventLog(sys.argv[1], flush_interval=0.01)
t0 = datetime(2024, 1, 2, 21)
log.append("runs", {"run_id": "live", "workflow_name": "tradingagents", "mode": "backtest",
                    "status": "running", "started_at": t0, "config": {}})
log.append("portfolio", {"run_id": "live", "time": t0, "equity": 1e5, "gross_exposure": 0.0})
log.flush()
print("ready", flush=True)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
k = 1
while not stop.is_set():
    t = t0 + timedelta(hours=k)
    for i in range(30):
        log.append("steps", {"run_id": "bulk", "seq": 30 * k + i, "as_of": t, "agent": "trader",
                             "output": {"action": "HOLD", "pad": "x" * 200}})
    log.append("portfolio", {"run_id": "live", "time": t, "equity": 1e5 + k, "gross_exposure": 0.0})
    k += 1
    stop.wait(0.005)
log.close()
"""


@pytest.mark.parametrize("tries", [5, pytest.param(40, marks=pytest.mark.slow)])
def test_report_while_another_process_writes(tmp_path, tries):
    """`flowkit report` on a file a run is writing: every try succeeds (it used to fail with
    DuckDB's "Could not set lock" in 25 of 40 tries)."""
    from flowkit.cli import main

    db = tmp_path / "live.duckdb"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "ready\n", writer.stderr.read()
        seen = []
        for k in range(tries):
            out = tmp_path / f"r{k}.html"
            assert main(["report", "live", "--db", str(db), "--out", str(out)]) == 0
            seen.append(int(re.search(r"\((\d+) snapshots\)", out.read_text()).group(1)))
        assert writer.poll() is None, writer.stderr.read()  # still writing after the last report
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)
    assert writer.returncode == 0, writer.stderr.read()
    assert seen == sorted(seen) and seen[-1] > seen[0]  # each report saw the run grow
