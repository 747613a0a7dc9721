"""The real local LLM (SmolLM2-135M-Instruct under llama-cpp-python's server; needs the [local]
extra): wall per decision, the share of valid answers per structured-output mode before and
after the repair ladder, tokens per decision; and `--estimate` against what a run really made,
for the fake server and for the local model.

A one-agent firm (the trader) decides on one symbol for --days days, once per mode, with no
re-asks (an answer that does not validate after repairs is held `invalid`), so each answer is
counted once. `auto` asks json_schema first: llama.cpp's server rejects it (HTTP 500 naming
response_format) and the run steps down to json_object with the schema, which the server turns
into a grammar; `prompt` sends the schema only in the system message.

    python bench/local_model.py [--days 3] [--symbol AAPL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_line

from flowkit import app
from flowkit.spec.loader import load_workflow
from flowkit.store import open_reader
from flowkit.testing.fakeserver import FakeOpenAIServer

FIRM = """version: 1
name: bench-local-model
models:
  default: {{model: offline, max_tokens: 160, timeout: 600, structured_output: {mode}}}
agents:
  trader: {{role: trader}}
pipeline: [trader]
market: {{symbols: [{symbol}]}}
runtime: {{output_attempts: 1, max_invalid_share: 1, cache: "off"}}
"""


def rows(db: Path, sql: str) -> list[dict[str, Any]]:
    with open_reader(db) as con:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def run(folder: Path, mode: str, symbol: str, days: tuple[str, str], model: str,
        api_base: str | None = None) -> dict[str, Any]:
    path = folder / f"{mode}.yaml"
    path.write_text(FIRM.format(mode=mode, symbol=symbol))
    db = folder / f"{mode}-{model.replace('/', '_')}.duckdb"
    loaded = load_workflow(path)
    options = app.RunOptions(db=str(db), model=model, api_base=api_base)
    inv = app.Invocation(start=days[0], end=days[1])
    estimate = app.estimate(loaded, options, inv)
    started = time.perf_counter()
    [outcome] = app.run(loaded, options, inv)
    wall = time.perf_counter() - started
    assert outcome.status == "completed", outcome.error
    steps = rows(db, "SELECT status, repairs FROM steps WHERE pattern = 'agent'")
    calls = rows(db, "SELECT request->>'structured_output' AS mode, error, prompt_tokens, "
                     "completion_tokens, latency_ms FROM model_calls")
    decisions = len(rows(db, "SELECT 1 FROM decisions"))
    answered = [c for c in calls if c["prompt_tokens"]]
    return {
        "mode": mode, "decisions": decisions, "wall_per_decision": wall / decisions,
        "per_call": sum(c["latency_ms"] for c in answered) / max(1, len(answered)) / 1000,
        "valid_before": sum(s["status"] == "ok" and not s["repairs"] for s in steps) / len(steps),
        "valid_after": sum(s["status"] == "ok" for s in steps) / len(steps),
        "tokens_per_decision": sum(c["prompt_tokens"] + c["completion_tokens"]
                                   for c in answered) / decisions,
        "used": sorted({str(c["mode"]) for c in calls
                        if not c["error"] or "refused" not in c["error"]}),
        "refused": sorted({c["error"].split("[")[1].split(" refused")[0] for c in calls
                           if c["error"] and " refused: using " in c["error"]}),
        "estimate": estimate, "actual": (len(answered), sum(c["prompt_tokens"] for c in answered),
                                         sum(c["completion_tokens"] for c in answered)),
    }


def window(symbol: str, days: int) -> tuple[str, str]:
    """The last `days` daily bars shipped for `symbol`."""
    csv = Path(app.__file__).parents[1] / "market" / "sample" / "ohlcv" / f"{symbol}.csv"
    dates = [line.split(",")[0][:10] for line in csv.read_text().strip().splitlines()[1:]]
    return dates[-days], dates[-1]


def spend(r: dict[str, Any]) -> str:
    e = r["estimate"].window
    calls, prompt, completion = r["actual"]
    return (f"calls {e.calls} vs {calls} · prompt tokens {e.prompt_tokens:,} vs {prompt:,} · "
            f"completion tokens {e.completion_tokens:,} vs {completion:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--symbol", default="AAPL")
    args = parser.parse_args()
    days = window(args.symbol, args.days)
    print(machine_line())
    print(f"one trader on {args.symbol}, {days[0]}..{days[1]}, max_tokens 160, no re-asks\n")
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer() as srv:
        folder = Path(tmp)
        fake = run(folder, "auto", args.symbol, days, "openai/fake", srv.base_url)
        print(f"--estimate against actual, fake server: {spend(fake)}")
        results = [run(folder, mode, args.symbol, days, "local/smollm2")
                   for mode in ("auto", "prompt")]
    for r in results:
        asked = f"{' -> '.join([*r['refused'], *r['used']])}"
        print(f"\nlocal/smollm2, structured_output {r['mode']} ({asked}):")
        print(f"  wall per decision {r['wall_per_decision']:.1f} s ({r['per_call']:.1f} s per "
              f"answered call) · tokens per decision {r['tokens_per_decision']:.0f}")
        print(f"  valid answers: {r['valid_before']:.0%} as sent, {r['valid_after']:.0%} after "
              f"repairs ({r['decisions']} decisions)")
        print(f"  --estimate against actual: {spend(r)}")
    print("\njson_schema: refused by llama.cpp's server (HTTP 500, a validation error on "
          "response_format), so `auto` steps down to json_object (above).")


if __name__ == "__main__":
    main()
