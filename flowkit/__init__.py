"""flowkit: a multi-agent LLM trading firm is one YAML file.

The small public API (heavy parts are imported on first use, so `import flowkit` is cheap)::

    import flowkit

    firm = flowkit.load("workflows/tradingagents.yaml", overrides=["risk.max_position_pct=10"])
    today = flowkit.run(firm, symbols=["AAPL"])                       # one decision
    bt = flowkit.run(firm, start="2024-01-02", end="2024-03-28", db="runs.duckdb")
    print(bt.status, bt.metrics["sharpe"], bt.run_id)
    again = flowkit.replay(bt.run_id, db="runs.duckdb")               # zero provider calls
    assert again.identical
    for moment in flowkit.read_run(bt.run_id, db="runs.duckdb").moments: ...

Every function raises a `FlowkitError` (with file:line:col where a file is at fault) for a
user's mistake. A run that starts and then fails is not an exception: its `Outcome.status`
says what happened (`completed`, `failed`, `budget_exceeded`) and `Outcome.error` why.
`flowkit.app` holds the same use cases with every option (seeds, resume, compare, train,
progress callbacks)."""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING, Any

from flowkit._version import __version__
from flowkit.errors import FlowkitError

if TYPE_CHECKING:
    from flowkit.app import Outcome, Replay, Reporter, Transcript
    from flowkit.spec.loader import LoadedWorkflow

__all__ = ["FlowkitError", "__version__", "load", "read_run", "replay", "run"]


def load(path: str | PathLike[str], overrides: list[str] | None = None) -> LoadedWorkflow:
    """Read and check a workflow file (what `flowkit validate` does); `overrides` are
    `dotted.path=value` strings, like --set."""
    from flowkit.spec.loader import load_workflow

    return load_workflow(path, overrides)


def run(workflow: LoadedWorkflow | str | PathLike[str], *, symbols: list[str] | None = None,
        date: str | None = None, start: str | None = None, end: str | None = None,
        every: str | None = None, db: str | None = None, model: str | None = None,
        api_base: str | None = None, cache: str | None = None, seed: int | None = None,
        models: dict[str, Any] | None = None, reporter: Reporter | None = None) -> Outcome:
    """Run the firm, like `flowkit run`: one decision per symbol at `date` (default: the
    latest bar in the data), or with `start` and `end` (YYYY-MM-DD) a backtest over every
    decision time between them (`every`: 1d, 1w, 1h), whose outcome carries metrics next to
    the baselines'.

    db, model, api_base, cache: as --db, --model, --api-base, --cache; seed: the runtime
    seed; models: {profile name: ChatModel} to serve those profiles with your own model
    objects; reporter: a `flowkit.app.Reporter` to watch progress."""
    from flowkit.app import Invocation, RunOptions, run_to_end
    from flowkit.runtime.session import Session
    from flowkit.spec.loader import LoadedWorkflow

    inv = Invocation(symbols=symbols, date=date, start=start, end=end, every=every)
    inv.check()
    loaded = workflow if isinstance(workflow, LoadedWorkflow) else load(workflow)
    options = RunOptions(db=db, model=model, api_base=api_base, cache=cache, seed=seed,
                         symbols=symbols, mode="backtest" if start else "decide")
    return run_to_end(Session(loaded, options, models=models), inv, reporter)


def replay(run_id: str, db: str | None = None) -> Replay:
    """Re-run a logged run from the response cache; `.identical` says whether every decision
    came out the same."""
    from flowkit.app import replay as replay_run

    return replay_run(run_id, db)


def read_run(run_id: str, db: str | None = None) -> Transcript:
    """A logged run: its status, and per symbol and decision time the steps (who said what),
    the decision and the risk review."""
    from flowkit.app import transcript

    return transcript(run_id, db)
