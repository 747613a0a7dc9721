"""HTML and PNG reports of runs, read from the event log through flowkit.store.RunStore."""

from flowkit.report.html import run_differences, write_comparison, write_report

__all__ = ["run_differences", "write_comparison", "write_report"]
