"""The EventSink contract, run against every sink: the DuckDB event log, the memory sink and
the null sink (which accepts everything and keeps nothing)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from flowkit.errors import RunNotFound, StoreError
from flowkit.store import EventLog, EventSink, MemorySink, NullSink, RunStore
from flowkit.store.runstore import CallTotals, RunTally

T0 = datetime(2024, 3, 4, 21, 0)
DAY = timedelta(days=1)


@pytest.fixture(params=["eventlog", "memory", "null"])
def sink(request, tmp_path):
    made = {"eventlog": lambda: EventLog(tmp_path / "log.duckdb", flush_interval=3600,
                                         max_buffer_rows=10**9),
            "memory": MemorySink, "null": NullSink}[request.param]()
    yield made
    made.close()


def keeps(sink: EventSink) -> bool:
    return not isinstance(sink, NullSink)


def unflushed_reader(sink: EventSink) -> RunStore:
    """A reader that does not flush first: for the file, another process's view of it."""
    return RunStore.open(sink.path) if isinstance(sink, EventLog) else sink.reader()


def a_run(sink: EventSink, run_id: str = "r1", **fields) -> None:
    sink.append("runs", {"run_id": run_id, "workflow_name": "tradingagents", "mode": "backtest",
                         "status": "running", "started_at": T0, "config": {"market": {"symbols": ["AAPL"]}},
                         **fields})


def test_every_sink_is_an_event_sink(sink):
    assert isinstance(sink, EventSink)


def test_rows_round_trip_typed(sink):
    a_run(sink)
    aware = datetime(2024, 3, 4, 16, 0, tzinfo=timezone(timedelta(hours=-5)))  # 21:00 UTC
    sink.append("decisions", {"run_id": "r1", "symbol": "AAPL", "as_of": aware, "agent": "trader",
                              "action": "BUY", "size_pct": np.float64(5), "confidence": 0.75,
                              "reasoning": "momentum ✓"})
    sink.append("steps", {"run_id": "r1", "seq": np.int64(0), "step_id": "analysts/tech",
                          "symbol": "AAPL", "as_of": T0, "agent": "tech", "pattern": "agent",
                          "status": "ok", "output": {"signal": "bullish", "score": 0.4}})
    sink.append("fills", {"run_id": "r1", "fill_id": "f1", "order_id": "o1", "symbol": "AAPL",
                          "time": T0 + DAY, "side": "buy", "quantity": 3, "price": 101.5, "fee": 0.1})
    sink.append("portfolio", {"run_id": "r1", "time": T0, "cash": 1e5, "equity": 1e5,
                              "positions": {"AAPL": {"qty": 3}}})
    sink.append("metrics", {"run_id": "r1", "strategy": "firm", "symbol": None,
                            "metrics": {"sharpe": float("nan"), "equity": [["2024-03-04T21:00:00Z", 1e5]]}})
    sink.append("model_calls", {"run_id": "r1", "call_id": "c1", "model": "gpt-4o-mini",
                                "prompt_tokens": 120, "completion_tokens": 30, "cost_usd": 0.002,
                                "cached": False, "response": "123"})
    store = sink.reader()
    if not keeps(sink):
        assert store.decisions("r1") == [] and store.snapshots("r1") == []
        with pytest.raises(RunNotFound, match="no run r1 in"):
            store.run("r1")
        return
    run = store.run("r1")
    assert (run["status"], run["started_at"], run["config"]) == ("running", T0, {"market": {"symbols": ["AAPL"]}})
    [d] = store.decisions("r1")
    assert (d["as_of"], d["action"], d["size_pct"], d["confidence"], d["reasoning"], d["entry"]) == \
        (T0, "BUY", 5.0, 0.75, "momentum ✓", None)
    [s] = store.steps("r1")
    assert (s["seq"], s["output"]) == (0, {"signal": "bullish", "score": 0.4})
    [f] = store.fills("r1")
    assert (f["time"], f["quantity"], f["price"], f["slippage"]) == (T0 + DAY, 3.0, 101.5, None)
    [p] = store.snapshots("r1")
    assert p["positions"] == {"AAPL": {"qty": 3}}
    [m] = store.metrics("r1")
    assert m["metrics"] == {"sharpe": None, "equity": [["2024-03-04T21:00:00Z", 1e5]]}  # NaN: null
    [c] = store.model_calls("r1")
    assert c["response"] == "123"  # text stays text
    totals = store.call_totals("r1")
    assert (totals.calls, totals.prompt_tokens, totals.cost_usd, totals.models) == \
        (1, 120, 0.002, ("gpt-4o-mini",))
    assert store.decision_count("r1") == 1 and store.decisions("other") == []


def test_a_reader_sees_every_row_appended_before_each_read(sink):
    a_run(sink)
    store = sink.reader()
    assert len(store.steps("r1")) == 0
    for i in range(5):
        sink.append("steps", {"run_id": "r1", "seq": i, "as_of": T0})
    assert len(store.steps("r1")) == (5 if keeps(sink) else 0)  # the same reader, no flush()
    assert store.last_step_seq("r1") == (4 if keeps(sink) else -1)


