"""Every registered pattern, through the registry: it validates, compiles, renders (Mermaid and
dot), plans its model calls, and follows the one visibility rule: what a step's children see is
frozen when the step starts, concurrent branches never see each other, and the prompts do not
depend on timing (a model that never yields and one that answers in shuffled order agree)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_support import REPO, firm, run_firm, user_prompt

from flowkit import patterns
from flowkit.errors import FlowkitError
from flowkit.graph import render
from flowkit.patterns.node import PatternNode
from flowkit.patterns.plan import call_plan
from flowkit.patterns.state import DecisionState
from flowkit.patterns.base import Drawn, Pattern, StepBase
from flowkit.runtime.session import RunOptions, Session
from flowkit.spec.loader import load_workflow
from flowkit.testing.models import EagerModel, JitterModel, RecordingModel

HEAD = """
models:
  default: {model: offline}
market:
  symbols: [MSFT]
"""

# One small firm per pattern, with what each agent's calls saw (the `outputs` ids), in order.
FIRMS = {
    "agent": ("""
agents:
  tech: {role: technical_analyst}
  trader: {role: trader}
pipeline:
  - tech
  - agent: trader
""", {"tech": [[]], "trader": [["tech"]]}, 2, 2),
    "sequential": ("""
agents:
  tech: {role: technical_analyst}
  news: {role: news_analyst}
  trader: {role: trader}
pipeline:
  - sequential: [tech, news, trader]
""", {"tech": [[]], "news": [["tech"]], "trader": [["news", "tech"]]}, 3, 3),
    "parallel": ("""
agents:
  t: {role: technical_analyst}
  f: {role: fundamentals_analyst}
  n: {role: news_analyst}
  s: {role: sentiment_analyst}
  trader: {role: trader}
pipeline:
  - parallel:
      steps: [t, f, {sequential: [n, s]}]
  - trader
""", {"t": [[]], "f": [[]], "n": [[]], "s": [["n"]], "trader": [["f", "n", "s", "t"]]}, 5, 3),
    "hierarchical": ("""
agents:
  tech: {role: technical_analyst}
  boss: {role: manager}
  w1: {role: fundamentals_analyst}
  w2: {role: news_analyst}
pipeline:
  - tech
  - hierarchical: {manager: boss, workers: [w1, w2], max_rounds: 1}
""", {"tech": [[]], "boss": [["tech"], ["boss", "tech", "w1", "w2"]],
      "w1": [["boss", "tech"]], "w2": [["boss", "tech"]]}, 5, 4),
    "debate": ("""
agents:
  bull: {role: bull_researcher}
  bear: {role: bear_researcher}
  judge: {role: research_manager}
  trader: {role: trader}
pipeline:
  - debate: {participants: [bull, bear], rounds: 2, judge: judge}
  - trader
""", {"bull": [[], ["bear", "bull"]], "bear": [["bull"], ["bear", "bull"]],
      "judge": [["bear", "bull"]], "trader": [["bear", "bull", "judge"]]}, 6, 6),
    "broadcast": ("""
agents:
  a: {role: technical_analyst}
  b: {role: news_analyst}
  c: {role: sentiment_analyst}
  trader: {role: trader}
pipeline:
  - broadcast: {agents: [a, b, c], rounds: 2}
  - trader
