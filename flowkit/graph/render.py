"""The compiled topology as a Mermaid or Graphviz graph: every agent, pattern and edge.

Node ids are namespaced (`a_<agent>`, `g_<step>`, `io_risk`) so an agent called `risk`, `end`
or the same as a step id cannot collide with another node or a Mermaid keyword; names appear
only in labels, escaped for each format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowkit.roles.registry import BUILTIN_ROLES, DECISION_KINDS
from flowkit.spec import models as m

INPUT, RISK, BROKER = "io_input", "io_risk", "io_broker"


@dataclass
class _Graph:
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


def build(spec: m.Workflow) -> _Graph:
    g = _Graph()
    g.nodes[INPUT] = ("io", f"market data as of t\n{', '.join(spec.market.symbols)}")
    exits = [INPUT]
    for step in spec.pipeline:
        entries, step_exits = _step(g, spec, step, [])
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


def _agent(g: _Graph, spec: m.Workflow, aid: str, shape: str = "agent") -> str:
    agent = spec.agents[aid]
    stance = f" ({agent.stance})" if agent.stance else ""
    g.nodes[_aid(aid)] = (shape, f"{aid}\n{agent.role}{stance}")
    g.order.append(aid)
    return _aid(aid)


def _rounds(n: int) -> str:
    return f"{n} round{'s' if n != 1 else ''}"


def _step(g: _Graph, spec: m.Workflow, step: Any, members: list[str]) -> tuple[list[str], list[str]]:
    """Add a step; return (entry nodes, exit nodes). `members` collects the group's nodes."""
    if isinstance(step, str):
        node = _agent(g, spec, step)
        members.append(node)
        return [node], [node]
    cond = f" when {step.when}" if step.when else ""
    if isinstance(step, m.AgentStep):
        node = _agent(g, spec, step.agent)
        members.append(node)
        if step.when:
            g.groups.append((g.fresh("g_when"), f"when {step.when}", [node]))
        return [node], [node]
    inner: list[str] = []
    entries: list[str] = []
    exits: list[str] = []
    gid = f"g_{step.id}" if step.id else g.fresh("g_step")
    if isinstance(step, m.SequentialStep):
        label = f"sequential{cond}"
        for child in step.sequential:
            c_in, c_out = _step(g, spec, child, inner)
            g.link(exits, c_in)
            entries, exits = entries or c_in, c_out
    elif isinstance(step, m.ParallelStep):
        par = step.parallel
        label = f"parallel join={par.join} on_error={par.on_error}{cond}"
        for child in par.steps:
            c_in, c_out = _step(g, spec, child, inner)
            entries, exits = entries + c_in, exits + c_out
    elif isinstance(step, m.DebateStep):
        debate = step.debate
        label = f"debate, {_rounds(debate.rounds)}{cond}"
        entries = [_agent(g, spec, p) for p in debate.participants]
        inner += entries
        # Speaking order: each participant answers the one before; two speakers need one edge.
        turns = list(zip(entries, entries[1:] + entries[:1], strict=True))
        for a, b in turns[:1] if len(entries) == 2 else turns:
            g.edges.append((a, b, "argues"))
        judge = _agent(g, spec, debate.judge, "judge")
        g.link(entries, [judge], "transcript")
        inner.append(judge)
        exits = [judge]
    elif isinstance(step, m.HierarchicalStep):
        hier = step.hierarchical
        label = f"hierarchical, at most {_rounds(hier.max_rounds)}{cond}"
        manager = _agent(g, spec, hier.manager, "manager")
        workers = [_agent(g, spec, w) for w in hier.workers]
        g.link([manager], workers, "assigns")
        g.link(workers, [manager], "reports")
        inner += [manager, *workers]
        entries, exits = [manager], [manager]
    else:
        cast = step.broadcast
        label = f"broadcast, {_rounds(cast.rounds)}{cond}"
        board = g.fresh("io_board")
        g.nodes[board] = ("board", "shared blackboard")
        posters = [_agent(g, spec, a) for a in cast.agents]
        g.link(posters, [board], "posts")
        g.link([board], posters, "reads")
        inner += [board, *posters]
        entries, exits = posters, posters
    g.groups.append((gid, label, inner))
    members += inner
    return entries, exits


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
