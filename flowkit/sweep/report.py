"""The sweep report: one self-contained HTML page (inline SVG plots, no scripts, no links out)
with each metric's distribution per variant, the comparison tables, cost and calls, and the
honest-evaluation checklist."""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from pathlib import Path

from flowkit.sweep.compare import Comparison, tables
from flowkit.sweep.cutoff import model_cutoffs
from flowkit.sweep.spec import LoadedSweep

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d")


@dataclass(frozen=True)
class Check:
    item: str
    ok: bool | None      # None: not applicable
    detail: str


def checklist(sweep: LoadedSweep, c: Comparison) -> list[Check]:
    """What a reviewer asks before believing a comparison, answered from the firms and cells."""
    from flowkit.spec.loader import load_workflow

    firms = {v.name: load_workflow(v.firm, list(v.overrides)).spec for v in sweep.variants}
    free = [n for n, f in firms.items() if not (f.portfolio.fee_bps > 0 or f.portfolio.slippage_bps > 0)]
    same_bar = [n for n, f in firms.items() if f.portfolio.fill != "next_open"]
    cutoffs = model_cutoffs(sweep)
    unknown = sorted({m for models in cutoffs.values() for m, cut in models.items() if cut is None})
    counts: dict[str, int] = {}  # cells per side, over every variant
    for _, side, d in c.by_cutoff:
        counts[side] = counts.get(side, 0) + max((e.n for e in d.values()), default=0)
    if not any(cutoffs.values()):
        cutoff = Check("Knowledge cutoff split", None, "only the offline model answers: it has "
                       "no training data to remember")
    elif unknown:
        cutoff = Check("Knowledge cutoff split", False, f"unknown cutoff for {', '.join(unknown)}: "
                       f"declare it under knowledge_cutoffs in the sweep file")
    else:
        cutoff = Check("Knowledge cutoff split", bool(counts.get("after")),
                       "results split below: " + ", ".join(
                           f"{counts.get(side, 0)} cells {side} the cutoff" for side in
                           ("after", "before")))
    dsr = {v.name: v.sharpe_test.deflated for v in c.variants if v.sharpe_test}
    return [
        Check("Costs on", not free, "fees and slippage in every firm" if not free
              else f"no costs in {', '.join(free)}"),
        Check("Next-open fills", not same_bar, "orders fill at the next bar's open" if not same_bar
              else f"same-bar fills in {', '.join(same_bar)}"),
        Check("Look-ahead guarded", True, "every read goes through the as-of view (data layer)"),
        cutoff,
        Check("Seeds and windows", c.seeds >= 5 or c.windows >= 5,
              f"{c.seeds} seed{'s' * (c.seeds != 1)} × {c.windows} window"
              f"{'s' * (c.windows != 1)}"),
        Check("Deflated Sharpe", bool(dsr), f"over {len(c.variants)} variants tried: "
              + ", ".join(f"{n} {d:.2f}" for n, d in dsr.items() if d == d)),
    ]


def _plot(c: Comparison, metric: str) -> str:
    """Box plot with every cell as a jittered point, one box per variant, as inline SVG."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    names = [v.name for v in c.variants]
    data = [np.array([x for x in v.values[metric] if x is not None], dtype=float)
            for v in c.variants]
    fig = Figure(figsize=(max(4.0, 1.6 * len(names)), 3.4), dpi=96, layout="constrained")
    ax = fig.subplots()
    ax.boxplot([d if len(d) else [np.nan] for d in data], showfliers=False, widths=0.5,
               medianprops={"color": "#0f172a"})
    rng = np.random.default_rng(0)  # jitter only; fixed so the page is reproducible
    for i, d in enumerate(data, 1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=12, alpha=0.7,
                   color=PALETTE[(i - 1) % len(PALETTE)], zorder=3)
    # Variant names carry their overrides: wrap them (anywhere) so neighbours never overlap.
    ax.set_xticks(range(1, len(names) + 1), ["\n".join(textwrap.wrap(n, 20)) for n in names],
                  fontsize=7)
    ax.set_title(metric, fontsize=10, loc="left")
    ax.axhline(0, color="#94a3b8", linewidth=0.8)
    ax.grid(True, axis="y", color="#e2e8f0", linewidth=0.8)
    ax.spines[["top", "right"]].set_visible(False)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def write_report(sweep: LoadedSweep, c: Comparison, out: Path) -> Path:
    import jinja2
    from markupsafe import Markup

    from flowkit._version import __version__

    template = Path(__file__).with_name("report.html.j2").read_text(encoding="utf-8")
    html = jinja2.Environment(autoescape=True).from_string(template).render(
        sweep=sweep.spec, version=__version__, tables=tables(c), variants=len(c.variants),
        checks=checklist(sweep, c), warnings=c.warnings,
        plots=[Markup(_plot(c, m)) for m in c.metrics],
        windows=[w.label for w in sweep.windows], symbols=sweep.symbol_sets)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out

