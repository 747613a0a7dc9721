"""The sweep report in headless Chromium: every plot and table is laid out, nothing overflows
the page, and it renders to a screenshot (needs Debian's chromium; marked `browser`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser_support import CHROMIUM, chromium
from flowkit.sweep.compare import compare
from flowkit.sweep.cutoff import sides
from flowkit.sweep.report import write_report
from flowkit.sweep.spec import load_sweep

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["sharpe", "cumulative_return", "max_drawdown"]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A report of three variants (an LLM one with a declared cutoff) over 5 windows x 2 symbols."""
    path = tmp_path / "grid.yaml"
    path.write_text(f"""sweep: browser
firms: [{ROOT}/workflows/sweeps/firms/single_agent.yaml, {ROOT}/workflows/examples/sequential.yaml]
vary: {{models.default.model: [offline, openai/some-llm]}}
knowledge_cutoffs: {{openai/some-llm: 2021-06-30}}
symbols: [AAPL, [MSFT, NVDA]]
windows:
  walk_forward: {{start: 2019-01-01, end: 2024-12-31, train_months: 12, test_months: 12}}
metrics: {METRICS}
""")
    sweep = load_sweep(path)
    records = []
    for i, v in enumerate(sweep.variants):
        for j, w in enumerate(sweep.windows):
            for symbols in sweep.symbol_sets:
                x = ((i * 7 + j * 3 + len(symbols)) % 11 - 5) / 10
                records.append({
                    "cell": {"id": f"{i}-{j}-{len(symbols)}", "variant": v.name,
                             "symbols": list(symbols), "start": str(w.start), "end": str(w.end),
                             "seed": 0},
                    "status": "completed",
                    "metrics": {"sharpe": x, "cumulative_return": x / 10, "max_drawdown": -abs(x) / 5,
                                "model_calls": 52, "cost_usd": 0.0, "decisions": 52},
                    "buy_and_hold": {"sharpe": 0.4, "cumulative_return": 0.05, "max_drawdown": -0.1},
                    "returns": [[f"{w.start}+{n:02}", r] for n, r in
                                enumerate([x / 100, -x / 200, x / 150] * 10)]})
    c = compare(records, METRICS, sides(sweep, records))
    return write_report(sweep, c, tmp_path / "report.html")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_browser_lays_out_every_plot_and_table_within_the_page(report: Path, tmp_path: Path) -> None:
    # Measure after layout, in a 1280 px window: each plot's and table's width, and the page's.
    page = tmp_path / "page.html"
    page.write_text(report.read_text().replace("</body>", """<script>
        const w = (sel) => [...document.querySelectorAll(sel)]
            .map((e) => Math.round(e.getBoundingClientRect().width)).join(",");
        document.body.dataset.svgs = w("figure svg");
        document.body.dataset.tables = w("table");
        document.body.dataset.page = document.documentElement.scrollWidth + "/" +
            document.documentElement.clientWidth;
        </script></body>"""))
    dom = chromium("--window-size=1280,2000", "--dump-dom", page.as_uri(), tmp=tmp_path).stdout
    svgs = [int(x) for x in re.search(r'data-svgs="([\d,]*)"', dom)[1].split(",")]
    tables = [int(x) for x in re.search(r'data-tables="([\d,]*)"', dom)[1].split(",")]
    scroll, client = map(int, re.search(r'data-page="(\d+)/(\d+)"', dom).groups())
    assert len(svgs) == len(METRICS) and all(200 < s <= client for s in svgs)
    assert len(tables) == 5 and all(0 < t <= client for t in tables)  # checklist + 4 tables
    assert scroll <= client  # no sideways scrolling
    assert "window vs cutoff" in dom and '<td class="num">before</td>' in dom and '<td class="num">after</td>' in dom
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars",
             report.as_uri(), tmp=tmp_path)
    assert shot.read_bytes()[:4] == b"\x89PNG"
