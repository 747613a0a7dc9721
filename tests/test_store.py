"""EventLog in one process: the API contract, value types, ordering, resume, cache, secrets."""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowkit.errors import StoreError
from flowkit.store import EventLog, RunStore, open_reader
from flowkit.store._db import SCHEMA_SQL, schema

T0 = datetime(2024, 1, 2, 21, 0)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "runs.duckdb"


@pytest.fixture
def log(path):
    with EventLog(path, flush_interval=0.05) as log:
        yield log


def test_schema_is_created_and_every_table_is_known(path, log):
    with open_reader(path) as con:
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    tables = {t for t, kind in kinds.items() if kind == "BASE TABLE"}
    assert tables == set(schema())
    assert {t for t, kind in kinds.items() if kind == "VIEW"} == {"model_calls_full"}
    assert {"runs", "steps", "model_calls", "decisions", "risk_reviews", "orders", "fills",
            "portfolio", "beliefs", "checkpoints", "metrics", "model_cache"} <= tables


def test_rows_round_trip_with_missing_columns_null(log):
    log.append("decisions", {"run_id": "r", "symbol": "AAPL", "as_of": T0, "action": "BUY",
                             "size_pct": 5, "confidence": 0.7, "reasoning": "momentum"})
    assert log.query("SELECT run_id, symbol, as_of, action, size_pct, confidence, entry, reasoning "
                     "FROM decisions") == [("r", "AAPL", T0, "BUY", 5.0, 0.7, None, "momentum")]


def test_flush_makes_rows_visible_to_another_connection(path, log):
    for i in range(100):
        log.append("steps", {"run_id": "r", "seq": i})
    log.flush()
    with open_reader(path) as con:
        assert con.execute("SELECT count(*), max(seq) FROM steps").fetchone() == (100, 99)


def test_background_flush_without_asking(path):
    with EventLog(path, flush_interval=0.05) as log:
        log.append("steps", {"run_id": "r", "seq": 1})
        deadline = datetime.now() + timedelta(seconds=5)
        while datetime.now() < deadline:
            with open_reader(path) as con:
                if con.execute("SELECT count(*) FROM steps").fetchone()[0] == 1:
                    return
        pytest.fail("the writer never flushed on its own")


class Side(str, enum.Enum):
    BUY = "buy"


@dataclass
class Point:
    x: float


def test_value_conversions(log):
    aware = datetime(2024, 1, 2, 16, 0, tzinfo=timezone(timedelta(hours=-5)))
    log.append("steps", {"run_id": "r", "seq": np.int64(1), "round": np.int32(2),
                         "as_of": aware, "started_at": pd.Timestamp("2024-01-02 21:00", tz="UTC"),
                         "finished_at": np.datetime64("2024-01-02T21:00:01"),
                         "duration_ms": np.float32(1.5), "status": Side.BUY,
                         "input": "plain prompt", "output": {"p": Point(1.0), "at": T0, "tags": {"b"},
                                                             "arr": np.arange(2), "nan": float("nan")}})
    log.append("steps", {"run_id": "r", "seq": 2, "as_of": date(2024, 1, 3), "duration_ms": float("nan"),
                         "started_at": "2024-01-03T10:00:00Z", "finished_at": pd.NaT, "output": "[1, 2]"})
    log.append("orders", {"run_id": "r", "order_id": "o", "quantity": 3, "status": None})
    log.append("beliefs", {"belief_id": "b", "frozen": np.bool_(True), "agents": ["bull", "bear"]})
    rows = log.query("SELECT seq, round, as_of, started_at, finished_at, duration_ms, status, input, output "
                     "FROM steps ORDER BY seq")
    assert rows[0][:7] == (1, 2, T0, T0, T0 + timedelta(seconds=1), 1.5, "buy")
    assert json.loads(rows[0][7]) == "plain prompt"  # a non-JSON string in a JSON column
    assert json.loads(rows[0][8]) == {"p": {"x": 1.0}, "at": "2024-01-02T21:00:00", "tags": ["b"],
                                      "arr": [0, 1], "nan": None}
    assert rows[1][2:6] == (datetime(2024, 1, 3), datetime(2024, 1, 3, 10), None, None)
    assert json.loads(rows[1][8]) == [1, 2]  # JSON text is stored as JSON
    assert log.query("SELECT quantity FROM orders") == [(3.0,)]
    assert log.query("SELECT frozen, agents FROM beliefs") == [(True, '["bull","bear"]')]


