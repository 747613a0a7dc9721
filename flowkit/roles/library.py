"""flowkit's own roles, registered through the `flowkit.roles` entry points in pyproject.toml."""

from flowkit.roles.registry import RoleInfo

technical_analyst = RoleInfo("analyst", "technical_analyst.j2", "analyst_report",
                             "Reads price action and indicators.", focus="technical")
fundamentals_analyst = RoleInfo("analyst", "fundamentals_analyst.j2", "analyst_report",
                                "Reads reported earnings and surprises.", focus="fundamentals")
news_analyst = RoleInfo("analyst", "news_analyst.j2", "analyst_report",
                        "Reads dated headlines for events.", focus="news")
sentiment_analyst = RoleInfo("analyst", "sentiment_analyst.j2", "analyst_report",
                             "Reads the tone of recent news and the crowd.", focus="sentiment")
bull_researcher = RoleInfo("researcher", "bull_researcher.j2", "research_argument",
                           "Argues the case for buying.", stance="bull")
bear_researcher = RoleInfo("researcher", "bear_researcher.j2", "research_argument",
                           "Argues the case against.", stance="bear")
research_manager = RoleInfo("judge", "research_manager.j2", "research_verdict",
                            "Judges the bull/bear debate.")
trader = RoleInfo("trader", "trader.j2", "trade_proposal",
                  "Turns the research verdict into a sized trade.")
risk_manager = RoleInfo("risk", "risk_manager.j2", "risk_assessment",
                        "Advises on the proposal's risk (the rule engine decides).")
risk_debater = RoleInfo("risk", "risk_debater.j2", "risk_argument",
                        "Argues a risk stance: aggressive, conservative or neutral.")
portfolio_manager = RoleInfo("decider", "portfolio_manager.j2", "trade_proposal",
                             "Rules on the risk debate and sets the final order.")
manager = RoleInfo("manager", "manager.j2", "manager_plan",
                   "FinCon manager: assigns analysts, then decides.")
