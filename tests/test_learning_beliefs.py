"""FinCon-style beliefs: `flowkit train` distils beliefs over training episodes and freezes the
last episode's; a backtest on a later window loads them, gives each only to the agents it
concerns, and decides differently than the same firm with beliefs off. Beliefs learned on a
window that overlaps the test window are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowkit.memory.conditions import parse_belief
from runtime_support import cli, rows

ROOT = Path(__file__).resolve().parents[1]
FINCON = str(ROOT / "workflows" / "fincon.yaml")
TEST_WINDOW = ["--start", "2024-01-02", "--end", "2024-03-28"]
AGENTS = {"manager", "technical", "fundamentals", "news", "sentiment"}


def latest_run(db: Path) -> str:
    return rows(db, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")[0][0]


def prompts(db: Path, run_id: str) -> list[tuple[str, str]]:
    """(agent, rendered prompt) of every model call of a run."""
    return [(agent, json.loads(request)["messages"][-1]["content"])
            for agent, request in rows(db, "SELECT agent, request FROM model_calls_full WHERE run_id = ?",
                                       run_id)]


@pytest.fixture(scope="module")
def learned(tmp_path_factory) -> dict:
    db = tmp_path_factory.mktemp("beliefs") / "log.duckdb"
    rc, trained = cli("train", FINCON, "--episodes", "4", "--db", str(db))
    assert rc == 0, trained
    runs = {}
    for name, extra in (("on", []), ("off", ["--set", "learning.beliefs.enabled=false"]),
                        ("manager_only", ["--set", "learning.beliefs.agents=[manager]"])):
        rc, text = cli("run", FINCON, *TEST_WINDOW, "--db", str(db), *extra)
        assert rc == 0, text
        runs[name] = latest_run(db)
        runs[f"{name}_stdout"] = text
    return {"db": db, "train_stdout": trained, **runs}


def test_training_logs_episodes_and_freezes_the_last(learned):
    db = learned["db"]
    train_runs = rows(db, "SELECT run_id, parent_run_id, status FROM runs WHERE mode = 'train' "
                          "ORDER BY started_at")
    assert len(train_runs) == 4 and all(status == "completed" for *_, status in train_runs)
    first = train_runs[0][0]
    assert [p for _, p, _ in train_runs] == [None, first, first, first]
    beliefs = rows(db, "SELECT run_id, episode, frozen, text, agents, condition, effect, evidence, "
                       "workflow FROM beliefs ORDER BY episode, belief_id")
    assert {b[0] for b in beliefs} == {first}  # filed under the training's first run
    assert {b[1] for b in beliefs} == {1, 2, 3, 4}
    assert all(b[2] == (b[1] == 4) for b in beliefs), "only the final episode is frozen"
    frozen = [b for b in beliefs if b[2]]
    assert frozen
    for _, _, _, text, agents, condition, effect, evidence, workflow in frozen:
        assert workflow == "fincon"
        evidence = json.loads(evidence)
        assert evidence["train_end"] == "2023-11-30" and evidence["episode"] == 4
        assert evidence["support"] >= 6
        agents = json.loads(agents)
        assert set(agents) <= AGENTS and "manager" in agents
        parse_belief({"text": text, "condition": json.loads(condition), "effect": json.loads(effect)})
    assert learned["train_stdout"].count("episode ") >= 4
    assert "frozen beliefs of training " + first in learned["train_stdout"]


def test_the_run_names_the_training_whose_beliefs_it_used(learned, tmp_path):
    from flowkit.report import write_report

    db = learned["db"]
    (training,), = rows(db, "SELECT DISTINCT run_id FROM beliefs WHERE frozen")
    (count,), = rows(db, "SELECT count(*) FROM beliefs WHERE frozen")
    used = f"{count} frozen beliefs of training run {training}"
    for name, says in (("on", used), ("off", "off (learning.beliefs is not enabled)")):
        run_id = learned[name]
        (config,), = rows(db, "SELECT config FROM runs WHERE run_id = ?", run_id)
        recorded = json.loads(config)["beliefs"]
        assert recorded["enabled"] == (name == "on")
        assert recorded["training_run"] == (training if name == "on" else None)
        header = learned[f"{name}_stdout"].split("\nmetric")[0]
        assert (f"beliefs: {says}" in header) == (name == "on")  # the header names them when on
        html = write_report(db, run_id, tmp_path / f"{name}.html").read_text()
        assert says in html
    # Beliefs on, but no training in this event log: the run says it has none.
    fresh = tmp_path / "fresh.duckdb"
    rc, text = cli("run", FINCON, "--start", "2024-01-02", "--end", "2024-01-10", "--db", str(fresh))
    assert rc == 0, text
    assert "beliefs: none: no frozen beliefs of this workflow" in text
    (config,), = rows(fresh, "SELECT config FROM runs")
    assert json.loads(config)["beliefs"] == {"enabled": True, "count": 0, "training_run": None}


def test_beliefs_change_decisions(learned):
    db = learned["db"]
    on, off = (rows(db, "SELECT symbol, as_of, action, size_pct FROM decisions WHERE run_id = ? "
                        "ORDER BY ALL", learned[k]) for k in ("on", "off"))
    assert len(on) == len(off) == 61
    assert [d[:2] for d in on] == [d[:2] for d in off]
    changed = [(a, b) for a, b in zip(on, off) if a[2:] != b[2:]]
    assert changed, "beliefs on and off decided exactly alike"
    applied = rows(db, "SELECT count(*) FROM decisions WHERE run_id = ? AND reasoning LIKE "
                       "'%beliefs applied%'", learned["on"])[0][0]
    assert applied > 0
    assert rows(db, "SELECT count(*) FROM decisions WHERE run_id = ? AND reasoning LIKE "
                    "'%beliefs applied%'", learned["off"])[0][0] == 0


def test_each_belief_reaches_only_the_agents_it_concerns(learned):
    db = learned["db"]
    frozen = [(text, set(json.loads(agents))) for text, agents in rows(
        db, "SELECT text, agents FROM beliefs WHERE frozen")]
    calls = prompts(db, learned["on"])
    ran = {agent for agent, _ in calls}
    assert ran == AGENTS
    for text, concerned in frozen:
        reached = {agent for agent, prompt in calls if text in prompt}
        assert reached == concerned, f"{text!r} reached {sorted(reached)}, concerns {sorted(concerned)}"
    assert any(len(c) < len(AGENTS) for _, c in frozen)  # the check above can tell them apart
    # With beliefs off, none reaches anyone.
    texts = [text for text, _ in frozen]
    assert not any(t in prompt for _, prompt in prompts(db, learned["off"]) for t in texts)


def test_learning_beliefs_agents_narrows_who_hears_them(learned):
    db = learned["db"]
    texts = [text for (text,) in rows(db, "SELECT text FROM beliefs WHERE frozen")]
    heard = {agent for agent, prompt in prompts(db, learned["manager_only"])
             if any(t in prompt for t in texts)}
    assert heard == {"manager"}


def test_memory_for_decision_routes_per_agent_and_caps_at_top_k():
    from flowkit.memory import Memory

    beliefs = [{"text": f"b{i}", "condition": None, "effect": {"bias": 0.1},
                "agents": ["manager", "technical"] if i % 2 else ["manager"]} for i in range(8)]
    memory = Memory("run", None, beliefs=beliefs, top_k=3)
    per_agent, lessons = memory.for_decision("AAPL", None)
    assert [b["text"] for b in per_agent["manager"]] == ["b0", "b1", "b2"]
    assert [b["text"] for b in per_agent["technical"]] == ["b1", "b3", "b5"]
    assert set(per_agent) == {"manager", "technical"} and lessons == {}


def test_beliefs_trained_on_an_overlapping_window_are_refused(tmp_path):
    db = tmp_path / "log.duckdb"
    overlap = ["--set", "learning.train.start=2023-10-02", "--set", "learning.train.end=2024-02-15"]
    # The file itself is checked: its training window must end before its backtest window.
    rc, text = cli("train", FINCON, "--episodes", "1", "--db", str(db), *overlap)
    assert rc == 1 and "the training window must end before the test window starts" in text
    # Moved out of the way, training runs; the beliefs remember where their window ended.
    rc, text = cli("train", FINCON, "--episodes", "1", "--db", str(db), *overlap,
                   "--set", "backtest.start=2024-03-01", "--set", "backtest.end=2024-03-28")
    assert rc == 0, text
    rc, text = cli("run", FINCON, *TEST_WINDOW, "--db", str(db))
    assert rc == 1
    assert "trained on a window ending 2024-02-15" in text and "2024-01-02" in text
    assert rows(db, "SELECT count(*) FROM decisions WHERE run_id NOT IN (SELECT run_id FROM runs "
                    "WHERE mode = 'train')")[0][0] == 0
    # A window that starts after the training ended is accepted.
    rc, text = cli("run", FINCON, "--start", "2024-02-20", "--end", "2024-03-01", "--db", str(db))
    assert rc == 0, text


# ---------------------------------------------------------------- routing by declared kind and focus


def test_market_beliefs_route_by_focus_and_reach_user_defined_analysts():
    from flowkit.memory.beliefs import distil

    # Every decision saw RSI above 70 and a bearish call from "technical"; prices then fell.
    features = {"market": {"indicators": {"rsi_14": 75.0}, "price": {}, "fundamentals":
                           {"latest": {"surprise_pct": 9.0}}},
                "outputs": {"technical": {"signal": "bearish", "score": -0.4}}, "signals": {}}
    trajectory = [{"features": features, "ret": -0.02, "signed": 0.0, "action": "HOLD"}] * 8
    analysts = {"technical": "fundamentals_analyst",   # an id that names another focus
                "chart": "technical_analyst", "books": "fundamentals_analyst",
                "headlines": "news_analyst", "regime": "regime_analyst"}
    found = {b["key"]: b["agents"] for b in distil(trajectory, analysts, "pm", 5, 1)}
    assert found["rsi_high"] == ["chart", "pm", "regime"]          # technical focus + no focus
    assert found["eps_beat"] == ["books", "pm", "regime", "technical"]  # fundamentals focus
    assert found["technical_bearish"] == ["pm", "technical"]        # the analyst whose call it is


def test_a_user_defined_analyst_is_trained_on_and_hears_its_beliefs(tmp_path):
    examples = ROOT / "workflows" / "examples"
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "regime_analyst.j2").write_text(
        (examples / "prompts" / "regime_analyst.j2").read_text())
    text = (examples / "custom_role.yaml").read_text()
    text = text[:text.index("backtest:")] + (
        "backtest: {start: 2024-01-02, end: 2024-01-31}\n"
        "learning:\n  beliefs: {enabled: true}\n  train: {start: 2023-06-01, end: 2023-11-30, "
        "episodes: 1}\n")
    firm = tmp_path / "custom.yaml"
    firm.write_text(text)
    db = tmp_path / "log.duckdb"
    rc, out = cli("train", str(firm), "--db", str(db))
    assert rc == 0, out
    frozen = [(t, set(json.loads(a)), json.loads(c))
              for t, a, c in rows(db, "SELECT text, agents, condition FROM beliefs")]
    market = [(t, agents) for t, agents, c in frozen if {"indicator", "price"} & set(c)]
    assert market, frozen
    assert all("regime" in agents and "flow" in agents for _, agents in market)
    rc, out = cli("run", str(firm), "--db", str(db))
    assert rc == 0, out
    run = latest_run(db)
    heard = [prompt for agent, prompt in prompts(db, run) if agent == "regime"]
    assert any(t in p for t, _ in market for p in heard)
    said = rows(db, "SELECT count(*) FROM steps WHERE run_id = ? AND agent = 'flow' AND "
                    "CAST(output AS VARCHAR) LIKE '%beliefs applied%'", run)[0][0]
    assert said > 0  # the offline model acted on them for the user-defined analyst