def test_unencodable_values_fail_at_append(log):
    cycle: dict = {}
    cycle["self"] = cycle
    with pytest.raises(StoreError, match="steps.output"):
        log.append("steps", {"run_id": "r", "output": cycle})


def test_dicts_are_snapshotted_at_append(log):
    positions = {"AAPL": {"qty": 1}}
    log.append("portfolio", {"run_id": "r", "time": T0, "positions": positions})
    positions["AAPL"]["qty"] = 99
    assert json.loads(log.query("SELECT positions FROM portfolio")[0][0]) == {"AAPL": {"qty": 1}}


@pytest.mark.parametrize("table, row, message", [
    ("nope", {"run_id": "r"}, "unknown table 'nope'"),
    ("steps", {"run_id": "r", "colour": 1}, "no column 'colour'"),
    ("steps", {"run_id": "r", "seq": "one"}, "steps.seq (BIGINT)"),
    ("steps", {"run_id": "r", "round": 2**40}, "steps.round (INTEGER)"),
    ("steps", {"run_id": "r", "duration_ms": "fast"}, "steps.duration_ms (DOUBLE)"),
    ("steps", {"run_id": "r", "as_of": 1704229200}, "steps.as_of (TIMESTAMP)"),
    ("steps", {"run_id": "r", "as_of": "yesterday"}, "steps.as_of (TIMESTAMP)"),
    ("beliefs", {"frozen": "yes"}, "beliefs.frozen (BOOLEAN)"),
])
def test_bad_rows_fail_at_append_and_name_the_column(log, table, row, message):
    with pytest.raises(StoreError, match=message.replace("(", r"\(").replace(")", r"\)")):
        log.append(table, row)
    log.append("steps", {"run_id": "r", "seq": 1})  # the log is unharmed
    assert log.query("SELECT count(*) FROM steps") == [(1,)]


def test_update_run_is_ordered_after_earlier_appends(log):
    log.append("runs", {"run_id": "r", "status": "running", "started_at": T0})
    log.update_run("r", status="completed", finished_at=T0 + timedelta(hours=1), error=None,
                   config={"k": 1})
    log.append("runs", {"run_id": "r2", "status": "running"})
    log.update_run("r2", status="failed", error="boom")
    assert log.query("SELECT run_id, status, finished_at, error, config FROM runs ORDER BY run_id") == [
        ("r", "completed", T0 + timedelta(hours=1), None, '{"k":1}'),
        ("r2", "failed", None, "boom", None)]
    with pytest.raises(StoreError, match="no column 'colour'"):
        log.update_run("r", colour="red")


def test_checkpoint_commits_rows_and_checkpoint_together(path, log):
    log.append("orders", {"run_id": "r", "order_id": "o1", "as_of": T0})
    log.checkpoint("r", 7, T0, {"cash": 1000.0, "positions": {}})
    with open_reader(path) as con:  # durable: visible to another connection on return
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        seq, as_of, state = con.execute("SELECT seq, as_of, state FROM checkpoints").fetchone()
    assert (seq, as_of, json.loads(state)) == (7, T0, {"cash": 1000.0, "positions": {}})


def test_discard_after_deletes_only_this_runs_later_rows(log):
    for run in ("r", "other"):
        for day in range(3):
            t = T0 + timedelta(days=day)
            for table in ("steps", "model_calls", "decisions", "risk_reviews", "orders"):
                log.append(table, {"run_id": run, "as_of": t})
            for table in ("fills", "portfolio"):
                log.append(table, {"run_id": run, "time": t})
        log.append("checkpoints", {"run_id": run, "seq": 0, "as_of": T0 + timedelta(days=2)})
    assert log.discard_after("r", T0 + timedelta(days=1)) == 7  # day 2 of r, one row per table
    assert log.query("SELECT count(*) FROM steps WHERE run_id = 'r'") == [(2,)]
    assert log.query("SELECT count(*) FROM fills WHERE run_id = 'r'") == [(2,)]
    assert log.query("SELECT count(*) FROM portfolio WHERE run_id = 'other'") == [(3,)]
    assert log.query("SELECT count(*) FROM checkpoints") == [(2,)]
    # ordered: rows appended after the call are kept, rows before it are discarded
    log.append("steps", {"run_id": "r", "as_of": T0 + timedelta(days=5)})
    assert log.discard_after("r", T0 + timedelta(days=4)) == 1
    log.append("steps", {"run_id": "r", "as_of": T0 + timedelta(days=5)})
    assert log.query("SELECT count(*) FROM steps WHERE run_id = 'r'") == [(3,)]


