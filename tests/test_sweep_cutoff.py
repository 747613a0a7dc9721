"""Results split by whether each window starts after the knowledge cutoff of the models a firm
asks (declared in the sweep file, a profile, or the published table), in the terminal and the
HTML report; the offline model is "n/a"."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
from pathlib import Path

from flowkit.cli import main
from flowkit.sweep.cutoff import side
from flowkit.testing.fakeserver import FakeOpenAIServer
from sweep_support import here  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
SINGLE = ROOT / "workflows" / "sweeps" / "firms" / "single_agent.yaml"


def test_a_window_is_after_the_cutoff_only_if_it_starts_after_every_models() -> None:
    jan, jun = dt.date(2023, 1, 31), dt.date(2023, 6, 30)
    assert side(dt.date(2023, 2, 1), {"a": jan}) == "after"
    assert side(jan, {"a": jan}) == "before"  # the cutoff day itself may be in the training data
    assert side(dt.date(2023, 2, 1), {"a": jan, "b": jun}) == "before"
    assert side(dt.date(2023, 7, 3), {"a": jan, "b": jun}) == "after"
    assert side(dt.date(2030, 1, 1), {"a": jan, "b": None}) == "unknown"
    assert side(dt.date(2023, 2, 1), {}) == "n/a"  # the offline model only


def test_terminal_and_report_split_results_by_the_cutoff(here: Path) -> None:
    with FakeOpenAIServer() as srv:
        path = here / "grid.yaml"
        path.write_text(f"""sweep: cutoff
firms: [{SINGLE}]
vary:
  models.default.model: [offline, openai/fake-llm]
  models.default.api_base: ["{srv.base_url}"]
knowledge_cutoffs: {{openai/fake-llm: 2023-02-01}}
symbols: [AAPL, MSFT]
windows:
  fixed: [{{start: 2023-01-03, end: 2023-01-27}}, {{start: 2023-02-13, end: 2023-03-10}}]
every: 1w
metrics: [sharpe, cumulative_return]
""")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["sweep", str(path), "--quiet", "--workers", "2"])
        assert code == 0, err.getvalue()
        assert srv.requests  # the LLM variant did ask its model
    text = out.getvalue()
    assert "window vs cutoff" in text
    split = {(m["model"], m["side"]): int(m["cells"]) for m in re.finditer(
        r'^single_agent models\.default\.model="(?P<model>[^"]+)"\S* \S+\s+(?P<side>before|after|n/a|unknown)\s+(?P<cells>\d+)\s',
        text, re.M)}
    # Two symbols per window: the January window is before the declared cutoff, February after.
    assert split == {("offline", "n/a"): 4, ("openai/fake-llm", "before"): 2,
                     ("openai/fake-llm", "after"): 2}
    html = (here / "sweeps" / "cutoff" / "report.html").read_text()
    assert "window vs cutoff" in html and html.count('<td class="num">n/a</td>') == 1
    assert re.search(r"<td>Knowledge cutoff split</td><td class=\"ok\">yes</td><td>results split "
                     r"below: 2 cells after the cutoff, 2 cells before the cutoff</td>", html)


def test_a_model_of_unknown_cutoff_fails_the_check(here: Path) -> None:
    from flowkit.sweep.compare import compare
    from flowkit.sweep.cutoff import sides
    from flowkit.sweep.report import checklist
    from flowkit.sweep.spec import load_sweep

    path = here / "grid.yaml"
    path.write_text(f"""sweep: unknown
firms: [{SINGLE}]
vary: {{models.default.model: [openai/nobody-knows, gpt-4o-mini]}}
symbols: [AAPL]
windows:
  fixed: [{{start: 2023-09-01, end: 2023-09-29}}, {{start: 2024-01-02, end: 2024-01-31}}]
""")
    sweep = load_sweep(path)
    records = [{"cell": {"id": f"{v.name}{w.start}", "variant": v.name, "symbols": ["AAPL"],
                         "start": str(w.start), "end": str(w.end), "seed": 0},
                "status": "completed", "metrics": {"sharpe": 1.0}, "buy_and_hold": {"sharpe": 0.5},
                "returns": [[f"{w.start}T{h:02}", r] for h, r in enumerate([0.01, -0.01, 0.02])]}
               for v in sweep.variants for w in sweep.windows]
    found = sides(sweep, records)
    # gpt-4o-mini's published cutoff is 2023-10-01: September before it, January after.
    assert sorted(found.values()) == ["after", "before", "unknown", "unknown"]
    c = compare(records, ["sharpe"], found)
    [check] = [k for k in checklist(sweep, c) if k.item == "Knowledge cutoff split"]
    assert check.ok is False and "openai/nobody-knows" in check.detail
