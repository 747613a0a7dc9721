"""The use cases, one layer above the loop: run (one decision or a backtest, with seeds),
replay, resume, compare, train, and reading logged runs. The CLI and the public API in
flowkit/__init__.py call these; none of them prints (progress goes to a `Reporter`).
`Session` (one run, from flowkit.runtime) and `run_session` are here for callers that
instrument a run (bench/).

Names load on first use: reading a run (`flowkit runs`, `show`, `report`) must not pay for
the runtime (numpy, the compiler, the model clients). Module names differ from the function
names (running.run, not run.run) because importing a submodule sets the package attribute
of the same name."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowkit.app.comparing import Comparison, compare
    from flowkit.app.events import Episode, Reporter, RunStarted
    from flowkit.app.read import (RunSummary, Transcript, eta_seconds, export, list_runs, report,
                                  resumable, run_state, transcript)
    from flowkit.app.replaying import Replay, Resumed, replay, resume
    from flowkit.app.estimating import Estimate, Spend
    from flowkit.app.running import Invocation, estimate, run, run_session, run_to_end
    from flowkit.app.training import Training, train
    from flowkit.backtest.loop import Outcome, Progress
    from flowkit.runtime.session import RunOptions, Session

_HOME = {
    "flowkit.app.comparing": ["Comparison", "compare"],
    "flowkit.app.events": ["Episode", "Reporter", "RunStarted"],
    "flowkit.app.read": ["RunSummary", "Transcript", "eta_seconds", "export", "list_runs", "report",
                         "resumable", "run_state", "transcript"],
    "flowkit.app.replaying": ["Replay", "Resumed", "replay", "resume"],
    "flowkit.app.estimating": ["Estimate", "Spend"],
    "flowkit.app.running": ["Invocation", "estimate", "run", "run_session", "run_to_end"],
    "flowkit.app.training": ["Training", "train"],
    "flowkit.backtest.loop": ["Outcome", "Progress"],
    "flowkit.runtime.session": ["RunOptions", "Session"],
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'flowkit.app' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
