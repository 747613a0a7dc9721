"""Cycles in a directed graph (model fallbacks, agent inputs), reported as one shortest closed
path per set of nodes that reach each other."""

from __future__ import annotations


def closed_paths(edges: dict[str, list[str]]) -> list[list[str]]:
    """One closed path (`a -> b -> a`) per set of nodes that reach each other, starting at the
    set's first node in `edges` order. Iterative (Tarjan's strongly connected components): a
    chain of a thousand fallbacks must not hit Python's recursion limit."""
    order = {n: i for i, n in enumerate(edges)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: dict[str, int] = {}  # node -> its position in stack
    groups: list[list[str]] = []

    def push(node: str) -> None:
        index[node] = low[node] = len(index)
        on_stack[node] = len(stack)
        stack.append(node)

    for root in edges:
        if root in index:
            continue
        push(root)
        work = [(root, iter(edges[root]))]
        while work:
            node, todo = work[-1]
            for nxt in todo:
                if nxt not in edges:
                    continue
                if nxt not in index:
                    push(nxt)
                    work.append((nxt, iter(edges[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = stack[on_stack[node]:]
                    del stack[on_stack[node]:]
                    for member in group:
                        del on_stack[member]
                    if len(group) > 1 or node in edges[node]:
                        groups.append(group)
    return sorted((_loop(min(g, key=order.__getitem__), set(g), edges) for g in groups),
                  key=lambda c: order[c[0]])


def _loop(start: str, members: set[str], edges: dict[str, list[str]]) -> list[str]:
    """The shortest path from `start` back to itself inside `members` (breadth first)."""
    came: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in edges[node]:
                if nxt == start:
                    back = [node]
                    while (prev := came[back[-1]]) is not None:
                        back.append(prev)
                    return [*reversed(back), start]
                if nxt in members and nxt not in came:
                    came[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError("a strongly connected component always has a loop")
