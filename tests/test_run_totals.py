"""A backtest's metrics count its decisions, model calls, tokens and dollars exactly as its log
does. They are counted as the rows are appended (so the end of a run never waits for the log's
last commit to read them back), and must equal what the file says (RunStore.decision_count and
call_totals): with billed failures among the calls, on stocks and crypto, daily and weekly, and
after a failure and a resume, where the earlier attempts count too (superseded calls by their
cost only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from runtime_support import dicts, firm, without_ambient

from flowkit import app
from flowkit.backtest import loop as loop_mod
from flowkit.errors import ModelError
from flowkit.runtime.session import RunOptions, Session
from flowkit.spec.loader import load_workflow
from flowkit.store import RunStore
from flowkit.testing.fakeserver import FakeOpenAIServer, FaultStorm

FIRM = """
models:
  default: {{model: openai/gpt-4o-mini, api_base: "{base}", max_tokens: 200}}
agents: {{technical: {{role: technical_analyst}}, trader: {{role: trader}}}}
pipeline: [technical, trader]
market: {{symbols: [{symbols}], timeframe: 1d}}
"""


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    without_ambient(monkeypatch)


def backtest(path: Path, db: Path, symbols: list[str], **window: str) -> str:
    session = Session(load_workflow(path), RunOptions(db=str(db), symbols=symbols, mode="backtest",
                                                      cache="off"))
    try:
        return app.run_to_end(session, app.Invocation(symbols=symbols, **window)).run_id
    finally:
        session.close()


def counted(db: Path, run_id: str) -> tuple[dict, dict]:
    """(what the firm's metrics say, what the log's rows say)."""
    store = RunStore.open(db)
    (firm_row,) = [m["metrics"] for m in store.metrics(run_id) if m["strategy"] == "firm"]
    totals = store.call_totals(run_id)
    said = {k: firm_row[k] for k in ("decisions", "model_calls", "tokens_per_decision", "cost_usd")}
    per = max(store.decision_count(run_id), 1)
    logged = {"decisions": store.decision_count(run_id), "model_calls": totals.calls,
              "tokens_per_decision": (totals.prompt_tokens + totals.completion_tokens) / per,
              "cost_usd": totals.cost_usd}
    return said, logged


def same(said: dict, logged: dict) -> None:
    assert {k: v for k, v in said.items() if k != "cost_usd"} == \
        {k: v for k, v in logged.items() if k != "cost_usd"}
    assert said["cost_usd"] == pytest.approx(logged["cost_usd"], rel=1e-12)


@pytest.mark.parametrize("symbols,window", [
    (["AAPL", "MSFT"], {"start": "2024-03-04", "end": "2024-03-15"}),
    (["ETH-USDT", "NVDA"], {"start": "2024-02-01", "end": "2024-03-31", "every": "1w"}),
])
def test_the_metrics_count_what_the_log_holds_with_billed_failures(
        tmp_path: Path, symbols: list[str], window: dict[str, str]) -> None:
    db = tmp_path / "log.duckdb"
    with FakeOpenAIServer() as srv:
        storm = FaultStorm(0.3, seed=len(symbols[0]))
        srv.default(storm)
        run_id = backtest(firm(tmp_path, FIRM.format(base=srv.base_url, symbols=", ".join(symbols))),
                          db, symbols, **window)
    assert "EmptyChoices" in storm.drawn  # billed answers that failed are among the calls
    said, logged = counted(db, run_id)
    assert logged["cost_usd"] > 0 and logged["model_calls"] > logged["decisions"] > 0
    same(said, logged)


def test_a_resumed_run_counts_its_earlier_attempts(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    db, symbols = tmp_path / "log.duckdb", ["BTC-USDT", "AAPL"]
    window = {"start": "2024-01-01", "end": "2024-03-31", "every": "1w"}
    with FakeOpenAIServer() as srv:
        path = firm(tmp_path, FIRM.format(base=srv.base_url, symbols=", ".join(symbols)))
        real = loop_mod.Loop.decide

        async def decide(self, symbol, t, prices):  # AAPL's model stops answering on March 15,
            # after the checkpoint at March 4: March 8 and 11 are done again on resume
            if t >= np.datetime64("2024-03-11") and symbol == "AAPL":
                raise ModelError(f"injected failure at {t}")
            return await real(self, symbol, t, prices)

        with monkeypatch.context() as patch:
            patch.setattr(loop_mod.Loop, "decide", decide)
            patch.setattr(loop_mod, "CHECKPOINT_EVERY", 6)
            run_id = backtest(path, db, symbols, **window)
        store = RunStore.open(db)
        assert store.run(run_id)["status"] == "failed"
        spent_before = store.call_totals(run_id).cost_usd
        app.resume(run_id, str(db))
    [superseded] = dicts(db, "SELECT count(*) AS n, sum(cost_usd) AS cost FROM model_calls "
                             "WHERE run_id = ? AND superseded", [run_id])
    assert superseded["n"] > 0 and superseded["cost"] > 0  # the failed attempt's calls after
    said, logged = counted(db, run_id)                      # its last checkpoint
    same(said, logged)
    assert said["cost_usd"] > spent_before



def test_a_backtest_never_waits_for_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start, checkpoints, the end and the evaluation only ask the writer to commit: nothing on
    the run's thread blocks on the file (a slow disk slows the writer, never the run)."""
    from flowkit.store import eventlog

    waited: list[str] = []
    request = eventlog.EventLog._request
    monkeypatch.setattr(eventlog.EventLog, "_request",
                        lambda self, run: (waited.append("a blocking read or flush"), request(self, run))[1])
    db, symbols = tmp_path / "log.duckdb", ["MSFT", "ETH-USDT"]
    session = Session(load_workflow(firm(tmp_path, FIRM.format(base="http://127.0.0.1:9/v1",
                                                                symbols=", ".join(symbols)))),
                      RunOptions(db=str(db), symbols=symbols, mode="backtest", model="offline"))
    try:
        outcome = app.run_to_end(session, app.Invocation(symbols=symbols, start="2024-02-01",
                                                         end="2024-03-15"))
        assert outcome.status == "completed" and waited == []
        assert outcome.metrics["decisions"] > 0 and outcome.metrics["model_calls"] > 0
    finally:
        session.close()
    said, logged = counted(db, outcome.run_id)  # a read: it waits for the last commit
    same(said, logged)
