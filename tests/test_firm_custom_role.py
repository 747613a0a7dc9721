"""A user-written firm, no Python: workflows/examples/custom_role.yaml defines two new analyst
roles (one with a prompt file, one inline, each with its own inline JSON Schema output) and
nests patterns (a sequence inside a parallel inside the sequence before the debate). It
validates, runs end to end, and the new roles' outputs flow to the agents after them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from runtime_support import cli, rows

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflows" / "examples" / "custom_role.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    db = tmp_path_factory.mktemp("custom") / "log.duckdb"
    rc, text = cli("run", str(WORKFLOW), "--start", "2024-01-02", "--end", "2024-02-29", "--db", str(db))
    assert rc == 0, text
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    return {"db": db, "run_id": run_id, "stdout": text}


def test_the_firm_is_yaml_and_templates_only():
    spec = yaml.safe_load(WORKFLOW.read_text())
    new_roles = {"regime_analyst", "flow_analyst"}
    assert new_roles <= set(spec["roles"])
    from flowkit.roles.registry import BUILTIN_ROLES

    assert not new_roles & set(BUILTIN_ROLES)
    assert spec["roles"]["regime_analyst"]["prompt"] == "prompts/regime_analyst.j2"
    assert (WORKFLOW.parent / "prompts" / "regime_analyst.j2").is_file()
    assert "inline" in spec["roles"]["flow_analyst"]["prompt"]
    assert not list((ROOT / "workflows").rglob("*.py"))
    rc, text = cli("validate", str(WORKFLOW))
    assert rc == 0, text


def test_new_roles_answer_in_their_own_schema(run):
    spec = yaml.safe_load(WORKFLOW.read_text())
    db, run_id = run["db"], run["run_id"]
    dates = rows(db, "SELECT count(DISTINCT as_of) FROM decisions WHERE run_id = ?", run_id)[0][0]
    assert dates == 41  # NYSE sessions 2024-01-02 .. 2024-02-29
    for agent, role in (("regime", "regime_analyst"), ("flow", "flow_analyst")):
        outputs = rows(db, "SELECT role, output FROM steps WHERE run_id = ? AND agent = ? AND "
                           "status = 'ok'", run_id, agent)
        assert len(outputs) == dates
        schema = spec["roles"][role]["output"]
        for got_role, output in outputs:
            assert got_role == role
            jsonschema.validate(json.loads(output), schema)
        # What the model was told to answer: the inline schema, verbatim, in the system message.
        request = json.loads(rows(db, "SELECT request FROM model_calls_full WHERE run_id = ? AND agent = ? "
                                      "LIMIT 1", run_id, agent)[0][0])
        assert json.dumps(schema, separators=(",", ":")) in request["messages"][0]["content"]
    # The prompt file is the one rendered, with the agent's params.
    regime_prompt = json.loads(rows(db, "SELECT request FROM model_calls_full WHERE run_id = ? AND "
                                        "agent = 'regime' LIMIT 1", run_id)[0][0])["messages"][1]["content"]
    assert regime_prompt.startswith("Market regime brief: MSFT")
    assert "about 10 trading days" in regime_prompt


def test_patterns_nest_as_written(run):
    db, run_id = run["db"], run["run_id"]
    first = rows(db, "SELECT min(as_of) FROM steps WHERE run_id = ?", run_id)[0][0]
    steps = [r[0] for r in rows(db, "SELECT step_id FROM steps WHERE run_id = ? AND as_of = ? "
                                    "ORDER BY seq", run_id, first)]
    for path in ("research/desk/technical", "research/desk/regime_then_flow/regime",
                 "research/desk/regime_then_flow/flow", "research/desk/regime_then_flow",
                 "research/desk", "research/research_debate/r1/bull",
                 "research/research_debate/r2/bear", "research/research_debate", "research",
                 "trader", "portfolio_manager"):
        assert path in steps, path
    # Inside the parallel branch, regime finishes before flow starts (a sequence) ...
    assert steps.index("research/desk/regime_then_flow/regime") < \
        steps.index("research/desk/regime_then_flow/flow")
    # ... and the whole desk before the debate that follows it.
    assert steps.index("research/desk") < steps.index("research/research_debate/r1/bull")
    patterns = dict(rows(db, "SELECT step_id, pattern FROM steps WHERE run_id = ? AND as_of = ?",
                         run_id, first))
    assert patterns["research"] == "sequential" and patterns["research/desk"] == "parallel"
    assert patterns["research/desk/regime_then_flow"] == "sequential"
    assert patterns["research/research_debate"] == "debate"


def test_new_roles_feed_the_agents_after_them(run):
    db, run_id = run["db"], run["run_id"]
    for as_of, regime, prompt in rows(
            db, "SELECT s.as_of, s.output, c.request FROM steps s JOIN model_calls_full c "
                "ON c.run_id = s.run_id AND c.as_of = s.as_of AND c.agent = 'flow' "
                "WHERE s.run_id = ? AND s.agent = 'regime'", run_id):
        regime = json.loads(regime)
        flow_prompt = json.loads(prompt)["messages"][1]["content"]
        assert (f"The regime analyst calls it {regime['regime']} ({regime['signal']}, "
                f"score {regime['score']})") in flow_prompt, as_of
    # The bull researcher counts both new analysts' reports among the desk's.
    bull = [json.loads(o) for (o,) in rows(db, "SELECT output FROM steps WHERE run_id = ? AND "
                                               "agent = 'bull'", run_id)]
    assert all("regime" in b["argument"] and "flow" in b["argument"] for b in bull)


def test_custom_firm_trades_and_the_risk_check_runs_only_on_trades(run):
    db, run_id = run["db"], run["run_id"]
    assert rows(db, "SELECT count(*) FROM fills WHERE run_id = ?", run_id)[0][0] > 0
    by_date = rows(db, "SELECT t.as_of, t.output->>'$.action', r.status FROM steps t "
                       "JOIN steps r ON r.run_id = t.run_id AND r.as_of = t.as_of "
                       "AND r.step_id = 'risk_manager' WHERE t.run_id = ? AND t.step_id = 'trader'",
                   run_id)
    assert by_date and {a for _, a, _ in by_date} >= {"BUY", "HOLD"}
    for as_of, action, status in by_date:
        assert status == ("skipped" if action == "HOLD" else "ok"), (as_of, action, status)
    assert "final equity" in run["stdout"]