""", {"a": [[], ["a", "b", "c"]], "b": [[], ["a", "b", "c"]], "c": [[], ["a", "b", "c"]],
      "trader": [["a", "b", "c"]]}, 7, 3),
}


def test_every_registered_pattern_has_a_firm_here() -> None:
    assert set(FIRMS) == set(patterns.pattern_keys())


@pytest.fixture(params=patterns.pattern_keys())
def case(request, tmp_path: Path):
    body, seen, calls, critical = FIRMS[request.param]
    return request.param, firm(tmp_path, HEAD + body), seen, calls, critical


def test_validates_compiles_renders_and_plans(case) -> None:
    key, path, seen, calls, critical = case
    spec = load_workflow(path, env={}).spec
    mermaid, dot = render.mermaid(spec), render.dot(spec)
    for agent in seen:
        assert f"a_{agent}[" in mermaid or f"a_{agent}{{" in mermaid or f"a_{agent}([" in mermaid
        assert f"  a_{agent} [label=" in dot or f"    a_{agent} [label=" in dot
    session = Session(load_workflow(path, env={}), RunOptions(db=str(path.with_suffix(".duckdb"))),
                      models={"default": EagerModel()})
    try:
        plan = call_plan(session.firm.root)
        assert (plan.total, plan.critical) == (calls, critical)
        assert sorted({c.agent for c in plan.calls}) == sorted(seen)
    finally:
        session.close()


def run(path: Path, model: RecordingModel):
    outcome = run_firm(path, path.with_name(f"{model.name}{getattr(model, 'seed', '')}.duckdb"),
                       models={"default": model})
    assert outcome.status == "completed", outcome.error
    prompts: dict[str, list[str]] = {}
    for call in model.calls:
        prompts.setdefault(call.agent, []).append(user_prompt(call.messages))
    return outcome, prompts


def test_children_see_the_state_frozen_when_their_step_starts(case) -> None:
    key, path, seen, calls, critical = case
    eager = EagerModel()
    outcome, prompts = run(path, eager)
    assert eager.seen() == seen
    assert len(eager.calls) == calls  # the plan counts what runs
    for seed in (1, 2):  # answers arrive in shuffled orders: nothing a model sees changes
        jitter = JitterModel(seed=seed)
        j_outcome, j_prompts = run(path, jitter)
        assert jitter.seen() == seen
        assert j_prompts == prompts
        assert j_outcome.decisions[0].action == outcome.decisions[0].action


def test_branch_writes_merge_in_yaml_order_not_finishing_order() -> None:
    state = DecisionState(symbol="AAPL", as_of="2024-01-02T21:00:00", market={},
                          outputs={"pre": {"x": 0}})
    first, second = state.branch(), state.branch()
    second.outputs["late"] = {"x": 2}  # written first in time
    first.outputs["early"] = {"x": 1}
    first.failures["f"] = "boom"
    assert "early" not in second.outputs and "late" not in first.outputs
    state.merge([first, second])
    assert list(state.outputs) == ["pre", "early", "late"]
    assert state.failures == {"f": "boom"}


# ---------------------------------------------------------------- the registry is exhaustive


class _Step(StepBase):
    vote: list[str]


class _NoPlanNode(PatternNode):
    async def execute(self, ctx, state, scope) -> None: ...

    def agents(self) -> list[str]:
        return []


class _Node(_NoPlanNode):
    def plan(self, p, deps):
        return deps, 0


class _NoRender:
    key = "vote"
    step_model = _Step
    node = _NoPlanNode

    def check(self, walk, body, path, done):
        return frozenset()

    def compile(self, step, name, child):
        return _Node(name=name)


def test_a_pattern_missing_a_piece_is_an_error_naming_it() -> None:
    with pytest.raises(FlowkitError, match=r"pattern 'vote' is incomplete: no render, "
                                           r"node\.plan"):
        patterns.register(_NoRender())  # type: ignore[arg-type]
    assert "vote" not in patterns.pattern_keys()


def test_a_step_no_pattern_owns_is_an_error_not_a_fallthrough() -> None:
    with pytest.raises(FlowkitError, match="no pattern owns a step of type _Step"):
        patterns.of(_Step(vote=["a"]))
    with pytest.raises(FlowkitError, match="no pattern 'vote' is registered"):
        patterns.get("vote")


def test_validate_imports_no_runtime_module_for_any_pattern() -> None:
    code = ("import sys; from flowkit.cli import main; "
            f"main(['validate', {str(REPO / 'tests/fixtures/valid/all_patterns.yaml')!r}]); "
            "print(sorted(m for m in sys.modules if m in ('asyncio', 'flowkit.graph.agent', "
            "'flowkit.llm', 'flowkit.runtime', 'flowkit.market')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.stdout.splitlines()[-1] == "[]", done.stderr


def test_patterns_sit_below_the_spec_and_the_graph_that_dispatch_through_them() -> None:
    # flowkit.spec builds its step union from the registry and flowkit.graph compiles and draws
    # through it: a pattern module importing either would close an import cycle.
    allowed = {"flowkit.errors", "flowkit.fields", "flowkit.roles.registry"}
    for path in (REPO / "flowkit" / "patterns").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
                a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("flowkit") and name != "flowkit.patterns":
                    assert name in allowed or name.startswith("flowkit.patterns."), (path, name)


# ---------------------------------------------------------------- a sixth pattern

def recipe() -> str:
    """The pattern module docs/extending-patterns.md shows: the test runs the recipe as written."""
    text = (REPO / "docs" / "extending-patterns.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


DRIVER = '''
import round_robin  # registers the pattern before any workflow is loaded
import asyncio, sys
from flowkit.errors import SpecError
from flowkit.graph import render
from flowkit.patterns.plan import call_plan
from flowkit.runtime.session import RunOptions, Session
from flowkit.spec.loader import load_workflow
from flowkit.testing.models import EagerModel

for i, bad in enumerate(sys.argv[3:]):
    try:
        load_workflow(bad, env={})
    except SpecError as exc:
        print(f"BROKEN{i}", *exc.problems)
loaded = load_workflow(sys.argv[1], env={})
print("MERMAID", "round robin" in render.mermaid(loaded.spec), "then" in render.dot(loaded.spec))
model = EagerModel()
session = Session(loaded, RunOptions(db=sys.argv[2]), models={"default": model})
plan = call_plan(session.firm.root)
print("PLAN", plan.total, plan.critical)
decision = asyncio.run(session.decide("MSFT", "2024-03-01"))
session.close()
print("SEEN", [(c.agent, c.outputs_seen) for c in model.calls])
print("DECISION", decision.agent, decision.action)
'''

SIXTH = """
agents:
  tech: {role: technical_analyst}
  news: {role: news_analyst}
  trader: {role: trader}