def test_checkpoint_makes_everything_before_it_readable(sink):
    a_run(sink)
    for k in range(3):
        for i in range(10):
            sink.append("steps", {"run_id": "r1", "seq": k * 10 + i, "as_of": T0 + k * DAY})
        sink.checkpoint("r1", k, T0 + k * DAY, {"cash": 100.0 - k, "cursor": k})
    sink.append("steps", {"run_id": "r1", "seq": 99, "as_of": T0 + 9 * DAY})  # after the last one
    store = unflushed_reader(sink)
    cp = store.last_checkpoint("r1")
    if not keeps(sink):
        assert cp is None
        return
    assert (cp["seq"], cp["as_of"], cp["state"]) == (2, T0 + 2 * DAY, {"cash": 98.0, "cursor": 2})
    assert [s["seq"] for s in store.steps("r1")][:30] == list(range(30))
    assert store.last_checkpoint("nope") is None


def test_update_run_applies_after_the_rows_before_it(sink):
    a_run(sink)
    sink.update_run("r1", status="completed", finished_at=T0 + DAY, error=None)
    sink.update_run("ghost", status="completed")  # no such run: nothing is created
    store = sink.reader()
    if not keeps(sink):
        assert store.runs() == []
        return
    run = store.run("r1")
    assert (run["status"], run["finished_at"], run["workflow_name"]) == ("completed", T0 + DAY, "tradingagents")
    assert [r.run_id for r in store.runs()] == ["r1"]


def test_discard_after_drops_only_that_runs_later_rows(sink):
    for run_id in ("r1", "r2"):
        a_run(sink, run_id)
        for k in range(4):
            t = T0 + k * DAY
            sink.append("decisions", {"run_id": run_id, "symbol": "AAPL", "as_of": t, "action": "HOLD"})
            sink.append("fills", {"run_id": run_id, "fill_id": f"f{k}", "symbol": "AAPL", "time": t,
                                  "side": "buy", "quantity": 1, "price": 1.0})
            sink.append("portfolio", {"run_id": run_id, "time": t, "equity": 100.0 + k})
            sink.append("model_calls", {"run_id": run_id, "call_id": f"c{k}", "as_of": t,
                                        "model": "m", "prompt_tokens": 10, "cost_usd": 0.5})
    gone = sink.discard_after("r1", T0 + DAY)
    store = sink.reader()
    if not keeps(sink):
        assert gone == 0
        return
    assert gone == 3 * 2 + 2  # decisions, fills, snapshots at days 2 and 3 deleted; calls marked
    assert [d["as_of"] for d in store.decisions("r1")] == [T0, T0 + DAY]
    assert [p["equity"] for p in store.snapshots("r1")] == [100.0, 101.0]
    assert len(store.fills("r2")) == 4 and store.run("r1")["status"] == "running"
    # the calls the resume will redo stay on record: not in the result, their cost counted
    assert [(c["call_id"], c["superseded"]) for c in store.model_calls("r1")] == \
        [("c0", None), ("c1", None), ("c2", True), ("c3", True)]
    totals = store.call_totals("r1")
    assert (totals.calls, totals.prompt_tokens, totals.cost_usd) == (2, 20, 2.0)
    assert store.tally("r1").decisions == 2 and store.tally("r1").totals() == totals  # resume's start
    assert store.call_totals("r2").calls == 4


@pytest.mark.parametrize("bad", [None, "not a time", 3.5])
def test_discard_after_needs_a_time(sink, bad):
    with pytest.raises(StoreError, match="discard_after"):
        sink.discard_after("r1", bad)


@pytest.mark.parametrize(("table", "row", "names"), [
    ("no_such_table", {"run_id": "r"}, "unknown table 'no_such_table'"),
    ("steps", {"run_id": "r", "colour": "red"}, "no column 'colour'"),
    ("steps", {"run_id": "r", "seq": "seven"}, r"steps\.seq \(BIGINT\)"),
    ("fills", {"run_id": "r", "time": "yesterday"}, r"fills\.time \(TIMESTAMP\)"),
])
def test_a_keeping_sink_rejects_bad_rows_at_append(sink, table, row, names):
    if not keeps(sink):
        sink.append(table, row)  # the null sink checks nothing: it is the cost-free baseline
        return
    with pytest.raises(StoreError, match=names):
        sink.append(table, row)
    a_run(sink)  # the sink still works, and kept nothing of the bad row
    assert [r.run_id for r in sink.reader().runs()] == ["r1"]
    assert sink.reader().steps("r") == []


def test_model_cache_round_trip(sink):
    payload = {"content": "{\"action\": \"BUY\"}", "usage": {"prompt_tokens": 10}, "cost": 0.5}
    assert sink.cache_get("k1") is None
    sink.cache_put("k1", "gpt-4o-mini", payload)
    if not keeps(sink):
        assert sink.cache_get("k1") is None
        return
    got = sink.cache_get("k1")
    assert got == payload and got is not sink.cache_get("k1")  # each get is a fresh object
    sink.flush()
    assert sink.cache_get("missing") is None


