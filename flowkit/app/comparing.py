"""Compare firms: each over the same window, into one event log, then one side-by-side report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from flowkit.app.events import Reporter
from flowkit.app.read import writing
from flowkit.app.running import Invocation, run_to_end
from flowkit.backtest.loop import Outcome
from flowkit.errors import ConfigError
from flowkit.runtime.session import RunOptions, Session


@dataclass
class Comparison:
    outcomes: list[Outcome]
    db: str
    report: Path


def compare(files: list[str], inv: Invocation, options: RunOptions | None = None,
            overrides: list[str] | None = None, out: str | Path | None = None,
            reporter: Reporter | None = None) -> Comparison:
    """Backtest every firm over `inv`'s window and write the comparison report to `out`
    (default: reports/compare-<first run>.html)."""
    from flowkit.report import write_comparison
    from flowkit.spec.loader import load_workflow

    inv.check()
    if not inv.start:
        raise ConfigError("compare needs a window: --start and --end")
    options = options or RunOptions()
    firms = [load_workflow(file, overrides) for file in files]  # every file checked before any run
    outcomes, db = [], ""
    for loaded in firms:
        session = Session(loaded, RunOptions(**{**asdict(options), "mode": "backtest"}))
        db = session.db_path
        outcomes.append(run_to_end(session, inv, reporter))
    target = Path(out or f"reports/compare-{outcomes[0].run_id}.html")
    with writing(target):
        write_comparison(db, [o.run_id for o in outcomes], target)
    return Comparison(outcomes, db, target)
