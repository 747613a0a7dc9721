"""Sweep executors: wall time of the same cells run serially, by the local process pool and
(with `--ray`, needs the [ray] extra) by Ray on a local instance; per-cell metrics must agree.

Default grid (the issue's): 2 firms (single agent, TradingAgents) x 5 symbols x 4 quarterly
windows of 2024 x 3 seeds = 120 cells, weekly decisions, offline. Each executor gets a fresh
folder, so nothing is reused. Prints wall times, the pool/serial and ray/pool ratios, the log
size per cell (its Parquet tables) and the load average (a shared machine moves every
figure).

    python bench/sweep.py [--workers 2] [--seeds 3] [--ray]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, loadavg  # noqa: E402

from flowkit.sweep.run import run_sweep  # noqa: E402

GRID = """sweep: bench
firms: [{root}/workflows/sweeps/firms/single_agent.yaml, {root}/workflows/tradingagents.yaml]
symbols: [AAPL, MSFT, GOOGL, AMZN, NVDA]
windows:
  fixed:
    - {{start: 2024-01-02, end: 2024-03-28}}
    - {{start: 2024-04-01, end: 2024-06-28}}
    - {{start: 2024-07-01, end: 2024-09-30}}
    - {{start: 2024-10-01, end: 2024-12-31}}
every: 1w
seeds: {seeds}
model: offline
"""


def timed(path: Path, folder: Path, **kw: object) -> tuple[float, dict[str, dict]]:
    t0 = time.perf_counter()
    result = run_sweep(path, folder=folder, **kw)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    if result.failed:
        raise SystemExit(f"{len(result.failed)} cells failed: {result.failed[0]['error']}")
    return wall, {r["cell"]["id"]: r for r in result.records}


def differences(ref: dict[str, dict], got: dict[str, dict]) -> list[str]:
    """Cells whose metrics differ between two executors, with the metrics that differ."""
    out = []
    for k, r in ref.items():
        keys = [m for m in r["metrics"] if r["metrics"][m] != got[k]["metrics"].get(m)]
        if keys or r["returns"] != got[k]["returns"]:
            c = r["cell"]
            out.append(f"  {c['variant']} {'+'.join(c['symbols'])} {c['start']} seed {c['seed']}: "
                       + ", ".join(f"{m} {r['metrics'][m]} vs {got[k]['metrics'].get(m)}"
                                   for m in keys))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ray", action="store_true")
    args = ap.parse_args()
    print(f"load average before: {loadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(GRID.format(root=ROOT, seeds=args.seeds))
        serial, ref = timed(path, Path(tmp) / "serial", executor_name="serial")
        print(f"{len(ref)} cells · serial: {serial:.1f} s ({serial / len(ref):.2f} s a cell)")
        pool, got = timed(path, Path(tmp) / "pool", workers=args.workers)
        diff = differences(ref, got)
        print(f"local pool ({args.workers} workers): {pool:.1f} s = {pool / serial:.2f}x serial "
              f"· per-cell metrics identical: {not diff}", *diff, sep="\n")
        if args.ray:
            import ray

            # Starting the instance is once per cluster, not per sweep: timed apart.
            t0 = time.perf_counter()
            ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
            start = time.perf_counter() - t0
            ray_wall, on_ray = timed(path, Path(tmp) / "ray", executor_name="ray")
            ray.shutdown()
            diff = differences(ref, on_ray)
            print(f"ray (local, {args.workers} CPUs): {ray_wall:.1f} s = {ray_wall / pool:.2f}x "
                  f"the pool ({(ray_wall + start) / pool:.2f}x with the instance's start-up, "
                  f"{start:.1f} s) · per-cell metrics identical: {not diff}", *diff, sep="\n")
        sizes = [r["log_bytes"] for r in ref.values()]
        print(f"log size per cell: median {statistics.median(sizes) / 1024:.0f} KiB, "
              f"max {max(sizes) / 1024:.0f} KiB")
    print(f"load average after: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
