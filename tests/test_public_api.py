"""The public API as a user's script uses it: `import flowkit` is cheap, then load a firm, take
a decision, run a backtest, replay it, read it back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from runtime_support import WORKFLOWS, last_bar_date

import flowkit
from flowkit.errors import DataError, SpecError

TA = WORKFLOWS / "tradingagents.yaml"
CRYPTO = WORKFLOWS / "crypto.yaml"


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWKIT_MODEL", "FLOWKIT_DEEP_MODEL", "FLOWKIT_DB", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_import_flowkit_loads_nothing_heavy() -> None:
    code = ("import sys, flowkit; heavy = ('numpy', 'pandas', 'duckdb', 'litellm', 'ccxt', "
            "'jinja2', 'pydantic', 'flowkit.app', 'flowkit.runtime'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_load_applies_overrides_and_reports_mistakes_with_their_location(tmp_path: Path) -> None:
    firm = flowkit.load(TA, overrides=["risk.max_position_pct=7"])
    assert firm.spec.name == "tradingagents" and firm.spec.risk.max_position_pct == 7
    broken = tmp_path / "firm.yaml"
    broken.write_text(TA.read_text().replace("max_position_pct:", "max_postion_pct:"))
    with pytest.raises(SpecError) as caught:
        flowkit.load(broken)
    assert str(caught.value).startswith(f"{broken}:") and "max_postion_pct" in str(caught.value)


def test_decide_then_read_the_run_back(tmp_path: Path) -> None:
    db = str(tmp_path / "log.duckdb")
    firm = flowkit.load(TA)
    day = last_bar_date("NVDA")
    outcome = flowkit.run(firm, symbols=["NVDA", "GOOGL"], date=day, db=db)
    assert outcome.status == "completed"
    assert [(d.symbol, d.as_of[:10]) for d in outcome.decisions] == [("GOOGL", day), ("NVDA", day)]
    run = flowkit.read_run(outcome.run_id, db=db)
    assert (run.mode, run.status, run.workflow) == ("decide", "completed", "tradingagents")
    assert [m.symbol for m in run.moments] == ["GOOGL", "NVDA"]
    for moment, decision in zip(run.moments, outcome.decisions):
        assert moment.decision["action"] == decision.action
        agents = [s["agent"] for s in moment.steps if s["pattern"] == "agent"]
        assert agents[-1] == "portfolio_manager" and len(agents) == 14


def test_a_weekly_crypto_backtest_replays_identically(tmp_path: Path) -> None:
    db = str(tmp_path / "log.duckdb")
    firm = flowkit.load(CRYPTO)
    seen = []

    from flowkit.app import Reporter

    class Watch(Reporter):  # progress callbacks, as a notebook would show them
        def progress(self, p):  # type: ignore[no-untyped-def]
            seen.append((p.done, p.total))

    outcome = flowkit.run(firm, start="2024-01-01", end="2024-03-31", every="1w", db=db,
                          reporter=Watch())
    assert outcome.status == "completed"
    assert outcome.metrics["decisions"] == len(flowkit.read_run(outcome.run_id, db=db).moments)
    assert seen[-1][0] == seen[-1][1] == len(outcome.equity) and 12 <= len(outcome.equity) <= 14
    assert set(outcome.baselines) >= {"buy_and_hold"}
    again = flowkit.replay(outcome.run_id, db=db)
    assert again.identical and again.provider_calls == 0 and again.outcome.run_id != outcome.run_id


def test_user_mistakes_raise_flowkit_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "log.duckdb")
    with pytest.raises(DataError, match="NOPE"):
        flowkit.run(TA, symbols=["NOPE"], db=db)
    with pytest.raises(flowkit.FlowkitError, match="--start and --end go together"):
        flowkit.run(TA, start="2024-01-02", db=db)
    with pytest.raises(flowkit.FlowkitError, match="no run nope"):
        flowkit.read_run("nope", db=db)
