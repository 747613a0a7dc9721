"""A run that fails mid-way and is resumed ends with the truth: its metrics equal an uninterrupted
run's (in the table, the report and the CLI), its log never holds a fill without its order, and
the run history keeps the failure, superseded rather than deleted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowkit import app
from flowkit.backtest import loop as loop_mod
from flowkit.errors import ModelError
from flowkit.runtime.session import RunOptions, Session
from flowkit.spec.loader import load_workflow
from flowkit.store import RunStore
from runtime_support import rows

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ["BTC-USDT", "ETH-USDT"]
INV = dict(symbols=SYMBOLS, start="2024-01-01", end="2024-06-30", every="1w")


def backtest(db: Path) -> str:
    loaded = load_workflow(ROOT / "workflows" / "fincon.yaml")
    session = Session(loaded, RunOptions(db=str(db), symbols=SYMBOLS, mode="backtest"))
    try:
        return app.run_to_end(session, app.Invocation(**INV)).run_id
    finally:
        session.close()


def failing_at(monkeypatch, day: str) -> None:
    """Decisions from `day` on raise, as a model that stopped answering would; a checkpoint every
    two decision times."""
    real = loop_mod.Loop.decide
    fail_from = np.datetime64(day)

    async def decide(self, symbol, t, prices):
        if t >= fail_from:
            raise ModelError(f"injected failure at {t} for {symbol}")
        return await real(self, symbol, t, prices)

    monkeypatch.setattr(loop_mod.Loop, "decide", decide)
    monkeypatch.setattr(loop_mod, "CHECKPOINT_EVERY", 2)


def metrics(db: Path, run_id: str) -> list[tuple]:
    return [(m["strategy"], m["symbol"], m["metrics"]) for m in RunStore.open(db).metrics(run_id)]


def orphan_fills(db: Path, run_id: str) -> list[tuple]:
    return rows(db, "SELECT fill_id FROM fills f WHERE run_id = ? AND NOT EXISTS "
                    "(SELECT 1 FROM orders o WHERE o.run_id = f.run_id AND o.order_id = f.order_id)", run_id)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    db = tmp_path_factory.mktemp("full") / "log.duckdb"
    return db, backtest(db)


@pytest.mark.parametrize("day", ["2024-01-22", "2024-03-18", "2024-06-10"])
def test_a_failed_run_resumed_ends_with_the_uninterrupted_truth(tmp_path, monkeypatch, uninterrupted, day):
    full_db, full_id = uninterrupted
    db = tmp_path / "log.duckdb"
    with monkeypatch.context() as patch:
        failing_at(patch, day)
        run_id = backtest(db)
    (status, error), = rows(db, "SELECT status, error FROM runs WHERE run_id = ?", run_id)
    assert status == "failed" and "injected failure" in error
    assert orphan_fills(db, run_id) == [], "a fill without its order at the failure point"
    partial = metrics(db, run_id)
    assert partial and partial != metrics(full_db, full_id)  # the failed window's own figures

    resumed = app.resume(run_id, str(db))
    assert metrics(db, run_id) == metrics(full_db, full_id)
    # what the CLI prints (the outcome) is what the table holds
    (firm,) = [m for strategy, _, m in metrics(db, run_id) if strategy == "firm"]
    assert {k: v for k, v in firm.items() if k != "equity"} == resumed.outcome.metrics
    assert orphan_fills(db, run_id) == []
    history = RunStore.open(db).history(run_id)
    assert [(h["event"], h["superseded"]) for h in history] == \
        [("started", True), ("failed", True), ("resumed", None), ("completed", None)]
    assert "injected failure" in history[1]["reason"] and "failed" in history[2]["reason"]

    # the report reads the table: the same figures as the uninterrupted run's
    pages = []
    for where, rid in [(db, run_id), (full_db, full_id)]:
        out = tmp_path / rid / "report.html"
        done = subprocess.run([sys.executable, "-m", "flowkit.cli", "report", rid, "--db", str(where),
                               "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        # its first table: the metrics of the firm and the baselines
        pages.append(re.findall(r"<table.*?</table>", out.read_text(), flags=re.S)[0])
    assert pages[0] == pages[1] and "Sharpe" in pages[0]
