"""TradingAgents-style reflection: a lesson about a decision is written only once its outcome
is known (`learning.reflection.horizon` bars later, never earlier) and reaches only the agents
`learning.reflection.agents` names, on decisions after it was learned."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from runtime_support import cli, rows

ROOT = Path(__file__).resolve().parents[1]
TA = str(ROOT / "workflows" / "tradingagents.yaml")
WINDOW = ["--start", "2024-01-02", "--end", "2024-03-28"]
CONFIGURED = {"bull", "bear", "trader", "research_manager", "portfolio_manager"}  # in the YAML
HORIZON = 5


def run(db: Path, *extra: str) -> str:
    rc, text = cli("run", TA, *WINDOW, "--db", str(db), *extra)
    assert rc == 0, text
    return rows(db, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")[0][0]


@pytest.fixture(scope="module")
def reflected(tmp_path_factory) -> dict:
    db = tmp_path_factory.mktemp("reflection") / "log.duckdb"
    return {"db": db, "default": run(db),
            "trader_only": run(db, "--set", "learning.reflection.agents=[trader]")}


def lesson_prompts(db: Path, run_id: str, texts: list[str]) -> list[tuple[str, object, str]]:
    """(agent, as_of, lesson text) for every lesson quoted in a prompt of the run."""
    found = []
    for agent, as_of, request in rows(db, "SELECT agent, as_of, request FROM model_calls_full "
                                          "WHERE run_id = ?", run_id):
        prompt = json.loads(request)["messages"][-1]["content"]
        found += [(agent, as_of, t) for t in texts if t in prompt]
    return found


def test_lessons_are_written_exactly_when_the_outcome_is_known(reflected):
    db, run_id = reflected["db"], reflected["default"]
    with open(ROOT / "flowkit" / "market" / "sample" / "ohlcv" / "AAPL.csv") as fh:
        bars = [(r["date"], float(r["close"])) for r in csv.DictReader(fh)]
    dates = [d for d, _ in bars]
    decision_time = {as_of.date().isoformat(): as_of for (as_of,) in rows(
        db, "SELECT DISTINCT as_of FROM decisions WHERE run_id = ?", run_id)}
    lessons = rows(db, "SELECT symbol, decided_at, as_of, agents, text, outcome_pct FROM lessons "
                       "WHERE run_id = ? ORDER BY as_of", run_id)
    assert len(lessons) >= 10
    for symbol, decided_at, learned_at, agents, text, outcome in lessons:
        assert symbol == "AAPL"
        i = dates.index(decided_at.date().isoformat())
        outcome_day = dates[i + HORIZON]
        # Learned at the decision time of the outcome bar's session: not before, not later.
        assert learned_at == decision_time[outcome_day], (decided_at, learned_at, outcome_day)
        move = 100 * (bars[i + HORIZON][1] / bars[i][1] - 1)
        assert f"{move:+.1f}%" in text
        assert abs(outcome) == pytest.approx(abs(move), abs=1e-6)
        assert set(json.loads(agents)) == CONFIGURED
    # Decisions in the last HORIZON sessions of the window have no outcome yet: no lesson.
    last_known = sorted(decision_time)[-HORIZON - 1]
    assert max(d.date().isoformat() for _, d, *_ in lessons) <= last_known


def test_lessons_reach_only_the_configured_agents_and_only_later(reflected):
    db = reflected["db"]
    for key, agents in (("default", CONFIGURED), ("trader_only", {"trader"})):
        run_id = reflected[key]
        learned = dict(rows(db, "SELECT text, as_of FROM lessons WHERE run_id = ?", run_id))
        quoted = lesson_prompts(db, run_id, list(learned))
        assert quoted, f"{key}: no lesson reached any prompt"
        assert {agent for agent, _, _ in quoted} == agents
        for agent, as_of, text in quoted:
            assert as_of > learned[text], f"{agent} read a lesson at {as_of} learned at {learned[text]}"
        heard = {a for (a,) in rows(db, "SELECT DISTINCT agent FROM model_calls_full WHERE run_id = ? AND "
                                        "request LIKE '%Lessons from earlier decisions%'", run_id)}
        assert heard == agents
