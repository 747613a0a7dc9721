"""The `flowkit` command. Every FlowkitError becomes a clear message and exit 1; any other
exception is reported as an internal error in one line (the traceback only with FLOWKIT_DEBUG=1)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

from flowkit import __version__
from flowkit.errors import FlowkitError
from flowkit.secrets import redacted_output

Handler = Callable[[argparse.Namespace], int]


def _validate(args: argparse.Namespace) -> int:
    from flowkit.spec.loader import load_workflow

    failed = 0
    for path in args.files:
        started = time.perf_counter()
        try:
            wf = load_workflow(path, args.set)
        except FlowkitError as exc:
            print(str(exc) if exc.location else f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        spec = wf.spec
        ms = (time.perf_counter() - started) * 1000
        print(f"{path}: ok — {spec.name}: {_count(len(spec.agents), 'agent')}, "
              f"{_count(len(spec.pipeline), 'top-level step')}, symbols "
              f"{', '.join(spec.market.symbols)} ({ms:.0f} ms)")
    return 1 if failed else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _graph(args: argparse.Namespace) -> int:
    from flowkit.graph import render
    from flowkit.spec.loader import load_workflow

    spec = load_workflow(args.file, args.set).spec
    sys.stdout.write(render.dot(spec) if args.format == "dot" else render.mermaid(spec))
    return 0


def _lazy(module: str, name: str) -> Handler:
    """Commands that need the runtime import it only when they run."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), name)(args)

    return handler


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--symbol", action="append", dest="symbols", metavar="SYM",
                   help="symbol to decide on (repeatable); default: market.symbols")
    p.add_argument("--date", help="decision date YYYY-MM-DD; default: the latest bar in the data")
    p.add_argument("--start", help="backtest start date (with --end: run over time)")
    p.add_argument("--end", help="backtest end date")
    p.add_argument("--every", choices=["1d", "1w", "1h"], help="decision frequency in a backtest")
    p.add_argument("--model", help="litellm model id for every profile (e.g. gpt-4o-mini, offline)")
    p.add_argument("--api-base", help="base URL of an OpenAI-compatible server for every profile")
    p.add_argument("--cache", choices=["off", "read_write", "replay"], help="response cache mode")
    p.add_argument("--seeds", type=int, default=1, help="repeat the backtest N times with seeds "
                   "0..N-1 and report mean ± standard error")
    p.add_argument("--live", action="store_true", help="allow live trading with the ccxt broker "
                   "(also needs FLOWKIT_LIVE_CONFIRM=I-UNDERSTAND)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _add_common(p: argparse.ArgumentParser, *, spec_overrides: bool = True) -> None:
    p.add_argument("--db", help="DuckDB event log (default: log.db of the workflow, FLOWKIT_DB, "
                   "or ./flowkit.duckdb)")
    if spec_overrides:
        p.add_argument("--set", action="append", default=[], metavar="dotted.path=value",
                       help="override a workflow value, e.g. --set risk.max_position_pct=10")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="flowkit", description="Multi-agent LLM trading firms as "
                                  "one YAML file: validate, inspect, run, backtest, report.")
    top.add_argument("--version", action="version", version=f"flowkit {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("validate", help="check workflow files against the schema and the rules",
                       description="Check workflow files; print every problem as file:line:col.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--set", action="append", default=[], metavar="dotted.path=value",
                   help="override a workflow value before checking")
    p.set_defaults(handler=_validate)

    p = sub.add_parser("graph", help="print the compiled topology (mermaid or dot)",
                       description="Print every agent, pattern and edge of a workflow.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    p.add_argument("--set", action="append", default=[], metavar="dotted.path=value")
    p.set_defaults(handler=_graph)

    p = sub.add_parser("run", help="run the firm: one decision, or a backtest with --start/--end",
                       description="Run a workflow. Without --start/--end: one decision per "
                       "symbol at --date (default: the latest data).")
    p.add_argument("file", metavar="FILE")
    _add_run_options(p)
    _add_common(p)
    p.set_defaults(handler=_lazy("flowkit.commands", "run"))

    p = sub.add_parser("runs", help="list runs in the event log")
    p.add_argument("--limit", type=int, default=20)
    _add_common(p, spec_overrides=False)
    p.set_defaults(handler=_lazy("flowkit.commands", "runs"))

    p = sub.add_parser("show", help="print a run's transcript: who said what, verdicts, decisions")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--symbol", help="only this symbol")
    p.add_argument("--date", help="only this decision date")
    _add_common(p, spec_overrides=False)
    p.set_defaults(handler=_lazy("flowkit.commands", "show"))

    p = sub.add_parser("replay", help="re-run a run from the response cache (zero model calls)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--quiet", action="store_true")
    _add_common(p, spec_overrides=False)
    p.set_defaults(handler=_lazy("flowkit.commands", "replay"))

    p = sub.add_parser("resume", help="continue a killed run from its last checkpoint")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--quiet", action="store_true")
    _add_common(p, spec_overrides=False)
    p.set_defaults(handler=_lazy("flowkit.commands", "resume"))

    p = sub.add_parser("report", help="write a self-contained HTML report (and PNG) of a backtest")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--out", help="HTML file to write (default: reports/RUN_ID.html)")
    _add_common(p, spec_overrides=False)
    p.set_defaults(handler=_lazy("flowkit.commands", "report"))

    p = sub.add_parser("compare", help="run several firms on the same window; one side-by-side report")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p.add_argument("--symbol", action="append", dest="symbols", metavar="SYM")
    p.add_argument("--out", help="HTML file (default: reports/compare-<first run>.html)")
    p.add_argument("--model", help="litellm model id for every profile of every firm")
    p.add_argument("--quiet", action="store_true")
    _add_common(p)
    p.set_defaults(handler=_lazy("flowkit.commands", "compare"))

    p = sub.add_parser("train", help="FinCon training: episodes over the training window distil beliefs")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--episodes", type=int, help="training episodes (default: learning.train.episodes)")
    p.add_argument("--symbol", action="append", dest="symbols", metavar="SYM")
    p.add_argument("--model", help="litellm model id for every profile")
    p.add_argument("--quiet", action="store_true")
    _add_common(p)
    p.set_defaults(handler=_lazy("flowkit.commands", "train"))

    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with redacted_output():  # no key reaches the terminal, whatever echoes it
        return _handle(args)


def _handle(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except FlowkitError as exc:
        print(f"error: {exc}" if exc.location is None else str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in flowkit: one line, not a traceback
        if os.environ.get("FLOWKIT_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set FLOWKIT_DEBUG=1 for the "
              f"traceback, and please report it)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
