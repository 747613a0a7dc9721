"""Thousands of mutated workflow files: whatever the input, load_workflow either returns a
workflow or raises SpecError whose every problem has a file:line:col; nothing else escapes.

Mutations start from the shipped workflows and the valid fixtures: lines deleted, duplicated,
swapped or re-indented, values replaced by random text, numbers, booleans and YAML specials
(anchors, aliases, tags, merge keys, tabs, unicode, very long strings, deep nesting). The same
inputs check that the JSON Schema and the pydantic models accept exactly the same documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowkit.errors import ConfigError, SpecError
from flowkit.graph import render
from flowkit.spec import schema
from flowkit.spec.loader import load_workflow
from flowkit.spec.yamlsrc import parse

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p.read_text() for p in sorted([*ROOT.glob("workflows/*.yaml"),
                                          *ROOT.glob("workflows/examples/*.yaml"),
                                          *(ROOT / "tests/fixtures/valid").glob("*.yaml")])]
SPECIALS = [
    "~", "null", "&a", "*a", "&a x", "&a {x: *a}", "&b [1, *b]", "<<: *a", "{<<: *a}", "*undefined",
    "!!python/object:os.system", "!!python/name:os.system", "!!binary aGk=", "!!set {a, b}",
    "!!int abc", "!!float x", "!!timestamp x", "!!bool maybe", "!!str", "!!map", "!!seq", "!x y",
    "\t", "\t- x", " \t ", "é☃", "\u2028", "\ufeff", "\x85", "\x00", "\x1b[0m", "\ud800",
    "no", "on", "yes", "off", "Y", "12:30", "190:20:30.15", "0755", "0o17", "0x1F", "0b101",
    "0x_", "1_000", "1e400", ".nan", "-.inf", "1e6", "2024-13-45", "2024-02-30",
    "2024-01-02 10:00:00", "2024-01-02T00:00:00Z", "\"5\"", "'true'", "5.0", "1704153600",
    "\"trader\\n\"", "|", ">", "|-\n  x", "'", '"', "[", "]", "{", "}", "- ", ": ", "? [a]",
    "%YAML 1.1", "---", "...", "${env:X}", "${env:}", "${", "sk-" + "a" * 30, "[]", "{}",
    "x" * 10_000, "[" * 200 + "]" * 200, "{a: " * 80 + "1" + "}" * 80, "- " * 70 + "x",
]
TOKENS = st.one_of(st.sampled_from(SPECIALS), st.text(max_size=30), st.integers().map(str),
                   st.floats().map(repr), st.booleans().map(str))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SOURCES)).split("\n")
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if not lines:
            lines = [""]
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "indent", "value", "insert"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            lines[i] = " " * draw(st.integers(0, 9)) + lines[i].lstrip(" ")
        elif op == "value" and ":" in lines[i]:
            lines[i] = lines[i].partition(":")[0] + ": " + draw(TOKENS)
        else:
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(TOKENS) + lines[i][at:]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "firm.yaml"


def _assert_located(exc: SpecError, file: str) -> None:
    assert exc.problems
    for problem in exc.problems:
        loc = problem.location
        assert loc is not None and loc.line >= 1 and loc.col >= 1, problem
        assert loc.file == file or loc.file.startswith("--set "), problem
        assert problem.message.strip(), problem


def _load_or_explain(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        wf = load_workflow(path, env={})
    except SpecError as exc:
        _assert_located(exc, str(path))
    else:  # whatever loads can be drawn
        assert render.mermaid(wf.spec).startswith("flowchart TD")
        assert render.dot(wf.spec).rstrip().endswith("}")


def _schema_and_models_agree(text: str) -> None:
    from pydantic import ValidationError

    from flowkit.spec.models import Workflow

    doc = parse(text, "fuzz.yaml")
    if not isinstance(doc.data, dict):
        return
    by_schema = not any(True for _ in schema._validator().iter_errors(doc.data))
    try:
        Workflow.model_validate(doc.data)
        by_models = True
    except ValidationError:
        by_models = False
    assert by_schema == by_models, text


FUZZ = settings(max_examples=2000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(text=mutated())
def test_mutated_workflows_only_ever_raise_located_spec_errors(scratch: Path, text: str) -> None:
    _load_or_explain(scratch, text)
    _schema_and_models_agree(text)


@pytest.mark.slow
@settings(FUZZ, max_examples=30_000)
@given(text=mutated())
def test_mutated_workflows_at_length(scratch: Path, text: str) -> None:
    _load_or_explain(scratch, text)
    _schema_and_models_agree(text)


PATHS = ["risk.max_position_pct", "market.symbols", "pipeline.0", "pipeline.1.debate.rounds",
         "agents.trader", "agents.trader.inputs.0", "models.default.model", "backtest.start",
         "version", "name", "log", "pipeline.7.x", "agents.ghost.role", "risk.cvar.window"]


@settings(FUZZ, max_examples=400)
@given(key=st.one_of(st.sampled_from(PATHS), st.text(max_size=20)), value=TOKENS)
def test_random_overrides_raise_only_flowkit_errors(key: str, value: str) -> None:
    try:
        load_workflow(ROOT / "tests/fixtures/valid/firm.yaml", [f"{key}={value}"], env={})
    except ConfigError as exc:
        assert exc.message.startswith("--set"), exc
    except SpecError as exc:
        _assert_located(exc, str(ROOT / "tests/fixtures/valid/firm.yaml"))


def _depth(value: Any) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return 1 + max((_depth(c) for c in children), default=0)


def test_the_mutator_reaches_the_hard_cases() -> None:
    """The strategy is only useful if it produces the inputs it claims to: check a few."""
    assert any(len(s) > 5000 for s in SPECIALS) and any(_depth(parse(s, "x").data or 0) > 64
                                                         for s in SPECIALS[-3:] if s[0] == "[")
    assert parse("a: &a {x: *a}", "x").problems[0].message.startswith("recursive alias")