pipeline:
  - id: circle
    round_robin: [tech, news]
  - trader
"""


def test_a_sixth_pattern_is_one_module_and_one_registration(tmp_path: Path) -> None:
    (tmp_path / "round_robin.py").write_text(recipe())
    (tmp_path / "drive.py").write_text(DRIVER)
    good = firm(tmp_path, HEAD + SIXTH)
    bad = [firm(tmp_path, HEAD + SIXTH.replace("round_robin: [tech, news]", typo),
                name=f"bad{i}.yaml")
           for i, typo in enumerate(["round_robin: [tech, nws]", "round_robin: tech",
                                     "round_robn: [tech, news]"])]
    done = subprocess.run([sys.executable, str(tmp_path / "drive.py"), str(good),
                           str(tmp_path / "log.duckdb"), *map(str, bad)],
                          capture_output=True, text=True,
                          timeout=120, cwd=tmp_path,
                          env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    out = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    # Checked and located like a built-in step: references, the generated schema, the key.
    assert out["BROKEN0"] == (f"{bad[0]}:15:25: undefined agent 'nws' (did you mean 'news'?)")
    assert out["BROKEN1"] == f"{bad[1]}:15:18: pipeline[0].round_robin: expected a list, got 'tech'"
    assert out["BROKEN2"] == (f"{bad[2]}:15:5: unknown key 'round_robn' in pipeline[0] "
                              f"(did you mean 'round_robin'?)")
    assert out["MERMAID"] == "True True"
    assert out["PLAN"] == "3 3"
    assert out["SEEN"] == str([("tech", []), ("news", ["tech"]), ("trader", ["news", "tech"])])
    assert out["DECISION"].startswith("trader ")


def test_registering_after_the_language_is_built_is_refused() -> None:
    class Late(Pattern):
        key = "late"
        step_model = type("LateStep", (StepBase,), {"__annotations__": {"late": str}})
        node = _Node

        def check(self, walk, body, path, done):
            return frozenset()

        def compile(self, step, name, child):
            return _Node(name=name)

        def render(self, g, step):
            return Drawn(None)

    with pytest.raises(FlowkitError, match="pattern 'late' registered after the workflow "
                                           "language was built"):
        patterns.register(Late())
