"""The use cases, one layer above the loop: run (one decision or a backtest, with seeds),
replay, resume, compare, train, and reading logged runs. The CLI and the public API in
flowkit/__init__.py call these; none of them prints (progress goes to a `Reporter`).
`Session` (one run, from flowkit.runtime) and `run_session` are here for callers that
instrument a run (bench/)."""

from flowkit.app.compare import Comparison, compare
from flowkit.app.events import Episode, Reporter, RunStarted
from flowkit.app.read import RunSummary, Transcript, list_runs, report, transcript
from flowkit.app.replay import Replay, Resumed, replay, resume
from flowkit.app.run import Invocation, run, run_session, run_to_end
from flowkit.app.train import Training, train
from flowkit.backtest.loop import Outcome, Progress
from flowkit.runtime.session import RunOptions, Session

__all__ = ["Comparison", "Episode", "Invocation", "Outcome", "Progress", "Replay", "Reporter", "Resumed",
           "RunOptions", "RunStarted", "RunSummary", "Session", "Training", "Transcript", "compare",
           "list_runs", "replay", "report", "resume", "run", "run_session", "run_to_end",
           "train", "transcript"]
