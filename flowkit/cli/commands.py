"""One handler per command: options in, a call into flowkit.app, text out. The application
layer is imported inside each handler, so `flowkit validate` never loads the runtime."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import Any, TextIO

from flowkit.errors import ConfigError, FlowkitError


def validate(args: argparse.Namespace) -> int:
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


def graph(args: argparse.Namespace) -> int:
    from flowkit.graph import render
    from flowkit.spec.loader import load_workflow

    spec = load_workflow(args.file, args.set).spec
    sys.stdout.write(render.dot(spec) if args.format == "dot" else render.mermaid(spec))
    return 0


# ---------------------------------------------------------------- commands that run models


def _settled() -> None:
    """Wait for the run's last commit before saying it was logged (the exit would wait for it
    anyway); StoreError if rows could not be written."""
    from flowkit.store import settle_all

    settle_all()


def _options(args: argparse.Namespace, **fixed: Any) -> Any:
    """The run options every model-running command takes from the catalogue."""
    from flowkit.app import RunOptions

    return RunOptions(db=args.db, model=args.model, api_base=args.api_base, cache=args.cache,
                      **fixed)


def _reporter(args: argparse.Namespace) -> Any:
    from flowkit.cli.console import Console

    return None if args.quiet else Console(sys.stdout)


def _failed(outcomes: list[Any]) -> int:
    """Exit 1, saying why in one line on stderr, if a run did not complete."""
    for o in outcomes:
        if o.status != "completed":
            print(f"error: run {o.run_id} {o.status}: {' '.join(str(o.error).split())}",
                  file=sys.stderr)
            return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from flowkit import app
    from flowkit.cli import present
    from flowkit.spec.loader import load_workflow

    inv = app.Invocation(symbols=args.symbols or None, date=args.date, start=args.start,
                         end=args.end, every=args.every, seeds=args.seeds, live=args.live)
    loaded = load_workflow(args.file, args.set)
    if args.estimate:
        if args.live:
            raise ConfigError("--estimate calls no model and trades nothing: drop --live")
        present.estimate(app.estimate(loaded, _options(args, symbols=args.symbols), inv),
                         sys.stdout)
        return 0
    outcomes = app.run(loaded, _options(args, symbols=args.symbols), inv, _reporter(args))
    _settled()
    for o in outcomes:
        present.outcome(o, inv, sys.stdout)
    if len(outcomes) > 1:
        present.seeds(outcomes, sys.stdout)
    return _failed(outcomes)


def resume(args: argparse.Namespace) -> int:
    from flowkit import app
    from flowkit.cli import present

    done = app.resume(args.run_id, args.db, _reporter(args), model=args.model,
                      api_base=args.api_base, cache=args.cache)
    _settled()
    if done.note:
        print(f"note: {done.note}")
    present.outcome(done.outcome, done.invocation, sys.stdout)
    return _failed([done.outcome])


def replay(args: argparse.Namespace) -> int:
    from flowkit import app
    from flowkit.cli import present

    r = app.replay(args.run_id, args.db, _reporter(args))
    _settled()
    if r.note:
        print(f"note: {r.note}")
    present.outcome(r.outcome, r.invocation, sys.stdout)
    print(f"replay of {r.original}: {r.decisions} decisions, "
          f"{'identical to the original' if r.identical else 'DIFFERENT from the original'}; "
          f"{r.provider_calls} provider calls")
    if r.outcome.status != "completed":
        print(f"error: replay {r.outcome.run_id} of {r.original} {r.outcome.status}: "
              f"{' '.join(str(r.outcome.error).split())}", file=sys.stderr)
        return 1
    if not r.identical:
        print(f"error: replay {r.outcome.run_id} of {r.original} made different decisions than "
              f"the original (see `flowkit show {r.outcome.run_id}`)", file=sys.stderr)
        return 1
    return 0


def compare(args: argparse.Namespace) -> int:
    from flowkit import app
    from flowkit.cli import present

    inv = app.Invocation(symbols=args.symbols or None, start=args.start, end=args.end,
                         every=args.every)
    done = app.compare(args.files, inv, _options(args, symbols=args.symbols), args.set, args.out,
                       _reporter(args))
    _settled()
    present.side_by_side(done.outcomes, done.differences, sys.stdout)
    print(f"wrote {done.report}")
    return _failed(done.outcomes)


def train(args: argparse.Namespace) -> int:
    from flowkit import app
    from flowkit.spec.loader import load_workflow

    loaded = load_workflow(args.file, args.set)
    result = app.train(loaded, _options(args, symbols=args.symbols), episodes=args.episodes,
                       symbols=args.symbols, reporter=_reporter(args))
    _settled()
    print(f"\nfrozen beliefs of training {result.training_id} (used by `flowkit run` on later "
          f"windows while learning.beliefs.enabled):")
    for b in result.beliefs:
        print(f"  - {b['text']}  → {', '.join(b['agents'])} {b['effect']}")
    return 0


# ---------------------------------------------------------------- reading the event log


def report(args: argparse.Namespace) -> int:
    from flowkit import app

    html, png = app.report(args.run_id, args.db, args.out)
    print(f"wrote {html} and {png}")
    return 0


def export(args: argparse.Namespace) -> int:
    from flowkit import app

    paths = app.export(args.run_id, args.parquet, args.db)
    print(f"wrote {len(paths)} tables of run {args.run_id} to {args.parquet}")
    return 0


def runs(args: argparse.Namespace) -> int:
    from flowkit import app
    from flowkit.cli.present import duration, table

    rows = app.list_runs(args.db, args.limit)
    if not rows:
        print("no runs yet")
        return 0
    def status(r: Any) -> str:
        return f"{app.run_state(r)}, resumable" if app.resumable(r) else app.run_state(r)

    def progress(r: Any) -> str:
        if not r.decision_times:
            return ""
        eta = app.eta_seconds(r)
        return f"{r.done}/{r.decision_times}" + ("" if eta is None else f" · ETA {duration(eta)}")

    print(table(["run", "workflow", "mode", "status", "progress", "started (UTC)", "decisions",
                 "calls", "cost $"],
                [[r.run_id, r.workflow_name, r.mode, status(r), progress(r),
                  str(r.started_at)[:19], r.decisions, r.model_calls, f"{r.cost_usd:.4f}"]
                 for r in rows]))
    db = f" --db {shlex.quote(args.db)}" if args.db else ""
    for r in rows:
        if app.resumable(r):
            print(f"resume {r.run_id}: flowkit resume {r.run_id}{db}")
    return 0


def show(args: argparse.Namespace) -> int:
    from flowkit import app

    t = app.transcript(args.run_id, args.db, symbol=args.symbol, day=args.date)
    out = sys.stdout
    out.write(f"run {t.run_id} · {t.workflow} · {t.mode} · {t.status} · started "
              f"{str(t.started_at)[:19]}" + (f" · error: {t.error}" if t.error else "") + "\n")
    for moment in t.moments:
        out.write(f"\n━━ {moment.symbol} as of {moment.as_of[:19]} ━━\n")
        for s in moment.steps:
            _print_step(s, out)
        _print_outcome(moment, out)
    return 0


def _print_step(s: dict[str, Any], out: TextIO) -> None:
    error = f": {s['error']}" if s["error"] else ""
    if s["pattern"] != "agent":
        if s["status"] != "ok":
            out.write(f"  [{s['pattern']} {s['step_id']}] {s['status']}{error}\n")
        return
    label = f"{s['agent']} ({s['role']})" + (f" · round {s['round']}" if s["round"] else "")
    if s["status"] == "skipped":
        out.write(f"  ‐ {label}: skipped (its `when:` condition was false)\n")
    elif s["status"] != "ok":
        out.write(f"  ✗ {label}: {s['status']}{error}\n")
    else:
        out.write(f"  ▸ {label}\n")
        for line in _speech(s["output"]):
            out.write(f"      {line}\n")
    if s.get("repairs"):  # what the repair ladder changed before the answer validated
        out.write(f"      repaired: {'; '.join(map(str, s['repairs']))}\n")
    trimmed = s["input"].get("trimmed") if isinstance(s.get("input"), dict) else None
    if trimmed:  # what was left out of the prompt to fit the model's context window
        from flowkit.graph.fit import describe

        out.write(f"      {describe(trimmed)}\n")


def _speech(out: dict[str, Any]) -> list[str]:
    """What an agent said, in a few readable lines."""
    head = [f"{k}: {out[k]}" for k in ("signal", "score", "stance", "recommendation", "winner",
                                       "action", "size_pct", "recommended_size_pct", "confidence",
                                       "conviction", "approve") if k in out]
    lines = [" · ".join(head)] if head else []
    for k in ("summary", "argument", "rebuttal", "rationale", "reasoning", "plan"):
        if out.get(k):
            lines.append(f"{k}: {out[k]}")
    for a in out.get("assignments") or []:
        lines.append(f"assigns {a.get('worker')}: {a.get('instruction')}")
    return lines or [json.dumps(out)]


def _print_outcome(moment: Any, out: TextIO) -> None:
    d, r = moment.decision, moment.review
    if d and d.get("status") == "invalid":
        out.write(f"  ⇒ decision ({d['agent']}): invalid, held: {d['reasoning']}\n")
    elif d:
        out.write(f"  ⇒ decision ({d['agent']}): {d['action']} size {d['size_pct']:.1f}% "
                  f"confidence {d['confidence']:.2f}\n")
    if r:
        rule = f" by {r['rule']}" if r["rule"] else ""
        out.write(f"  ⇒ risk engine: {r['verdict']}{rule} (requested {r['requested_qty']:g}, "
                  f"approved {r['approved_qty']:g})\n")


def sweep(args: argparse.Namespace) -> int:
    from flowkit.app.read import output_file, writing
    from flowkit.cli.present import table
    from flowkit.sweep.compare import compare, tables
    from flowkit.sweep.cutoff import sides
    from flowkit.sweep.report import write_report
    from flowkit.sweep.run import DATABASE, compact_sweep, run_sweep
    from flowkit.sweep.spec import load_sweep

    if args.compact:
        db, runs = compact_sweep(args.file)
        print(f"{db}: {runs} runs in one DuckDB file")
        return 0
    if args.check:
        s = load_sweep(args.file)
        sizes = [(len(s.variants), "variant"), (len(s.symbol_sets), "symbol set"),
                 (len(s.windows), "window"), (s.spec.seeds, "seed")]
        print(f"{args.file}: ok — " + " × ".join(f"{n} {what}{'s' * (n != 1)}"
                                                 for n, what in sizes))
        return 0

    def progress(p: Any) -> None:
        cell, r = p.record["cell"], p.record
        error = f": {r['error']}" if r["status"] != "completed" else ""
        print(f"[{p.done}/{p.total}] {cell['variant']} · {'+'.join(cell['symbols'])} · "
              f"{cell['start']}..{cell['end']} · seed {cell['seed']} · {r['status']}{error} "
              f"({r['seconds']:.1f}s) · ETA {p.eta_s:.0f}s", flush=True)

    result = run_sweep(args.file, executor_name=args.executor, workers=args.workers,
                       address=args.address, on_cell=None if args.quiet else progress,
                       force=args.force)
    comparison = compare(result.records, result.sweep.spec.metrics,
                         sides(result.sweep, result.records))
    print(f"\n{result.ran} cells run, {result.reused} already done · every cell's tables: "
          f"flowkit runs --db {result.folder / DATABASE}")
    for title, header, rows in tables(comparison):
        print(f"\n{title}\n{table(header, rows)}")
    for warning in comparison.warnings:
        print(f"warning: {warning}")
    out = output_file(args.out, result.folder / "report.html")
    with writing(out):
        write_report(result.sweep, comparison, out)
    print(f"\nreport: {out}")
    for r in result.failed:
        print(f"error: cell {r['cell']['id']} ({r['cell']['variant']}, "
              f"{'+'.join(r['cell']['symbols'])}, {r['cell']['start']}..{r['cell']['end']}) "
              f"{r['status']}: {r['error']}", file=sys.stderr)
    return 1 if result.failed else 0
