"""The compiled topology as a Mermaid or Graphviz graph: every agent, pattern and edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowkit.spec import models as m


@dataclass
class _Graph:
    nodes: dict[str, str] = field(default_factory=dict)          # id -> label
    shapes: dict[str, str] = field(default_factory=dict)         # id -> agent|judge|manager|io|board
    groups: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (id, label, members)
    edges: list[tuple[str, str, str]] = field(default_factory=list)        # (src, dst, label)
    counter: int = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def build(spec: m.Workflow) -> _Graph:
    g = _Graph()
    g.nodes["input"] = f"market data as of t<br/>{', '.join(spec.market.symbols)}"
    g.shapes["input"] = "io"
    exits = ["input"]
    for step in spec.pipeline:
        entries, step_exits = _step(g, spec, step, [])
        for src in exits:
            for dst in entries:
                g.edges.append((src, dst, ""))
        exits = step_exits
    g.nodes["risk"] = "risk engine (rules)<br/>approve / resize / reject"
    g.shapes["risk"] = "io"
    g.nodes["broker"] = f"{spec.portfolio.broker} broker"
    g.shapes["broker"] = "io"
    decider = spec.decision
    for src in exits:
        g.edges.append((src, "risk", "decision" if decider in (None, src) else ""))
    g.edges.append(("risk", "broker", "orders"))
    return g


def _agent(g: _Graph, spec: m.Workflow, aid: str, shape: str = "agent") -> str:
    agent = spec.agents[aid]
    stance = f" ({agent.stance})" if agent.stance else ""
    g.nodes[aid] = f"{aid}<br/><i>{agent.role}{stance}</i>"
    g.shapes[aid] = shape
    return aid


def _step(g: _Graph, spec: m.Workflow, step: Any, members: list[str]) -> tuple[list[str], list[str]]:
    """Add a step; return (entry nodes, exit nodes). `members` collects the group's nodes."""
    if isinstance(step, str):
        members.append(_agent(g, spec, step))
        return [step], [step]
    cond = f" when {step.when}" if step.when else ""
    if isinstance(step, m.AgentStep):
        members.append(_agent(g, spec, step.agent))
        if step.when:
            g.groups.append((g.fresh("when"), f"when {step.when}", [step.agent]))
        return [step.agent], [step.agent]
    inner: list[str] = []
    gid = step.id or g.fresh("p")
    if isinstance(step, m.SequentialStep):
        label, entries, exits = f"sequential{cond}", [], []
        for child in step.sequential:
            c_in, c_out = _step(g, spec, child, inner)
            if not entries:
                entries = c_in
            for src in exits:
                for dst in c_in:
                    g.edges.append((src, dst, ""))
            exits = c_out
    elif isinstance(step, m.ParallelStep):
        body = step.parallel
        label = f"parallel join={body.join} on_error={body.on_error}{cond}"
        entries, exits = [], []
        for child in body.steps:
            c_in, c_out = _step(g, spec, child, inner)
            entries += c_in
            exits += c_out
    elif isinstance(step, m.DebateStep):
        body = step.debate
        label = f"debate, {body.rounds} round{'s' if body.rounds != 1 else ''}{cond}"
        entries = [_agent(g, spec, p) for p in body.participants]
        inner += entries
        for a, b in zip(body.participants, body.participants[1:] + body.participants[:1]):
            if a != b and not (len(body.participants) == 2 and a == body.participants[1]):
                g.edges.append((a, b, "argues"))
        judge = _agent(g, spec, body.judge, "judge")
        for p in body.participants:
            g.edges.append((p, judge, "transcript"))
        inner.append(judge)
        exits = [judge]
    elif isinstance(step, m.HierarchicalStep):
        body = step.hierarchical
        label = f"hierarchical, max {body.max_rounds} rounds{cond}"
        manager = _agent(g, spec, body.manager, "manager")
        inner.append(manager)
        for w in body.workers:
            inner.append(_agent(g, spec, w))
            g.edges.append((manager, w, "assigns"))
            g.edges.append((w, manager, "reports"))
        entries, exits = [manager], [manager]
    else:
        body = step.broadcast
        label = f"broadcast, {body.rounds} round{'s' if body.rounds != 1 else ''}{cond}"
        board = g.fresh("board")
        g.nodes[board] = "shared blackboard"
        g.shapes[board] = "board"
        inner.append(board)
        for a in body.agents:
            inner.append(_agent(g, spec, a))
            g.edges.append((a, board, "posts"))
            g.edges.append((board, a, "reads"))
        entries, exits = list(body.agents), list(body.agents)
    g.groups.append((gid, label, inner))
    members += inner
    return entries, exits


_MERMAID_SHAPES = {"agent": ('["', '"]'), "judge": ('{{"', '"}}'), "manager": ('[["', '"]]'),
                   "io": ('(["', '"])'), "board": ('[("', '")]')}


def mermaid(spec: m.Workflow) -> str:
    g = build(spec)
    lines = ["flowchart TD"]
    grouped = {n for _, _, ms in g.groups for n in ms}
    for nid, label in g.nodes.items():
        if nid not in grouped:
            a, b = _MERMAID_SHAPES[g.shapes[nid]]
            lines.append(f"  {nid}{a}{label}{b}")
    for gid, label, members in _nest(g):
        lines.extend(_mermaid_group(g, gid, label, members, "  "))
    for src, dst, label in g.edges:
        lines.append(f"  {src} -->|{label}| {dst}" if label else f"  {src} --> {dst}")
    return "\n".join(lines) + "\n"


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


def _mermaid_group(g: _Graph, gid: str, label: str, items: list[Any], indent: str) -> list[str]:
    out = [f'{indent}subgraph {gid}["{label}"]']
    for item in items:
        if isinstance(item, tuple):
            out.extend(_mermaid_group(g, *item, indent + "  "))
        else:
            a, b = _MERMAID_SHAPES[g.shapes[item]]
            out.append(f"{indent}  {item}{a}{g.nodes[item]}{b}")
    out.append(f"{indent}end")
    return out


_DOT_SHAPES = {"agent": "box", "judge": "hexagon", "manager": "box3d", "io": "oval",
               "board": "cylinder"}


def dot(spec: m.Workflow) -> str:
    g = build(spec)
    lines = [f'digraph "{spec.name}" {{', "  rankdir=TB;", '  node [fontname="Helvetica"];']
    grouped = {n for _, _, ms in g.groups for n in ms}
    for nid, label in g.nodes.items():
        if nid not in grouped:
            lines.append(_dot_node(g, nid, "  "))
    for gid, label, items in _nest(g):
        lines.extend(_dot_group(g, gid, label, items, "  "))
    for src, dst, label in g.edges:
        attr = f' [label="{label}"]' if label else ""
        lines.append(f'  "{src}" -> "{dst}"{attr};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_node(g: _Graph, nid: str, indent: str) -> str:
    label = g.nodes[nid].replace("<br/>", "\\n").replace("<i>", "").replace("</i>", "")
    return f'{indent}"{nid}" [label="{label}", shape={_DOT_SHAPES[g.shapes[nid]]}];'


def _dot_group(g: _Graph, gid: str, label: str, items: list[Any], indent: str) -> list[str]:
    out = [f'{indent}subgraph "cluster_{gid}" {{', f'{indent}  label="{label}";']
    for item in items:
        out.extend(_dot_group(g, *item, indent + "  ") if isinstance(item, tuple)
                   else [_dot_node(g, item, indent + "  ")])
    out.append(f"{indent}}}")
    return out
