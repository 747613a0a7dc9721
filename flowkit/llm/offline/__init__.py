"""The built-in `offline` model: a deterministic, rules-based stand-in for an LLM.

It never reads the prompt. It reads `request.context` (the same variables the prompt template
saw: market snapshot, earlier outputs, declared inputs, transcript, reports, beliefs, portfolio,
risk) and answers with the JSON the agent's output asks for, computed from the data. No network,
no randomness: the same context gives byte-identical content. Every text field says it is
"[offline rules-based model, not an LLM]" and names what drove the result.

One module per concern; the strategy is chosen by the output asked for and by what the role
declares (its kind, an analyst's focus, a researcher's or risk debater's stance), never by the
names of roles or agents:

  view       the request's context, number helpers, what an output is (flowkit.llm.offline.view)
  lexicon    headline scoring
  analysts   technical, fundamentals, news, sentiment; a user-defined analyst blends all four
  research   bull and bear researchers, the research manager's verdict
  trading    the trader, the portfolio manager, sizing, entry, stop and target
  risk       risk debaters and the risk manager
  manager    the FinCon manager
  schema     any other output schema, including user-defined roles' outputs
  model      OfflineModel

Declared inputs (agents.<id>.inputs): where a role looks for one output of a type (the trader
for a verdict, the risk roles and the portfolio manager for a proposal and a risk review) it
takes a declared input of that type first, else the latest in the state; every other declared
input with a direction (a score, or an action with a confidence) is one more view: in the
analyst consensus, among the peers an analyst moves toward, or among the reports a manager
decides from.

Beliefs (flowkit.memory.conditions): when a belief's condition holds, its effect applies and the
answer quotes its text (manager_plan lists it in beliefs_applied). Risk roles, which have no
direction of their own, shrink size by |bias| when the bias opposes the trade. Lessons are
strings: counted in the reasoning, not acted on.

Usage is estimated (characters / 4 for prompt and completion tokens); cost is 0."""

from flowkit.llm.offline.lexicon import tone_counts
from flowkit.llm.offline.model import OfflineModel
from flowkit.llm.offline.view import MARK, THRESHOLD

__all__ = ["MARK", "THRESHOLD", "OfflineModel", "tone_counts"]
