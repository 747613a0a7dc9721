"""The deterministic risk engine: code, not prompts, has the last word on every order."""

from flowkit.risk.engine import Review, RiskEngine, RiskState, StopLevels, cvar
from flowkit.risk.limits import RULES
from flowkit.risk.proposal import parse_proposal

__all__ = ["RULES", "Review", "RiskEngine", "RiskState", "StopLevels", "cvar", "parse_proposal"]
