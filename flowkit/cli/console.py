"""What a running command shows while it works: the run header, stage by stage for one
decision, a progress bar for a backtest, a line per training episode. `--quiet` shows none
of it (the result is printed either way)."""

from __future__ import annotations

from typing import TextIO

from flowkit.app import Episode, Progress, Reporter, RunStarted
from flowkit.cli.present import duration

_BAR = 28


class Console(Reporter):
    def __init__(self, out: TextIO):
        self.out = out
        self._before: int | None = None  # dates done before this process (a resume) began

    def started(self, run: RunStarted) -> None:
        if run.resumed_after is not None:
            where = f"after {run.resumed_after}" if run.resumed_after else "from the start"
            self.out.write(f"resuming run {run.run_id} {where}\n")
            return
        models = ", ".join(run.models)
        offline = " (rules-based stand-in, not an LLM)" if run.models == ["offline"] else ""
        self.out.write(f"run {run.run_id} · {run.workflow} · {run.kind} · "
                       f"{', '.join(run.symbols)} · {run.decision_times} decision time"
                       f"{'s' if run.decision_times != 1 else ''} · models: {models}{offline}\n")
        if run.beliefs:
            self.out.write(f"beliefs: {run.beliefs}\n")
        for w in run.warnings:
            self.out.write(f"warning: {w}\n")

    def step(self, symbol: str, as_of: str, step: str, status: str) -> None:
        self.out.write(f"  [{symbol} {as_of[:10]}] {step}: {status}\n")

    def progress(self, p: Progress) -> None:
        """A bar redrawn in place on a terminal; ten plain lines in a log file."""
        if p.total == 1:
            return
        tty = self.out.isatty()
        if not tty and p.done % max(1, p.total // 10) and p.done != p.total:
            return
        filled = int(_BAR * p.done / p.total)
        line = (f"[{'█' * filled}{'·' * (_BAR - filled)}] {p.done}/{p.total} dates · "
                f"{p.decisions} decisions · equity {p.equity:,.0f} · "
                f"{p.model_calls} model calls · ${p.cost_usd:.4f} · {p.elapsed_s:.1f}s{self._eta(p)}")
        end = "\n" if p.done == p.total or not tty else ""
        self.out.write(("\r" if tty else "") + line + end)
        self.out.flush()

    def _eta(self, p: Progress) -> str:
        """Time left at the pace of the dates this process did so far."""
        if self._before is None:
            self._before = p.done - 1
        left, pace = p.total - p.done, p.elapsed_s / max(1, p.done - self._before)
        if not left:
            return ""
        return f" · ETA {duration(left * pace)}"

    def episode(self, e: Episode) -> None:
        trend = ("" if e.number == 1 else " (same as the last)" if e.improved is None
                 else " (better than the last)" if e.improved else " (worse than the last)")
        self.out.write(f"episode {e.number}/{e.of}: run {e.run_id} · return "
                       f"{100 * e.cumulative_return:+.2f}%{trend} · {e.beliefs} beliefs\n")
