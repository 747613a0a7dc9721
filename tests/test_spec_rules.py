"""Semantic checks the one-defect fixtures cannot show: very large firms, several defects at
once (each said once), and what `when:` may read."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowkit.errors import SpecError
from flowkit.spec.loader import load_workflow

HEAD = "version: 1\nname: t\nmarket: {symbols: [AAPL]}\n"


def problems(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "firm.yaml"
    path.write_text(HEAD + body)
    try:
        load_workflow(path, env={})
    except SpecError as exc:
        return [f"{p.location.line}:{p.location.col}: {p.message}" for p in exc.problems]
    return []


def test_a_long_fallback_cycle_is_found_without_recursion(tmp_path: Path) -> None:
    n = 3000
    models = "".join(f"  p{i}: {{model: offline, fallbacks: [p{(i + 1) % n}]}}\n" for i in range(n))
    found = problems(tmp_path, f"models:\n  default: {{model: offline}}\n{models}"
                               "agents: {t: {role: trader}}\npipeline: [t]\n")
    assert len(found) == 1
    assert found[0].startswith("6:35: fallback cycle: p0 -> p1 -> p2 -> ")
    assert found[0].endswith(f" -> p{n - 1} -> p0")


def test_a_long_chain_of_readers_loads(tmp_path: Path) -> None:
    n = 1500
    agents = "".join(f"  a{i}: {{role: technical_analyst, inputs: [a{i - 1}]}}\n" for i in range(1, n))
    steps = ", ".join(f"a{i}" for i in range(n))
    assert problems(tmp_path, f"models: {{default: {{model: offline}}}}\nagents:\n"
                              f"  a0: {{role: technical_analyst}}\n{agents}  t: {{role: trader}}\n"
                              f"pipeline: [{steps}, t]\n") == []


@pytest.mark.parametrize(("body", "expected"), [
    # a section of the wrong shape is reported once, not once per reference into it
    ("models: {default: {model: offline}}\nagents: [a, b]\npipeline: [a, b]\n",
     ["5:9: agents: expected a mapping, got a list"]),
    ("models: 5\nagents: {t: {role: trader, model: deep}}\npipeline: [t]\n",
     ["4:9: models: expected a mapping, got 5"]),
    ("models: {default: {model: offline}}\nroles: [x]\nagents: {t: {role: quant}}\npipeline: [t]\n",
     ["5:8: roles: expected a mapping, got a list"]),
    # a broken pipeline step does not make every later reader "run too early"
    ("models: {default: {model: offline}}\nagents: {a: {role: news_analyst}, "
     "t: {role: trader, inputs: [a]}}\npipeline:\n  - paralel: {steps: [a]}\n  - t\n",
     ["7:5: unknown key 'paralel' in pipeline[0] (did you mean 'parallel'?)"]),
    # independent defects are each reported, in file order
    ("models: {default: {model: offline, temperature: 9}}\nagents: {t: {role: trader}, "
     "u: {role: nobody}}\npipeline: [t, u, ghost]\n",
     ["4:49: models.default.temperature: 9 is out of range; must be <= 2",
      "5:39: unknown role 'nobody'; define it under roles: or use a built-in role",
      "6:18: undefined agent 'ghost'"]),
    # a missing required key reported with all its siblings in one message
    ("models: {default: {model: offline}}\nagents: {a: {role: bull_researcher}, "
     "b: {role: bear_researcher}}\npipeline:\n  - debate: {participants: [a, b]}\n",
     ["7:5: pipeline[0].debate: missing required keys 'rounds' and 'judge'"]),
    # an agent without model: falls back on a profile called default
    ("models: {fast: {model: offline}}\nagents: {t: {role: trader}}\npipeline: [t]\n",
     ["5:10: agent 't' names no model, and there is no profile 'default' under models: to "
      "fall back on"]),
])
def test_each_problem_is_said_once(tmp_path: Path, body: str, expected: list[str]) -> None:
    assert problems(tmp_path, body) == expected


FIRM = ("models: {default: {model: offline}}\n"
        "agents: {a: {role: news_analyst}, j: {role: research_manager}, t: {role: trader}}\n"
        "pipeline:\n  - a\n  - agent: j\n    when: \"{when}\"\n  - t\n")


@pytest.mark.parametrize("when", [
    "a.confidence > 0.5", "outputs['a'].signal == 'BUY'", "symbol != 'SPY'",
    "failures | length == 0", "portfolio is not none and market is not none", "risk_state",
    "range(3) | list | length == 3",
])
def test_conditions_may_read_earlier_agents_and_the_shared_state(tmp_path: Path, when: str) -> None:
    assert problems(tmp_path, FIRM.replace("{when}", when)) == []


@pytest.mark.parametrize(("when", "message"), [
    ("t.action == 'BUY'", "condition reads 't', which has not run before this step"),
    ("j.recommendation == 'BUY'", "condition reads 'j', which has not run before this step"),
    ("sybmol == 'AAPL'", "condition reads unknown name 'sybmol' (did you mean 'symbol'?); it may "
     "read agents that ran before this step and failures, market, outputs, portfolio, "
     "risk_state and symbol"),
    ("a.x = 1", "invalid condition: unexpected text after the expression; compare with =="),
    ("a.x == 1 1", "invalid condition: unexpected text after the expression"),
])
def test_conditions_that_cannot_work(tmp_path: Path, when: str, message: str) -> None:
    assert problems(tmp_path, FIRM.replace("{when}", when)) == [f"9:11: {message}"]
