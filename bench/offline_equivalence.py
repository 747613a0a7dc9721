"""Does a change to the offline model keep the shipped firms' answers identical?

Runs a short offline backtest of workflows/tradingagents.yaml and workflows/fincon.yaml on two
symbols with this checkout and with another git revision (exported to a temp dir), records
every answer the offline model gave (agent, symbol, time, JSON content) and every decision, and
compares them. Exit 0 when identical, 1 with the first differences otherwise.

    python bench/offline_equivalence.py [--base main] [--symbols NVDA,MSFT]
                                        [--start 2024-01-02] [--end 2024-02-29]
                                        [--firms tradingagents.yaml,fincon.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMS = "tradingagents.yaml,fincon.yaml"  # under workflows/

# Runs inside the tree under test (its flowkit on PYTHONPATH); prints one JSON document.
_PROBE = r"""
import asyncio, json, sys
try:  # the application layer, or the loop that held the use cases before it
    from flowkit.app import Invocation, run_session
except ImportError:
    from flowkit.backtest.loop import Invocation, run_session
from flowkit.llm.offline import OfflineModel
from flowkit.runtime.session import RunOptions, Session
from flowkit.spec.loader import load_workflow

workflow, db, symbols, start, end = sys.argv[1:6]
answers = []

class Recorder(OfflineModel):
    async def complete(self, request):
        response = await super().complete(request)
        ctx = request.context
        answers.append([request.agent, ctx.get("symbol"), ctx.get("as_of"), response.content])
        return response

loaded = load_workflow(workflow, [])
recorder = Recorder()
symbols = symbols.split(",")
session = Session(loaded, RunOptions(db=db, mode="backtest", symbols=symbols),
                  models={name: recorder for name in loaded.spec.models})
try:
    outcome = asyncio.run(run_session(session, Invocation(symbols=symbols, start=start, end=end), None))
finally:
    session.close()
decisions = [[d.symbol, d.as_of, d.action, d.size_pct, d.confidence, d.reasoning]
             for d in outcome.decisions]
json.dump({"status": outcome.status, "error": outcome.error, "decisions": decisions,
           "answers": sorted(answers), "equity": [list(p) for p in outcome.equity]}, sys.stdout)
"""


def probe(tree: Path, firm: str, args: argparse.Namespace, tmp: Path) -> dict:
    db = tmp / f"{tree.name}-{firm}.duckdb"
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tree / "workflows" / firm), str(db), args.symbols,
         args.start, args.end],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True, text=True, check=False)
    if run.returncode:
        sys.exit(f"{tree} {firm}: the probe failed\n{run.stderr[-3000:]}")
    return json.loads(run.stdout)


def export(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main")
    parser.add_argument("--symbols", default="NVDA,MSFT")
    parser.add_argument("--start", default="2024-01-02")
    parser.add_argument("--end", default="2024-02-29")
    parser.add_argument("--firms", default=FIRMS)
    args = parser.parse_args()
    same = True
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "base").mkdir()
        base = export(args.base, tmp / "base")
        for firm in args.firms.split(","):
            old, new = probe(base, firm, args, tmp), probe(ROOT, firm, args, tmp)
            for part in ("status", "decisions", "answers", "equity"):
                if old[part] != new[part]:
                    same = False
                    diff = [(a, b) for a, b in zip(old[part], new[part]) if a != b] \
                        if isinstance(old[part], list) else [(old[part], new[part])]
                    print(f"{firm}: {part} differ ({len(old[part])} vs {len(new[part])}); first:")
                    for a, b in diff[:2]:
                        print(f"  {args.base}: {a}\n  here: {b}")
            print(f"{firm}: {len(new['decisions'])} decisions, {len(new['answers'])} model answers "
                  f"on {args.symbols} {args.start}..{args.end}: "
                  f"{'identical' if old == new else 'DIFFERENT'} to {args.base}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
