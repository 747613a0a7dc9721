"""The contract stays one contract: the committed JSON Schema is exactly what the pydantic models
generate, both accept exactly the same documents, every field is described, and the reference
documentation is generated from it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from pydantic import ValidationError
from test_spec_broken import CASES as BROKEN_CASES

from flowkit.spec import docs, schema
from flowkit.spec.loader import load_workflow
from flowkit.spec.models import Workflow
from flowkit.spec.semantics import CONDITION_NAMES
from flowkit.spec.yamlsrc import parse

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
DOCUMENTS = sorted([*ROOT.glob("workflows/*.yaml"), *ROOT.glob("workflows/examples/*.yaml"),
                    *FIXTURES.glob("valid/*.yaml"), *FIXTURES.glob("broken/*.yaml")])
# Structure can only be compared where the YAML reads as a mapping at all.
MAPPINGS = [p for p in DOCUMENTS if isinstance(parse(p.read_text(), str(p)).data, dict)]


def _verdicts(data: Any) -> tuple[bool, bool]:
    """(schema accepts, models accept)."""
    by_schema = not any(True for _ in schema._validator().iter_errors(data))
    try:
        Workflow.model_validate(data)
    except ValidationError:
        return by_schema, False
    return by_schema, True


@pytest.mark.parametrize("path", MAPPINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_and_models_agree_on_every_workflow_and_fixture(path: Path) -> None:
    by_schema, by_models = _verdicts(parse(path.read_text(), str(path)).data)
    assert by_schema == by_models
    if path.parent.name != "broken":
        assert by_schema


def test_the_agreement_is_not_vacuous() -> None:
    """Most fixtures parse, and among them both sides reject some and accept others."""
    assert len(MAPPINGS) > len(DOCUMENTS) * 3 // 4
    verdicts = {_verdicts(parse(p.read_text(), str(p)).data) for p in MAPPINGS}
    assert verdicts == {(True, True), (False, False)}


BASE = parse((FIXTURES / "valid" / "firm.yaml").read_text(), "firm.yaml").data


# Values pydantic's lax mode would accept and JSON Schema would not (or the reverse).
@pytest.mark.parametrize(("path", "value"), [
    (("risk", "allow_short"), 1),
    (("risk", "allow_short"), "true"),
    (("risk", "max_position_pct"), "10"),
    (("risk", "max_position_pct"), True),
    (("pipeline", 1, "debate", "rounds"), "2"),
    (("pipeline", 1, "debate", "rounds"), 2.5),
    (("backtest", "start"), 1704153600),
    (("backtest", "start"), "2024-01-02T00:00:00"),
    (("backtest", "start"), "20240102"),
    (("version",), True),
    (("version",), "1"),
    (("decision",), "trader\n"),
    (("market", "symbols", 0), "AAPL\n"),
    (("agents", "trader", "inputs", 0), "judge\n"),
], ids=repr)
def test_both_reject_what_lax_parsing_would_let_through(path: tuple, value: Any) -> None:
    data = copy.deepcopy(BASE)
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert _verdicts(data) == (False, False)


def test_both_accept_integral_floats_for_integers() -> None:
    data = copy.deepcopy(BASE)
    data["pipeline"][1]["debate"]["rounds"] = 2.0
    assert _verdicts(data) == (True, True)


@pytest.mark.parametrize("key", ["my agent", "1st", "trader\n"])
def test_both_reject_agent_ids_that_are_not_ids(key: str) -> None:
    data = copy.deepcopy(BASE)
    data["agents"][key] = {"role": "trader"}
    assert _verdicts(data) == (False, False)


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = (ROOT / "schemas" / "workflow.schema.json").read_text()
    assert committed == schema.text(), "run: python -m flowkit.spec.schema --write"
    assert json.loads(committed)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _properties(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for key, prop in (node.get("properties") or {}).items():
            yield f"{where}.{key}", prop
        for key, sub in node.items():
            yield from _properties(sub, f"{where}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _properties(sub, f"{where}[{i}]")


def test_every_property_has_a_description() -> None:
    props = list(_properties(schema.load(), "#"))
    assert len(props) > 100
    assert [where for where, prop in props if not prop.get("description")] == []


def test_the_reference_documentation_is_up_to_date() -> None:
    current = docs.REFERENCE.read_text()
    assert docs.MARKER in current
    assert docs.render(current) == current, "run: python -m flowkit.spec.docs"


def test_the_reference_documents_every_field() -> None:
    text = docs.REFERENCE.read_text()
    for where, _ in _properties(schema.load(), "#"):
        assert f"| `{where.rsplit('.', 1)[1]}` |" in text, where


def test_the_error_examples_in_the_reference_are_real_messages() -> None:
    examples = re.findall(r"`firm\.yaml:(\d+):(\d+): (.+?)`", docs.REFERENCE.read_text())
    assert len(examples) >= 10
    real = {(line, col, message) for _, line, col, message in BROKEN_CASES}
    assert [e for e in examples if (int(e[0]), int(e[1]), e[2]) not in real] == []


def test_conditions_see_what_the_runtime_gives_them() -> None:
    from flowkit.graph.agent import condition_vars

    state = SimpleNamespace(outputs={"trader": {}}, symbol="AAPL", market=None, portfolio=None,
                            risk_state=None, failures={})
    assert set(condition_vars(state)) - {"trader"} == CONDITION_NAMES


def test_the_annotated_example_in_the_reference_loads(tmp_path: Path) -> None:
    [example] = re.findall(r"```yaml\n(.*?)```", docs.REFERENCE.read_text(), re.S)
    (tmp_path / "firm.yaml").write_text(example)
    spec = load_workflow(tmp_path / "firm.yaml", env={}).spec
    assert [type(s).__name__ for s in spec.pipeline] == ["ParallelStep", "DebateStep", "AgentStep"]
