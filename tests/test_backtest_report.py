"""Reports from real backtests: `flowkit report RUN_ID` writes one self-contained HTML page and
a PNG of the equity curve; a headless browser renders the page; `flowkit compare` runs two firms
over one window and writes one side-by-side page."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from runtime_support import cli, rows

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
STRATEGIES = ("Firm", "Buy & hold", "SMA crossover", "MACD")


class Page(HTMLParser):
    """The parts of a report page the tests read."""

    def __init__(self, html: str):
        super().__init__()
        self.stack: list[tuple[str, dict]] = []
        self.sections: dict[str, dict] = {}
        self.external: list[str] = []
        self.metrics_rows: list[list[str]] = []
        self.decision_rows = 0
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.feed(html)

    def _section(self) -> dict | None:
        for tag, attrs in reversed(self.stack):
            if tag == "section" and attrs.get("id"):
                return self.sections.setdefault(attrs["id"], {"paths": 0, "svgs": 0, "text": []})
        return None

    def _in(self, tag: str, cls: str) -> bool:
        return any(t == tag and cls in (a.get("class") or "").split() for t, a in self.stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key) and not attrs[key].startswith("#"):
                self.external.append(f"{tag} {key}={attrs[key]}")
        if tag == "link" or (tag == "script" and attrs.get("src")):
            self.external.append(tag)
        if tag not in ("br", "img", "input", "meta", "path", "line", "circle", "rect", "polyline"):
            self.stack.append((tag, attrs))
        section = self._section()
        if section is not None and tag in ("path", "polyline"):
            section["paths"] += 1
        if section is not None and tag == "svg":
            section["svgs"] += 1
        if tag == "tr" and "decision" in (attrs.get("class") or "").split():
            self.decision_rows += 1
        if tag == "tr" and self._in("table", "metrics"):
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_startendtag(self, tag, attrs):  # <path .../>: opens nothing
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag not in (t for t, _ in self.stack):
            return
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.metrics_rows.append(self._row)
            self._row = None
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        section = self._section()
        if section is not None:
            section["text"].append(data)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def backtest(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "log.duckdb"
    rc, text = cli("run", str(ROOT / "workflows" / "tradingagents.yaml"), "--start", "2024-01-02",
                   "--end", "2024-03-28", "--db", str(db), "--quiet")
    assert rc == 0, text
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    out = tmp / "r.html"
    rc, text = cli("report", run_id, "--out", str(out), "--db", str(db))
    assert rc == 0, text
    return {"db": db, "run_id": run_id, "html": out, "png": out.with_suffix(".png"), "stdout": text,
            "tmp": tmp}


def check_report(html: str, backtest: dict) -> Page:
    page = Page(html)
    db, run_id = backtest["db"], backtest["run_id"]
    assert page.external == [], f"the report loads outside resources: {page.external}"
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", html) and "@import" not in html
    # The equity chart overlays the firm and three baselines; the drawdown and price charts too.
    assert {"equity", "drawdown", "price-AAPL", "metrics", "decisions"} <= set(page.sections)
    assert page.sections["equity"]["svgs"] == 1 and page.sections["equity"]["paths"] >= 4
    legend = " ".join(page.sections["equity"]["text"])
    assert all(name in legend for name in STRATEGIES)
    # The metrics table: one column per strategy, the stored numbers.
    header = page.metrics_rows[0]
    assert header[1:] == list(STRATEGIES)
    table = {r[0]: r[1:] for r in page.metrics_rows[1:]}
    metrics = {s: json.loads(m) for s, m in rows(db, "SELECT strategy, metrics FROM metrics WHERE "
                                                     "run_id = ? AND symbol IS NULL", run_id)}
    order = ("firm", "buy_and_hold", "sma_crossover", "macd")
    assert table["Final equity"] == [f"{metrics[s]['final_equity']:,.2f}" for s in order]
    assert table["Total return"] == [f"{100 * metrics[s]['cumulative_return']:+.2f}%" for s in order]
    excess = metrics["firm"]["cumulative_return"] - metrics["buy_and_hold"]["cumulative_return"]
    assert table["Excess return vs buy & hold (percentage points)"][0] == f"{100 * excess:+.2f} pp"
    # Every decision has its row for the drill-down.
    assert page.decision_rows == rows(db, "SELECT count(*) FROM decisions WHERE run_id = ?", run_id)[0][0]
    return page


def test_report_writes_self_contained_html_and_png(backtest):
    assert f"wrote {backtest['html']} and {backtest['png']}" in backtest["stdout"]
    html = backtest["html"].read_text()
    check_report(html, backtest)
    assert backtest["run_id"] in html
    width, height = png_size(backtest["png"])
    assert width >= 600 and height >= 300
    assert backtest["png"].stat().st_size > 10_000  # a drawn chart, not an empty canvas


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_report_renders_in_a_headless_browser(backtest):
    profile = backtest["tmp"] / "chromium-profile"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}"]
    url = backtest["html"].resolve().as_uri()
    try:
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True,
                             timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        page = check_report(dom.stdout, backtest)  # the DOM after the page's scripts ran
        assert page.sections["decisions"]["text"]
        shot = backtest["tmp"] / "shot.png"
        done = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,1600",
                               "--hide-scrollbars", url], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    # Something was drawn: many distinct colours (lines, text), not a blank page.
    colours = {tuple(p) for p in (pixels[::7, ::7, :3] * 255).astype(int).reshape(-1, 3)}
    assert len(colours) > 50


def test_compare_writes_one_side_by_side_report(tmp_path):
    db, out = tmp_path / "log.duckdb", tmp_path / "cmp.html"
    rc, text = cli("compare", str(ROOT / "workflows" / "tradingagents.yaml"),
                   str(ROOT / "workflows" / "fincon.yaml"), "--start", "2024-01-02",
                   "--end", "2024-02-29", "--db", str(db), "--out", str(out), "--quiet")
    assert rc == 0, text
    assert f"wrote {out}" in text
    assert [p.name for p in tmp_path.glob("*.html")] == ["cmp.html"]
    runs = rows(db, "SELECT run_id, workflow_name, status FROM runs ORDER BY started_at")
    assert [(w, s) for _, w, s in runs] == [("tradingagents", "completed"), ("fincon", "completed")]
    windows = rows(db, "SELECT run_id, min(as_of), max(as_of), count(DISTINCT as_of) FROM decisions "
                       "GROUP BY 1")
    assert len({w[1:] for w in windows}) == 1  # the same dates for both firms
    html = out.read_text()
    page = Page(html)
    assert page.external == []
    assert page.sections["equity"]["paths"] >= 2
    legend = " ".join(page.sections["equity"]["text"])
    header = page.metrics_rows[0]
    table = {r[0]: r[1:] for r in page.metrics_rows[1:]}
    for k, (run_id, workflow, _) in enumerate(runs):
        assert f"{workflow} · {run_id}" in legend
        assert header[1 + k] == run_id
        assert table["Workflow"][k] == workflow
        final = json.loads(rows(db, "SELECT metrics FROM metrics WHERE run_id = ? AND strategy = 'firm'",
                                run_id)[0][0])["final_equity"]
        assert table["Final equity"][k] == f"{final:,.2f}"