def test_close_twice_then_writes_fail_and_reads_still_work(sink):
    a_run(sink)
    sink.close()
    sink.close()
    sink.flush()  # nothing left to flush: harmless
    with pytest.raises(StoreError, match="closed"):
        sink.append("steps", {"run_id": "r1", "seq": 1})
    with pytest.raises(StoreError, match="closed"):
        sink.checkpoint("r1", 0, T0, {})
    assert [r.run_id for r in sink.reader().runs()] == (["r1"] if keeps(sink) else [])


def test_with_block_closes(tmp_path):
    for made in (EventLog(tmp_path / "w.duckdb"), MemorySink(), NullSink()):
        with made as sink:
            a_run(sink)
        with pytest.raises(StoreError, match="closed"):
            made.append("runs", {"run_id": "late"})


def test_memory_sink_rows_are_queryable_as_stored():
    sink = MemorySink()
    a_run(sink, "r1")
    a_run(sink, "r2", mode="decide")
    sink.append("steps", {"run_id": "r1", "seq": 0, "output": {"a": 1}})
    assert [r["run_id"] for r in sink.rows("runs", mode="decide")] == ["r2"]
    [step] = sink.rows("steps")
    assert step["output"] == '{"a":1}'  # as the file holds it: JSON text
    step["seq"] = 42  # a copy: the sink is not changed through it
    assert sink.rows("steps")[0]["seq"] == 0


@pytest.mark.parametrize("make", [MemorySink, NullSink], ids=["memory", "null"])
def test_a_backtest_runs_on_any_sink_with_the_same_result(tmp_path, make):
    """The runtime needs nothing beyond the protocol: a weekly crypto backtest on a memory or
    null sink ends exactly as on the DuckDB file, and the memory sink holds the same rows."""
    from flowkit.app import Invocation, run_to_end
    from flowkit.runtime.session import RunOptions, Session
    from flowkit.spec.loader import load_workflow

    loaded = load_workflow(Path(__file__).resolve().parents[1] / "workflows" / "fincon.yaml")
    inv = Invocation(symbols=["ETH-USDT"], start="2024-02-05", end="2024-04-29", every="1w")

    def run(log):
        session = Session(loaded, RunOptions(db=str(tmp_path / "log.duckdb"), symbols=["ETH-USDT"],
                                             mode="backtest"), log=log)
        try:
            return session, run_to_end(session, inv)
        finally:
            session.close()

    file_session, on_file = run(None)
    sink = make()
    other_session, on_sink = run(sink)
    assert on_file.status == on_sink.status == "completed"
    assert on_sink.equity == on_file.equity and len(on_file.equity) >= 12
    assert [(d.symbol, d.action, d.size_pct) for d in on_sink.decisions] == \
        [(d.symbol, d.action, d.size_pct) for d in on_file.decisions]
    if isinstance(sink, MemorySink):
        file_rows = RunStore.open(file_session.db_path)
        mem_rows = sink.reader()
        for read in ("decisions", "fills", "snapshots", "risk_reviews"):
            strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_id")}  # noqa: E731
                                  for r in rows]  # ids hash the run id
            expected = strip(getattr(file_rows, read)(file_session.run_id))
            assert expected and strip(getattr(mem_rows, read)(other_session.run_id)) == expected, read
        assert mem_rows.run(other_session.run_id)["status"] == "completed"


def test_a_tally_of_appended_rows_counts_as_the_log_does(sink):
    """RunTally (what a run's metrics count, without reading its log back) follows the rules
    of decision_count and call_totals: result calls only, cached ones, missing tokens and
    costs as 0, distinct models sorted, and a superseded call's cost but not the call."""
    rows = [("decisions", {"symbol": "AAPL", "as_of": T0}),
            ("decisions", {"symbol": "MSFT", "as_of": T0}),
            ("model_calls", {"call_id": "a", "model": "gpt-4o-mini", "prompt_tokens": 120,
                             "completion_tokens": 30, "cost_usd": 0.25, "cached": False}),
            ("model_calls", {"call_id": "b", "model": "claude-3-haiku", "prompt_tokens": None,
                             "completion_tokens": 5, "cost_usd": None, "cached": True}),
            ("model_calls", {"call_id": "c", "model": None, "error": "timed out"}),
            ("model_calls", {"call_id": "d", "model": "gpt-4o-mini", "prompt_tokens": 7,
                             "cost_usd": 0.5, "superseded": True}),
            ("steps", {"seq": 0, "as_of": T0})]
    tally = RunTally()
    for table, row in rows:
        sink.append(table, {"run_id": "r1", **row})
        tally.add(table, row)
    if not keeps(sink):
        return
    store = sink.reader()
    assert tally.decisions == store.decision_count("r1") == 2
    assert tally.totals() == store.call_totals("r1") == \
        CallTotals(calls=3, cached=1, prompt_tokens=120, completion_tokens=35, cost_usd=0.75,
                   models=("claude-3-haiku", "gpt-4o-mini"))