def test_query_df_and_query_params(log):
    log.append("fills", {"run_id": "r", "fill_id": "f1", "price": 10.0, "quantity": 2.0})
    df = log.query_df("SELECT fill_id, price * quantity AS notional FROM fills WHERE run_id = ?", ["r"])
    assert df.to_dict("records") == [{"fill_id": "f1", "notional": 20.0}]
    with pytest.raises(StoreError, match="query on .* failed"):
        log.query("SELECT * FROM no_such_table")


def test_concurrent_appends_from_threads_lose_nothing(log):
    def work(k):
        for i in range(2000):
            log.append("steps", {"run_id": f"t{k}", "seq": i})
            if i % 500 == 0:
                log.flush()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.query("SELECT count(*), count(DISTINCT (run_id, seq)) FROM steps") == [(16000, 16000)]


def test_queries_from_threads_while_appending(path, log):
    errors, counts = [], []

    def read():
        try:
            for _ in range(10):
                counts.append(log.query("SELECT count(*) FROM steps")[0][0])
                with open_reader(path) as con:  # another attachment of the same file, same process
                    con.execute("SELECT count(*) FROM steps").fetchall()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    for i in range(3000):
        log.append("steps", {"run_id": "r", "seq": i})
    for t in readers:
        t.join()
    assert errors == [] and len(counts) == 40
    assert log.query("SELECT count(*) FROM steps") == [(3000,)]


def test_large_buffer_triggers_a_flush(path):
    with EventLog(path, flush_interval=3600, max_buffer_rows=100) as log:
        for i in range(100):
            log.append("steps", {"run_id": "r", "seq": i})
        deadline = datetime.now() + timedelta(seconds=5)
        while datetime.now() < deadline:
            with open_reader(path) as con:
                if con.execute("SELECT count(*) FROM steps").fetchone()[0] == 100:
                    return
        pytest.fail("a full buffer did not trigger a flush")


def test_close_is_idempotent_and_later_appends_fail(path):
    log = EventLog(path)
    log.append("steps", {"run_id": "r", "seq": 1})
    log.close()
    log.close()
    with pytest.raises(StoreError, match="closed"):
        log.append("steps", {"run_id": "r", "seq": 2})
    assert log.query("SELECT count(*) FROM steps") == [(1,)]  # reading still works


def test_reads_after_close_see_every_row(path):
    """close() returns without waiting for the file; any read of it in the process waits for
    the last commit, whichever way it opens the file."""
    log = EventLog(path, flush_interval=3600)
    for i in range(2000):
        log.append("steps", {"run_id": "r", "seq": i, "input": "prompt " * 50})
    log.close()
    assert len(RunStore.open(path).steps("r")) == 2000
    with open_reader(path) as con:
        assert con.execute("SELECT count(DISTINCT seq) FROM steps").fetchone() == (2000,)


def test_a_file_that_is_not_an_event_log_fails_at_open(tmp_path):
    for content in (b"", b"date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n"):
        bad = tmp_path / "prices.csv"
        bad.write_bytes(content)
        with pytest.raises(StoreError, match="not a DuckDB file"):
            EventLog(bad)


