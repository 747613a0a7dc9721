"""The built-in role library: each role's kind, default prompt and output schema name.

Kept free of heavy imports: `flowkit validate` reads it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoleInfo:
    kind: str          # analyst | researcher | judge | trader | risk | decider | manager
    prompt: str        # template file name under prompts/
    output: str        # built-in output schema name (flowkit.roles.outputs.OUTPUTS)
    description: str
    # What the offline model reads where the kind alone does not say: an analyst's focus
    # (technical | fundamentals | news | sentiment), a researcher's side (bull | bear).
    focus: str | None = None
    stance: str | None = None


BUILTIN_ROLES: dict[str, RoleInfo] = {
    "technical_analyst": RoleInfo("analyst", "technical_analyst.j2", "analyst_report",
                                  "Reads price action and indicators.", focus="technical"),
    "fundamentals_analyst": RoleInfo("analyst", "fundamentals_analyst.j2", "analyst_report",
                                     "Reads reported earnings and surprises.",
                                     focus="fundamentals"),
    "news_analyst": RoleInfo("analyst", "news_analyst.j2", "analyst_report",
                             "Reads dated headlines for events.", focus="news"),
    "sentiment_analyst": RoleInfo("analyst", "sentiment_analyst.j2", "analyst_report",
                                  "Reads the tone of recent news and the crowd.",
                                  focus="sentiment"),
    "bull_researcher": RoleInfo("researcher", "bull_researcher.j2", "research_argument",
                                "Argues the case for buying.", stance="bull"),
    "bear_researcher": RoleInfo("researcher", "bear_researcher.j2", "research_argument",
                                "Argues the case against.", stance="bear"),
    "research_manager": RoleInfo("judge", "research_manager.j2", "research_verdict",
                                 "Judges the bull/bear debate."),
    "trader": RoleInfo("trader", "trader.j2", "trade_proposal",
                       "Turns the research verdict into a sized trade."),
    "risk_manager": RoleInfo("risk", "risk_manager.j2", "risk_assessment",
                             "Advises on the proposal's risk (the rule engine decides)."),
    "risk_debater": RoleInfo("risk", "risk_debater.j2", "risk_argument",
                             "Argues a risk stance: aggressive, conservative or neutral."),
    "portfolio_manager": RoleInfo("decider", "portfolio_manager.j2", "trade_proposal",
                                  "Rules on the risk debate and sets the final order."),
    "manager": RoleInfo("manager", "manager.j2", "manager_plan",
                        "FinCon manager: assigns analysts, then decides."),
}

# Which kinds may fill which slot of a pattern.
JUDGE_KINDS = frozenset({"judge", "decider"})
MANAGER_KINDS = frozenset({"manager"})
DECISION_KINDS = frozenset({"trader", "decider", "manager"})

OUTPUT_NAMES = frozenset({
    "analyst_report", "research_argument", "research_verdict", "trade_proposal",
    "risk_assessment", "risk_argument", "manager_plan",
})
