"""HTML and PNG reports of runs, read from the event log through flowkit.store.RunStore."""

from flowkit.report.html import write_comparison, write_report

__all__ = ["write_comparison", "write_report"]
