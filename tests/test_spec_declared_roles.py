"""What a role declares is what runs: a decision agent's output becomes an order, so a schema
without what an order needs (action, size_pct) is refused at validate, where the output is
written, instead of a firm that always HOLDs; a researcher argues the side it declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowkit.errors import SpecError
from flowkit.spec.loader import load_workflow

NEEDS = ("a decision needs action (BUY, SELL or HOLD) and size_pct (a number, % of equity), "
         "both required")
HEAD = ("version: 1\nname: t\nmarket: {symbols: [AAPL]}\nmodels: {default: {model: offline}}\n"
        "roles:\n  desk_role:\n    kind: KIND\n    prompt: {inline: 'Decide {{ symbol }}.'}\n"
        "    output: OUTPUT\n")
ORDER = ("{type: object, required: [action, size_pct], properties: {action: {enum: [buy, sell, "
         "hold]}, size_pct: {type: number}}}")


def problems(tmp_path: Path, kind: str, output: str, rest: str) -> list[str]:
    path = tmp_path / "firm.yaml"
    path.write_text(HEAD.replace("KIND", kind).replace("OUTPUT", output) + rest)
    try:
        load_workflow(path, env={})
    except SpecError as exc:
        return [f"{p.location.line}:{p.location.col}: {p.message}" for p in exc.problems]
    return []


ALONE = "agents: {desk: {role: desk_role}}\npipeline: [desk]\n"
AFTER_TA = ("agents: {tech: {role: technical_analyst}, desk: {role: desk_role}}\n"
            "pipeline: [tech, desk]\ndecision: desk\n")


@pytest.mark.parametrize("kind", ["trader", "decider", "manager"])
@pytest.mark.parametrize("output, problem", [
    ("{type: object, properties: {signal: {type: string}}}", "has no action or size_pct"),
    ("{type: object, required: [action], properties: {action: {type: string}, size_pct: "
     "{type: number}}}", "does not require size_pct"),
    ("{type: object, required: [action, size_pct], properties: {action: {enum: [LONG, FLAT]}, "
     "size_pct: {type: number}}}", "allows action 'LONG'"),
    ("{type: object, required: [action, size_pct], properties: {action: {type: string}, "
     "size_pct: {type: string}}}", "declares size_pct of type string"),
    ("analyst_report", "has no action or size_pct"),
])
@pytest.mark.parametrize("rest", [ALONE, AFTER_TA], ids=["implicit", "declared"])
def test_an_output_that_cannot_carry_an_order_is_refused(tmp_path, kind, output, problem, rest):
    assert problems(tmp_path, kind, output, rest) == [
        f"9:13: agent 'desk' makes the decision, but its output {problem}; {NEEDS}"]


@pytest.mark.parametrize("kind", ["trader", "decider", "manager"])
def test_an_output_with_action_and_size_is_accepted(tmp_path, kind):
    assert problems(tmp_path, kind, ORDER, ALONE) == []
    assert problems(tmp_path, kind, "trade_proposal", AFTER_TA) == []


def test_an_agent_level_override_is_checked_where_it_is_written(tmp_path):
    rest = ("agents:\n  desk: {role: trader, output: {type: object, properties: {action: "
            "{type: string}}}}\npipeline: [desk]\n")
    assert problems(tmp_path, "trader", ORDER, rest) == [
        f"11:32: agent 'desk' makes the decision, but its output has no size_pct; {NEEDS}"]


def test_only_the_decision_agent_needs_an_order(tmp_path):
    rest = ("agents: {desk: {role: desk_role}, pm: {role: portfolio_manager}}\n"
            "pipeline: [desk, pm]\n")
    assert problems(tmp_path, "trader", "analyst_report", rest) == []


@pytest.mark.parametrize("kind, stance, expected", [
    ("researcher", "neutral", "bull or bear"),
    ("risk", "bear", "aggressive, conservative or neutral"),
    ("trader", "bull", "aggressive, conservative or neutral"),
])
def test_a_stance_that_does_not_fit_the_kind_is_refused(tmp_path, kind, stance, expected):
    rest = (f"agents:\n  other: {{role: desk_role, stance: {stance}}}\n  desk: {{role: trader}}\n"
            "pipeline: [other, desk]\n")
    assert problems(tmp_path, kind, ORDER, rest) == [
        f"11:36: agent 'other' is of kind {kind}: its stance is {expected}, not '{stance}'"]


@pytest.mark.parametrize("kind, stance", [("researcher", "bear"), ("researcher", "bull"),
                                          ("risk", "conservative")])
def test_a_stance_that_fits_the_kind_is_accepted(tmp_path, kind, stance):
    rest = (f"agents:\n  other: {{role: desk_role, stance: {stance}}}\n  desk: {{role: trader}}\n"
            "pipeline: [other, desk]\n")
    assert problems(tmp_path, kind, ORDER, rest) == []


def test_every_built_in_decision_role_answers_with_an_order():
    from flowkit.roles.outputs import output_json_schema
    from flowkit.roles.registry import BUILTIN_ROLES, DECISION_KINDS
    from flowkit.domain.decision import order_problem

    deciders = [info for info in BUILTIN_ROLES.values() if info.kind in DECISION_KINDS]
    assert deciders
    assert all(order_problem(output_json_schema(info.output)) is None for info in deciders)
    assert order_problem(output_json_schema("analyst_report")) == "has no action or size_pct"
