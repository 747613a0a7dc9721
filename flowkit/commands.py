"""Handlers of the runtime commands (imported only when one of them runs)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flowkit.errors import ConfigError


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def _db_for_readers(args: argparse.Namespace) -> str:
    from flowkit.runtime.session import existing_db

    return existing_db(args.db)


def run(args: argparse.Namespace) -> int:
    from flowkit.backtest.loop import Invocation, execute
    from flowkit.runtime.session import RunOptions
    from flowkit.spec.loader import load_workflow

    loaded = load_workflow(args.file, args.set)
    if bool(args.start) != bool(args.end):
        raise ConfigError("--start and --end go together")
    if args.date and args.start:
        raise ConfigError("--date is for one decision; --start/--end for a backtest")
    invocation = Invocation(symbols=args.symbols or None, date=args.date, start=args.start,
                            end=args.end, every=args.every, seeds=args.seeds, live=args.live)
    options = RunOptions(db=args.db, model=args.model, api_base=args.api_base, cache=args.cache,
                         symbols=args.symbols)
    return execute(loaded, options, invocation, out=None if args.quiet else sys.stdout)


def replay(args: argparse.Namespace) -> int:
    from flowkit.backtest.loop import replay_run
    from flowkit.store import open_reader

    code = replay_run(args.run_id, args.db, out=None if args.quiet else sys.stdout)
    if code:  # say why on stderr, in one line, like every other failing command
        with open_reader(_db_for_readers(args)) as con:
            row = con.execute("SELECT run_id, status, error FROM runs WHERE parent_run_id = ? "
                              "AND mode = 'replay' ORDER BY started_at DESC LIMIT 1",
                              [args.run_id]).fetchone()
        if row is None:
            print(f"error: replay of {args.run_id} failed", file=sys.stderr)
        elif row[1] != "completed":
            why = " ".join(str(row[2] or "").split())
            print(f"error: replay {row[0]} of {args.run_id} {row[1]}: {why}", file=sys.stderr)
        else:
            print(f"error: replay {row[0]} of {args.run_id} made different decisions than the "
                  f"original (see `flowkit show {row[0]}`)", file=sys.stderr)
    return code


def resume(args: argparse.Namespace) -> int:
    from flowkit.backtest.loop import resume_run

    return resume_run(args.run_id, args.db, out=None if args.quiet else sys.stdout)


def report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flowkit.report import write_report

    out = Path(args.out or f"reports/{args.run_id}.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    write_report(_db_for_readers(args), args.run_id, out, png=png)
    print(f"wrote {out} and {png}")
    return 0


def compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flowkit.backtest.loop import Invocation, run_many
    from flowkit.report import write_comparison
    from flowkit.runtime.session import RunOptions

    inv = Invocation(symbols=args.symbols or None, start=args.start, end=args.end)
    options = RunOptions(db=args.db, model=args.model, symbols=args.symbols)
    out = None if args.quiet else sys.stdout
    run_ids, db, status = run_many(args.files, args.set, options, inv, out)
    target = Path(args.out or f"reports/compare-{run_ids[0]}.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_comparison(db, run_ids, target)
    print(f"wrote {target}")
    return status


def train(args: argparse.Namespace) -> int:
    from flowkit.memory.training import train as run_training
    from flowkit.runtime.session import RunOptions
    from flowkit.spec.loader import load_workflow

    loaded = load_workflow(args.file, args.set)
    options = RunOptions(db=args.db, model=args.model, mode="train", symbols=args.symbols)
    return run_training(loaded, options, episodes=args.episodes, symbols=args.symbols,
                        out=None if args.quiet else sys.stdout)


def runs(args: argparse.Namespace) -> int:
    from flowkit.store import open_reader

    with open_reader(_db_for_readers(args)) as con:
        rows = con.execute("""
            SELECT r.run_id, r.workflow_name, r.mode, r.status, r.started_at,
                   (SELECT count(*) FROM decisions d WHERE d.run_id = r.run_id),
                   (SELECT count(*) FROM model_calls c WHERE c.run_id = r.run_id),
                   (SELECT coalesce(sum(cost_usd), 0) FROM model_calls c WHERE c.run_id = r.run_id)
            FROM runs r ORDER BY r.started_at DESC LIMIT ?""", [args.limit]).fetchall()
    if not rows:
        print("no runs yet")
        return 0
    print(table(["run", "workflow", "mode", "status", "started (UTC)", "decisions", "calls", "cost $"],
                 [[r[0], r[1], r[2], r[3], str(r[4])[:19], r[5], r[6], f"{r[7]:.4f}"] for r in rows]))
    return 0


def show(args: argparse.Namespace) -> int:
    from datetime import date

    from flowkit.store import open_reader

    if args.date:
        try:
            date.fromisoformat(args.date)
        except ValueError:
            raise ConfigError(f"bad --date {args.date!r}: expected YYYY-MM-DD") from None
    with open_reader(_db_for_readers(args)) as con:
        run = con.execute("SELECT workflow_name, mode, status, started_at, finished_at, error "
                          "FROM runs WHERE run_id = ?", [args.run_id]).fetchone()
        if run is None:
            raise ConfigError(f"no run {args.run_id} in this event log (see `flowkit runs`)")
        where, params = "run_id = ?", [args.run_id]
        if args.symbol:
            where += " AND symbol = ?"
            params.append(args.symbol)
        if args.date:
            where += " AND CAST(as_of AS DATE) = CAST(? AS DATE)"
            params.append(args.date)
        steps = con.execute(f"SELECT symbol, as_of, step_id, agent, role, pattern, round, status, "
                            f"output, error FROM steps WHERE {where} ORDER BY symbol, as_of, seq",
                            params).fetchall()
        decisions = {(d[0], str(d[1])): d for d in con.execute(
            f"SELECT symbol, as_of, action, size_pct, confidence, reasoning, agent FROM decisions "
            f"WHERE {where}", params).fetchall()}
        reviews = {(r[0], str(r[1])): r for r in con.execute(
            f"SELECT symbol, as_of, verdict, rule, requested_qty, approved_qty FROM risk_reviews "
            f"WHERE {where}", params).fetchall()}
    print(f"run {args.run_id} · {run[0]} · {run[1]} · {run[2]} · started {str(run[3])[:19]}"
          + (f" · error: {run[5]}" if run[5] else ""))
    current = None
    for symbol, as_of, step_id, agent, role, pattern, rnd, status, output, error in steps:
        key = (symbol, str(as_of))
        if key != current:
            if current:
                _print_outcome(current, decisions, reviews)
            current = key
            print(f"\n━━ {symbol} as of {str(as_of)[:19]} ━━")
        if pattern != "agent":
            if status != "ok":
                print(f"  [{pattern} {step_id}] {status}{': ' + error if error else ''}")
            continue
        label = f"{agent} ({role})" + (f" · round {rnd}" if rnd else "")
        if status == "skipped":
            print(f"  ‐ {label}: skipped (its `when:` condition was false)")
            continue
        if status != "ok":
            print(f"  ✗ {label}: {status}{': ' + error if error else ''}")
            continue
        print(f"  ▸ {label}")
        for line in _speech(json.loads(output) if isinstance(output, str) else output):
            print(f"      {line}")
    if current:
        _print_outcome(current, decisions, reviews)
    return 0


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


def _print_outcome(key: tuple[str, str], decisions: dict, reviews: dict) -> None:
    d = decisions.get(key)
    if d:
        print(f"  ⇒ decision ({d[6]}): {d[2]} size {d[3]:.1f}% confidence {d[4]:.2f}")
    r = reviews.get(key)
    if r:
        rule = f" by {r[3]}" if r[3] else ""
        print(f"  ⇒ risk engine: {r[2]}{rule} (requested {r[4]:g}, approved {r[5]:g})")


def table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(cells[0]), fmt(["─" * w for w in widths])] + [fmt(r) for r in cells[1:]])

