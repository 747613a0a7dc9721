"""The role registry: each role's kind, default prompt and output schema name.

Kept free of heavy imports: `flowkit validate` reads it."""

from __future__ import annotations

from dataclasses import dataclass

from flowkit.plugins import Registry, instance_of


@dataclass(frozen=True)
class RoleInfo:
    kind: str          # analyst | researcher | judge | trader | risk | decider | manager
    prompt: str        # template under prompts/, or an absolute path (a plugin's own file)
    output: str        # built-in output schema name (flowkit.roles.outputs.OUTPUTS)
    description: str
    # What the offline model reads where the kind alone does not say: an analyst's focus
    # (technical | fundamentals | news | sentiment), a researcher's side (bull | bear).
    focus: str | None = None
    stance: str | None = None


# Every role flowkit knows, by name: its own (flowkit/roles/library.py) and those installed
# packages add through the `flowkit.roles` entry point group. Read lazily by `flowkit validate`.
BUILTIN_ROLES: Registry[RoleInfo] = Registry("roles", "role", instance_of(RoleInfo))

# Which kinds may fill which slot of a pattern.
JUDGE_KINDS = frozenset({"judge", "decider"})
MANAGER_KINDS = frozenset({"manager"})
DECISION_KINDS = frozenset({"trader", "decider", "manager"})

OUTPUT_NAMES = frozenset({
    "analyst_report", "research_argument", "research_verdict", "trade_proposal",
    "risk_assessment", "risk_argument", "manager_plan",
})
