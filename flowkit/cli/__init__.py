"""The `flowkit` command: it parses, calls the application layer (flowkit.app), and prints.
Every FlowkitError becomes a clear message and exit 1; any other exception is reported as an
internal error in one line (the traceback only with FLOWKIT_DEBUG=1)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from flowkit._version import __version__
from flowkit.cli import commands
from flowkit.cli.options import MODEL_OPTIONS, attach
from flowkit.errors import FlowkitError, Interrupted
from flowkit.secrets import redacted_output

_RUN_ID = ("run_id", dict(metavar="RUN_ID"))
_FILE = ("file", dict(metavar="FILE"))
_FILES = ("files", dict(nargs="+", metavar="FILE"))


@dataclass(frozen=True)
class Command:
    help: str
    positionals: tuple[tuple[str, dict[str, Any]], ...]
    options: tuple[str, ...]                          # names in the option catalogue
    extra: tuple[tuple[str, dict[str, Any]], ...] = field(default=())  # this command's own
    description: str | None = None


COMMANDS: dict[str, Command] = {
    "validate": Command("check workflow files against the schema and the rules", (_FILES,),
                        ("set",), description="Check workflow files; print every problem as "
                        "file:line:col."),
    "graph": Command("print the compiled topology (mermaid or dot)", (_FILE,), ("set",),
                     (("--format", dict(choices=["mermaid", "dot"], default="mermaid")),),
                     description="Print every agent, pattern and edge of a workflow."),
    "run": Command("run the firm: one decision, or a backtest with --start/--end", (_FILE,),
                   ("symbol", "date", "start", "end", "every", *MODEL_OPTIONS, "seeds", "live",
                    "estimate", "quiet", "db", "set"),
                   description="Run a workflow. Without --start/--end: one decision per symbol "
                   "at --date (default: the latest data)."),
    "runs": Command("list runs in the event log", (), ("db",),
                    (("--limit", dict(type=int, default=20)),)),
    "show": Command("print a run's transcript: who said what, verdicts, decisions", (_RUN_ID,),
                    ("only-symbol", "only-date", "db")),
    "replay": Command("re-run a run from the response cache (zero model calls)", (_RUN_ID,),
                      ("quiet", "db")),
    "resume": Command("continue a killed run from its last checkpoint", (_RUN_ID,),
                      (*MODEL_OPTIONS, "quiet", "db"),
                      description="Continue a killed run from its last checkpoint. --api-base "
                      "and --cache apply to the rest of the run; --model must name the model "
                      "it ran with."),
    "report": Command("write a self-contained HTML report (and PNG) of a backtest", (_RUN_ID,),
                      ("out", "db")),
    "export": Command("write every table of a run as Parquet files for other tools", (_RUN_ID,),
                      ("db",), (("--parquet", dict(metavar="DIR", required=True,
                                                   help="directory for <table>.parquet files")),)),
    "compare": Command("run several firms on the same window; one side-by-side report", (_FILES,),
                       ("start", "end", "every", "symbol", *MODEL_OPTIONS, "out", "quiet", "db",
                        "set")),
    "train": Command("FinCon training: episodes over the training window distil beliefs",
                     (_FILE,), ("symbol", *MODEL_OPTIONS, "quiet", "db", "set"),
                     (("--episodes", dict(type=int, help="training episodes (default: "
                                                         "learning.train.episodes)")),)),
    "sweep": Command("run a sweep: firm variants x symbols x windows x seeds, compared",
                     (_FILE,), ("out", "quiet"),
                     (("--check", dict(action="store_true", help="validate the sweep file "
                                       "and every variant, run nothing")),
                      ("--executor", dict(choices=["local", "serial", "ray"], default="local",
                                          help="local: a process pool (default); ray: Ray tasks")),
                      ("--workers", dict(type=int, help="worker processes (default: all cores)")),
                      ("--address", dict(help="Ray cluster address (default: a local instance)")),
                      ("--force", dict(action="store_true", help="run every cell again (model "
                                       "answers come from the cells' cache)")),
                      ("--compact", dict(action="store_true", help="write every finished "
                                         "cell's tables into one DuckDB file, run nothing"))),
                     description="Run the cells of a sweep file not done yet (each writes its "
                     "tables as Parquet under sweeps/<name>/cells/<cell>/), then print the "
                     "comparison and write the HTML report. sweeps/<name>/sweep.duckdb holds "
                     "views over every cell: `flowkit runs --db sweeps/<name>/sweep.duckdb`."),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="flowkit", description="Multi-agent LLM trading firms as "
                                  "one YAML file: validate, inspect, run, backtest, report.")
    top.add_argument("--version", action="version", version=f"flowkit {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description)
        for dest, spec in command.positionals:
            p.add_argument(dest, **spec)
        for flag, spec in command.extra:
            p.add_argument(flag, **spec)
        attach(p, *command.options)
        p.set_defaults(handler=getattr(commands, name))
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
    except Interrupted as exc:
        print(f"interrupted by {signal.Signals(exc.signum).name}: run {exc.run_id} is marked "
              f"interrupted; continue it with `flowkit resume {exc.run_id}`", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in flowkit: one line, not a traceback
        if os.environ.get("FLOWKIT_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set FLOWKIT_DEBUG=1 for the "
              f"traceback, and please report it)", file=sys.stderr)
        return 2
