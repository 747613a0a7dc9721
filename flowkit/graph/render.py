"""The compiled topology as a Mermaid or Graphviz graph: every agent, pattern and edge.

Node ids are namespaced (`a_<agent>`, `g_<step>`, `io_risk`) so an agent called `risk`, `end`
or the same as a step id cannot collide with another node or a Mermaid keyword; names appear
only in labels, escaped for each format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowkit import patterns
from flowkit.roles.registry import BUILTIN_ROLES, DECISION_KINDS
from flowkit.spec import models as m

INPUT, RISK, BROKER = "io_input", "io_risk", "io_broker"


@dataclass
class _Graph:
    """The graph under construction; each pattern draws its steps on it (patterns.base.Canvas)."""

    spec: m.Workflow
    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (shape, label lines)
    groups: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (id, label, members)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (src, dst, label)
    order: list[str] = field(default_factory=list)  # agent ids in pipeline order
    counter: int = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def link(self, sources: list[str], targets: list[str], label: str = "") -> None:
        self.edges += [(s, t, label) for s in sources for t in targets]

    def agent(self, aid: str, shape: str = "agent") -> str:
        agent = self.spec.agents[aid]
        stance = f" ({agent.stance})" if agent.stance else ""
        self.nodes[_aid(aid)] = (shape, f"{aid}\n{agent.role}{stance}")
        self.order.append(aid)
        return _aid(aid)

    def node(self, prefix: str, shape: str, label: str) -> str:
        nid = self.fresh(prefix)
        self.nodes[nid] = (shape, label)
        return nid

    def step(self, step: Any, members: list[str]) -> tuple[list[str], list[str]]:
        """Draw a step; return (entry nodes, exit nodes). `members` collects the group's nodes.
        Inner groups are appended before the group around them."""
        drawn = patterns.of(step).render(self, step)
        when = None if isinstance(step, str) else step.when
        if drawn.label is not None:
            gid = f"g_{step.id}" if step.id else self.fresh("g_step")
            self.groups.append((gid, drawn.label + (f" when {when}" if when else ""),
                                drawn.members))
        elif when:
            self.groups.append((self.fresh("g_when"), f"when {when}", drawn.members))
        members += drawn.members
        return drawn.entries, drawn.exits


def build(spec: m.Workflow) -> _Graph:
    g = _Graph(spec)
    g.nodes[INPUT] = ("io", f"market data as of t\n{', '.join(spec.market.symbols)}")
    exits = [INPUT]
    for step in spec.pipeline:
        entries, step_exits = g.step(step, [])
        g.link(exits, entries)
        exits = step_exits
    g.nodes[RISK] = ("io", "risk engine (rules)\napprove / resize / reject")
    g.nodes[BROKER] = ("io", f"{spec.portfolio.broker} broker")
    g.link([_aid(_decider(spec, g.order))], [RISK], "decision")
    g.link([RISK], [BROKER], "orders")
    return g


def _decider(spec: m.Workflow, order: list[str]) -> str:
    """The decision agent, as the compiler picks it: explicit, else the last trader/decider."""
    if spec.decision:
        return spec.decision

    def kind(aid: str) -> str | None:
        role = spec.agents[aid].role
        own = spec.roles.get(role)
        return own.kind if own and own.kind else getattr(BUILTIN_ROLES.get(role), "kind", None)

    return [a for a in order if kind(a) in DECISION_KINDS][-1]


def _aid(agent: str) -> str:
    return f"a_{agent}"


def _nest(g: _Graph) -> list[tuple[str, str, list[Any]]]:
    """Turn the flat group list (inner groups come first) into a tree of subgraphs."""
    groups = {gid: (label, members) for gid, label, members in g.groups}
    order = list(groups)
    parent: dict[str, str] = {}
    for i, gid in enumerate(order):
        mine = set(groups[gid][1])
        outer = next((o for o in order[i + 1:] if mine <= set(groups[o][1])), None)
        if outer:
            parent[gid] = outer

    def tree(gid: str) -> tuple[str, str, list[Any]]:
        label, members = groups[gid]
        kids = [k for k in order if parent.get(k) == gid]
        claimed = {n for k in kids for n in groups[k][1]}
        return gid, label, [tree(k) for k in kids] + [n for n in members if n not in claimed]

    return [tree(gid) for gid in order if gid not in parent]


def _render(g: _Graph, node: Any, group: Any, edge: Any, head: list[str], tail: list[str]) -> str:
    """Shared walk of both formats: ungrouped nodes, nested groups, then edges."""
    lines = list(head)
    grouped = {n for _, _, ms in g.groups for n in ms}
    lines += [node(nid, "  ") for nid in g.nodes if nid not in grouped]

    def emit(gid: str, label: str, items: list[Any], indent: str) -> None:
        open_, close = group(gid, label, indent)
        lines.extend(open_)
        for item in items:
            if isinstance(item, tuple):
                emit(item[0], item[1], item[2], indent + "  ")
            else:
                lines.append(node(item, indent + "  "))
        lines.append(close)

    for gid, label, items in _nest(g):
        emit(gid, label, items, "  ")
    lines += [edge(src, dst, label) for src, dst, label in g.edges]
    return "\n".join(lines + tail) + "\n"


_MERMAID_SHAPES = {"agent": ('["', '"]'), "judge": ('{{"', '"}}'), "manager": ('[["', '"]]'),
                   "io": ('(["', '"])'), "board": ('[("', '")]')}


def _mermaid_text(text: str) -> str:
    # Mermaid reads HTML entities in quoted labels; a raw quote would end the label.
    return text.replace("&", "&amp;").replace('"', "#quot;").replace("<", "&lt;") \
        .replace(">", "&gt;").replace("\n", "<br/>")


def mermaid(spec: m.Workflow) -> str:
    g = build(spec)

    def node(nid: str, indent: str) -> str:
        shape, label = g.nodes[nid]
        a, b = _MERMAID_SHAPES[shape]
        return f"{indent}{nid}{a}{_mermaid_text(label)}{b}"

    def group(gid: str, label: str, indent: str) -> tuple[list[str], str]:
        return [f'{indent}subgraph {gid}["{_mermaid_text(label)}"]'], f"{indent}end"

    def edge(src: str, dst: str, label: str) -> str:
        return f"  {src} -->|{_mermaid_text(label)}| {dst}" if label else f"  {src} --> {dst}"

    return _render(g, node, group, edge, ["flowchart TD"], [])


_DOT_SHAPES = {"agent": "box", "judge": "hexagon", "manager": "box3d", "io": "oval",
               "board": "cylinder"}


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(spec: m.Workflow) -> str:
    g = build(spec)

    def node(nid: str, indent: str) -> str:
        shape, label = g.nodes[nid]
        return f"{indent}{nid} [label={_dot_text(label)}, shape={_DOT_SHAPES[shape]}];"

    def group(gid: str, label: str, indent: str) -> tuple[list[str], str]:
        return [f"{indent}subgraph cluster_{gid} {{", f"{indent}  label={_dot_text(label)};"], \
            f"{indent}}}"

    def edge(src: str, dst: str, label: str) -> str:
        return f"  {src} -> {dst}" + (f" [label={_dot_text(label)}]" if label else "") + ";"

    head = [f"digraph {_dot_text(spec.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica"];']
    return _render(g, node, group, edge, head, ["}"])