def test_cache_put_get_and_reload(path, monkeypatch):
    payload = {"model": "gpt-4o-mini", "content": '{"action": "BUY"}', "tool_calls": [],
               "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.001, "latency_ms": 120.0}
    with EventLog(path) as log:
        assert log.cache_get("k1") is None
        log.cache_put("k1", "gpt-4o-mini", payload)
        assert log.cache_get("k1") == payload
        got = log.cache_get("k1")
        got["content"] = "mutated"
        assert log.cache_get("k1") == payload  # each get is a fresh object
    with EventLog(path) as log:
        reads = []
        real_read = log._read
        monkeypatch.setattr(log, "_read", lambda *a: reads.append(a) or real_read(*a))
        assert log.cache_get("missing") is None
        assert reads == []  # a miss never opens the file
        assert log.cache_get("k1") == payload
        assert log.cache_get("k1") == payload
        assert len(reads) == 1  # a hit reads the file once, then memory
        assert log.query("SELECT model, cache_key FROM model_cache") == [("gpt-4o-mini", "k1")]


def test_new_schema_columns_are_added_to_an_old_file(path):
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE steps (run_id VARCHAR, seq BIGINT)")
        con.execute("INSERT INTO steps VALUES ('old', 1)")
    with EventLog(path) as log:
        log.append("steps", {"run_id": "new", "seq": 2, "agent": "bull"})
        assert log.query("SELECT run_id, agent FROM steps ORDER BY seq") == [("old", None), ("new", "bull")]
        assert "fills" in {t for (t,) in log.query("SELECT table_name FROM information_schema.tables")}


def test_schema_sql_is_the_source_of_truth():
    declared = SCHEMA_SQL.read_text()
    for table, columns in schema().items():
        assert f"CREATE TABLE IF NOT EXISTS {table} (" in declared
        assert list(columns)  # parsed, with supported types only


def test_a_broken_file_fails_flush_but_keeps_the_rows(path, log):
    log.append("steps", {"run_id": "r", "seq": 0})
    log.flush()
    with log._attached(5) as con:  # someone drops a table under us
        con.execute("DROP TABLE steps")
    log.append("steps", {"run_id": "r", "seq": 1})
    with pytest.raises(StoreError, match="steps"):
        log.flush()
    with log._attached(5) as con:
        con.execute(SCHEMA_SQL.read_text())
    log.flush()
    assert log.query("SELECT seq FROM steps") == [(1,)]


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, flowkit.store; print(any(m in sys.modules for m in ('duckdb', 'pandas', 'numpy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(), data=st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12))
def test_strings_and_json_round_trip(log, text, data):
    """Any text survives a VARCHAR column; in a JSON column, JSON text is kept as JSON and other
    text becomes a JSON string; any JSON-able value survives a JSON column (None is NULL)."""
    log.append("steps", {"run_id": "prop", "error": text, "input": text, "output": data})
    [(error, input_, output)] = log.query("SELECT error, input, output FROM steps WHERE run_id = 'prop'")
    log.query("DELETE FROM steps WHERE run_id = 'prop'")
    assert error == text
    assert json.loads(input_) == (json.loads(text) if _is_json(text) else text)
    assert (None if output is None else json.loads(output)) == data


def _is_json(text: str) -> bool:
    """Strict JSON: no NaN or Infinity."""
    try:
        json.loads(text, parse_constant=lambda c: 1 / 0)
    except (ValueError, ZeroDivisionError):
        return False
    return True


def test_lone_surrogates_do_not_poison_a_batch(log):
    bad = "model said \ud83d"  # what json.loads makes of a truncated emoji escape
    log.append("steps", {"run_id": "s", "error": bad, "input": bad, "output": {"text": bad}})
    [(error, input_, output)] = log.query("SELECT error, input, output FROM steps")
    fixed = "model said \ufffd"
    assert (error, json.loads(input_), json.loads(output)) == (fixed, fixed, {"text": fixed})


def test_logs_opened_at_once_on_one_new_file_do_not_wait_for_each_other(tmp_path):
    """Each log's first write waits for the logs opened on the file before it (a run before
    ends its writes), never for later ones: two opened together used to wait on each other."""
    path = tmp_path / "shared.duckdb"
    logs = [EventLog(path, flush_interval=60) for _ in range(3)]
    done = []

    def write(k: int, log: EventLog) -> None:
        log.append("steps", {"run_id": f"r{k}", "seq": k})
        log.flush()
        done.append(k)

    threads = [threading.Thread(target=write, args=(k, log), daemon=True) for k, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(done) == [0, 1, 2], "the logs' first writes waited on each other"
    for log in logs:
        log.close()
    with open_reader(path) as con:
        assert con.execute("SELECT run_id FROM steps ORDER BY seq").fetchall() == [("r0",), ("r1",), ("r2",)]
