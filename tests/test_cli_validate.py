"""`flowkit validate`, `flowkit graph`, `--version` and `--help`, run as a user runs them: in a
separate process, looking at exit codes, stdout and stderr."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from flowkit import __version__
from flowkit.graph import render
from flowkit.spec.loader import load_workflow

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*ROOT.glob("workflows/*.yaml"), *ROOT.glob("workflows/examples/*.yaml")])
VALID = sorted((Path(__file__).parent / "fixtures" / "valid").glob("*.yaml"))
_SCRIPT = Path(sys.executable).with_name("flowkit")
FLOWKIT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "flowkit.cli"]


def flowkit(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLOWKIT, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_validate_every_shipped_workflow() -> None:
    done = flowkit("validate", *SHIPPED)
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert len(lines) == len(SHIPPED)
    for path, line in zip(SHIPPED, lines, strict=True):
        name = load_workflow(path, env={}).spec.name
        assert re.fullmatch(rf"{re.escape(str(path))}: ok — {re.escape(name)}: \d+ agents?, \d+ "
                            rf"top-level steps?, symbols [A-Z0-9., -]+ \(\d+ ms\)", line), line


def test_validate_does_not_import_the_runtime() -> None:
    heavy = {"litellm", "pandas", "duckdb", "ccxt", "numpy", "matplotlib"}
    code = ("import sys; from flowkit.cli import main; "
            f"main(['validate', *{[str(p) for p in SHIPPED]!r}]); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "[]"


def test_version() -> None:
    done = flowkit("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"flowkit {__version__}")


def _subcommands() -> list[str]:
    text = flowkit("--help").stdout
    listing = text.split("COMMAND\n", 2)[-1].split("\n\n")[0]
    return re.findall(r"^    (\w+)\s", listing, re.M)


def test_help_lists_the_subcommands() -> None:
    assert {"validate", "graph", "run"} <= set(_subcommands())


@pytest.mark.parametrize("command", _subcommands())
def test_help_works_on_every_subcommand(command: str) -> None:
    done = flowkit(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: flowkit {command}")


# (file name, bytes, expected stderr line); each must exit 1 with exactly that line.
ODD_INPUTS = [
    ("empty.yaml", b"", "1:1: the file holds no YAML document; expected a workflow mapping "
     "(version, name, models, ...)"),
    ("comments.yaml", b"# nothing\n\n# here\n", "1:1: the file holds no YAML document; expected "
     "a workflow mapping (version, name, models, ...)"),
    ("list.yaml", b"- version: 1\n- name: x\n", "1:1: a workflow file is a mapping (version, name, "
     "models, agents, pipeline, market, ...)"),
    ("scalar.yaml", b"just text\n", "1:1: a workflow file is a mapping (version, name, models, "
     "agents, pipeline, market, ...)"),
    ("latin1.yaml", b"version: 1\nname: caf\xe9\n", "2:10: the file is not UTF-8 text (byte 0xe9 "
     "here); save it as UTF-8"),
    ("mixed.yaml", b"name: caf\xc3\xa9 \xe9\n", "1:12: the file is not UTF-8 text (byte 0xe9 "
     "here); save it as UTF-8"),
    ("binary.yaml", b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe", "1:11: the file is not UTF-8 text "
     "(byte 0xff here); save it as UTF-8"),
    ("nul.yaml", b"version: 1\nname: a\x00b\n", "2:8: YAML syntax error: special character "
     "#x0000 is not allowed"),
    ("deep.yaml", b"a: " + b"[" * 5000 + b"]" * 5000, "1:67: nesting deeper than 64 levels"),
    ("bom.yaml", b"\xef\xbb\xbfversion: 1\n", "1:1: the workflow: missing required keys 'name', "
     "'models', 'agents', 'pipeline' and 'market'"),
]


@pytest.mark.parametrize(("name", "content", "expected"), ODD_INPUTS, ids=[o[0] for o in ODD_INPUTS])
def test_odd_files_fail_cleanly(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    (tmp_path / name).write_bytes(content)
    done = flowkit("validate", name, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"{name}:{expected}\n")


@pytest.mark.parametrize("args", [["validate", "."], ["validate", "missing.yaml"],
                                  ["graph", "."], ["graph", "missing.yaml"]], ids=" ".join)
def test_unreadable_paths_fail_cleanly(tmp_path: Path, args: list[str]) -> None:
    done = flowkit(*args, cwd=tmp_path)
    reason = "Is a directory" if args[1] == "." else "No such file or directory"
    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", f"{args[1]}:1:1: cannot read workflow: {reason}\n")


def test_no_traceback_for_any_broken_input_to_either_command(tmp_path: Path) -> None:
    names = []
    for name, content, _ in ODD_INPUTS:
        (tmp_path / name).write_bytes(content)
        names.append(name)
    broken = sorted((Path(__file__).parent / "fixtures" / "broken").glob("*.yaml"))
    for args in (["validate", *names, *map(str, broken)], ["graph", names[0]], ["graph", str(broken[0])]):
        done = flowkit(*args, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr and done.stderr
        assert "internal error" not in done.stderr


def test_one_bad_file_does_not_hide_the_good_ones() -> None:
    bad = Path(__file__).parent / "fixtures" / "broken" / "range_version.yaml"
    done = flowkit("validate", SHIPPED[0], bad, SHIPPED[1])
    assert done.returncode == 1
    assert len(done.stdout.splitlines()) == 2 and len(done.stderr.splitlines()) == 1


def test_set_overrides_on_the_command_line() -> None:
    firm = Path(__file__).parent / "fixtures" / "valid" / "firm.yaml"
    ok = flowkit("validate", firm, "--set", "market.symbols=[MSFT, NVDA]")
    assert ok.returncode == 0 and "symbols MSFT, NVDA" in ok.stdout
    bad = flowkit("validate", firm, "--set", "risk.max_position_pct=150")
    assert (bad.returncode, bad.stderr) == (1, "--set risk.max_position_pct:1:1: "
                                               "risk.max_position_pct: 150 is out of range; must be <= 100\n")
    # money past float64's cents is refused, and the bound reads as the number it is
    rich = flowkit("validate", firm, "--set", "portfolio.initial_cash=1e300")
    assert (rich.returncode, rich.stderr) == (1, "--set portfolio.initial_cash:1:1: portfolio."
                                                 "initial_cash: 1e+300 is out of range; must be "
                                                 "<= 1000000000000\n")
    for text, hint in (("nan", ""), ("'0.5'", "; remove the quotes")):  # nan: no number either way
        odd = flowkit("validate", firm, "--set", f"models.default.temperature={text}")
        assert odd.returncode == 1 and odd.stderr.endswith(
            f"expected a number, got '{text.strip(chr(39))}'{hint}\n"), odd.stderr
    malformed = flowkit("validate", firm, "--set", "nokey")
    assert (malformed.returncode, malformed.stderr) == (
        1, "error: --set expects dotted.path=value, got 'nokey'\n")


# ---------------------------------------------------------------- graph


def _mermaid(text: str) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str],
                                 set[tuple[str, str, str]]]:
    """(node -> shape opener, group -> members incl. nested groups, group -> label, edges)."""
    nodes: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    stack: list[str] = []
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    for line in lines[1:]:
        line = line.strip()
        if m := re.fullmatch(r'subgraph (\w+)\["([^"]*)"\]', line):
            groups[m[1]], labels[m[1]] = [], m[2]
            if stack:
                groups[stack[-1]].append(m[1])
            stack.append(m[1])
        elif line == "end":
            stack.pop()
        elif m := re.fullmatch(r"(\w+) -->(?:\|([^|]*)\|)? (\w+)", line):
            edges.add((m[1], m[3], m[2] or ""))
        else:
            m = re.fullmatch(r'(\w+)(\[\[|\{\{|\(\[|\[\(|\[)"[^"]*"(\]\]|\}\}|\]\)|\)\]|\])', line)
            assert m, line
            assert m[1] not in nodes, f"node {m[1]} declared twice"
            nodes[m[1]] = m[2]
            if stack:
                groups[stack[-1]].append(m[1])
    assert not stack, "unclosed subgraph"
    for src, dst, _ in edges:
        assert src in nodes and dst in nodes, (src, dst)
    return nodes, groups, labels, edges


def test_mermaid_shows_the_tradingagents_topology() -> None:
    done = flowkit("graph", "workflows/tradingagents.yaml")
    assert done.returncode == 0
    nodes, groups, labels, edges = _mermaid(done.stdout)
    analysts = ["a_market_analyst", "a_fundamentals_analyst", "a_news_analyst", "a_sentiment_analyst"]
    parallel = next(g for g, label in labels.items() if label.startswith("parallel"))
    assert groups[parallel] == analysts
    assert {("io_input", a, "") for a in analysts} <= edges          # the analysts run side by side
    assert not {(a, b, "") for a in analysts for b in analysts} & edges
    debate = groups["g_research_debate"]
    assert labels["g_research_debate"] == "debate, 2 rounds"
    assert debate == ["a_bull", "a_bear", "a_research_manager"]
    assert nodes["a_research_manager"] == "{{"                        # the judge's shape
    assert {("a_bull", "a_research_manager", "transcript"), ("a_bear", "a_research_manager",
                                                               "transcript"),
            ("a_bull", "a_bear", "argues")} <= edges
    assert {(a, p, "") for a in analysts for p in ("a_bull", "a_bear")} <= edges
    assert ("a_research_manager", "a_trader", "") in edges
    assert groups["g_risk_debate"][-1] == "a_portfolio_manager"
    assert ("a_portfolio_manager", "io_risk", "decision") in edges
    assert ("io_risk", "io_broker", "orders") in edges


def _dot(text: str) -> tuple[str, set[str], set[tuple[str, str]]]:
    """A strict reading of the subset of DOT we write: (graph name, nodes, edges)."""
    quoted = r'"(?:[^"\\]|\\.)*"'
    lines = text.splitlines()
    head = re.fullmatch(rf"digraph ({quoted}) \{{", lines[0])
    assert head and lines[-1] == "}", (lines[0], lines[-1])
    nodes: set[str] = set()
    edges: set[tuple[str, str]] = set()
    depth = 1
    for line in lines[1:-1]:
        line = line.strip()
        if re.fullmatch(r"subgraph cluster_\w+ \{", line):
            depth += 1
        elif line == "}":
            depth -= 1
        elif m := re.fullmatch(rf"(\w+) \[label={quoted}, shape=\w+\];", line):
            assert m[1] not in nodes
            nodes.add(m[1])
        elif m := re.fullmatch(rf"(\w+) -> (\w+)(?: \[label={quoted}\])?;", line):
            edges.add((m[1], m[2]))
        else:
            assert re.fullmatch(rf"(rankdir=TB|node \[fontname=\"Helvetica\"\]|label={quoted});",
                                line), line
        assert depth >= 1
    assert depth == 1
    assert {n for e in edges for n in e} <= nodes
    return head[1], nodes, edges


@pytest.mark.parametrize("path", SHIPPED + VALID, ids=lambda p: p.name)
def test_dot_and_mermaid_draw_the_same_graph(path: Path) -> None:
    done = flowkit("graph", path, "--format", "dot")
    assert done.returncode == 0, done.stderr
    spec = load_workflow(path, env={}).spec
    name, nodes, edges = _dot(done.stdout)
    assert name == f'"{spec.name}"'
    m_nodes, _, _, m_edges = _mermaid(render.mermaid(spec))
    assert nodes == set(m_nodes) and edges == {(s, d) for s, d, _ in m_edges}
    assert {n[2:] for n in nodes if n.startswith("a_")} == set(_agents_in(spec.pipeline))


def _agents_in(steps: list[Any]) -> Iterator[str]:
    """Every agent id the pipeline runs, read from the spec independently of the renderer."""
    for step in steps:
        if isinstance(step, str):
            yield step
        elif step.__class__.__name__ == "AgentStep":
            yield step.agent
        elif body := getattr(step, "sequential", None):
            yield from _agents_in(body)
        elif body := getattr(step, "parallel", None):
            yield from _agents_in(body.steps)
        elif body := getattr(step, "debate", None):
            yield from [*body.participants, body.judge]
        elif body := getattr(step, "hierarchical", None):
            yield from [body.manager, *body.workers]
        else:
            yield from step.broadcast.agents


def test_names_and_conditions_cannot_break_the_graph_syntax(tmp_path: Path) -> None:
    firm = tmp_path / "odd.yaml"
    firm.write_text(
        'version: 1\nname: odd\nmodels: {default: {model: offline}}\n'
        'agents: {end: {role: technical_analyst}, risk: {role: trader}, input: {role: trader}}\n'
        'pipeline:\n  - end\n  - id: risk\n    agent: risk\n    when: \'end.signal != "x" and 1 < 2\'\n'
        '  - input\n'
        'decision: risk\nmarket: {symbols: [AAPL]}\n')
    spec = load_workflow(firm, env={}).spec
    nodes, groups, labels, edges = _mermaid(render.mermaid(spec))
    assert {"a_end", "a_risk", "a_input", "io_risk", "io_input"} <= set(nodes)
    assert labels["g_when1"] == "when end.signal != #quot;x#quot; and 1 &lt; 2"
    assert ("a_risk", "io_risk", "decision") in edges
    _dot(render.dot(spec))
