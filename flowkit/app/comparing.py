"""Compare firms: each over the same window, into one event log, then one side-by-side report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from flowkit.app import live
from flowkit.app.events import Reporter
from flowkit.app.read import output_file, writing
from flowkit.app.running import Invocation, run_to_end
from flowkit.backtest.loop import Outcome
from flowkit.errors import ConfigError
from flowkit.runtime.session import RunOptions, Session


@dataclass
class Comparison:
    outcomes: list[Outcome]
    db: str
    report: Path
    differences: list[str]   # what differs between the runs (symbols, frequency, capital, ...)


def compare(files: list[str], inv: Invocation, options: RunOptions | None = None,
            overrides: list[str] | None = None, out: str | Path | None = None,
            reporter: Reporter | None = None) -> Comparison:
    """Backtest every firm over `inv`'s window and write the comparison report to `out`
    (default: reports/compare-<first run>.html)."""
    from flowkit.report import run_differences, write_comparison
    from flowkit.spec.loader import load_workflow

    inv.check()
    if not inv.start:
        raise ConfigError("compare needs a window: --start and --end")
    options = options or RunOptions()
    # every file checked before any run
    plans = [live.execution("compare", load_workflow(file, overrides), inv) for file in files]
    outcomes, db = [], ""
    for plan in plans:
        session = Session(plan.loaded, RunOptions(**{**asdict(options), "mode": plan.mode}))
        db = session.db_path
        outcomes.append(run_to_end(session, plan.inv, reporter))
    target = output_file(out, Path("reports", f"compare-{outcomes[0].run_id}.html"))
    ids = [o.run_id for o in outcomes]
    with writing(target):
        write_comparison(db, ids, target)
    return Comparison(outcomes, db, target, run_differences(db, ids))
