"""Context budgets: a profile's window (declared, the provider's, litellm's table), the token
estimate against real tokenizers, trimming by priority, and a model that never sees an
overflow: the TradingAgents firm against a fake OpenAI server that rejects any prompt larger
than its window with OpenAI's own 400 `context_length_exceeded`."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import WORKFLOWS, cli, dicts, firm, steps, without_ambient

from flowkit.graph.fit import KEEP_NEWS, Fitter
from flowkit.llm import faults
from flowkit.llm.context import Budget, estimate, request_tokens, window
from flowkit.spec import templates
from flowkit.spec.models import InlinePrompt, ModelProfile
from flowkit.testing.fakeserver import CallTools, FakeOpenAIServer, FakeRequest, Wordy

TA = str(WORKFLOWS / "tradingagents.yaml")
NEWS_TEXT = (Path(__file__).resolve().parents[1] / "flowkit" / "market" / "sample" / "news"
             / "MSFT.csv").read_text(encoding="utf-8").splitlines()[1000:1400]


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    without_ambient(monkeypatch)


@pytest.fixture(scope="module")
def encodings() -> list[Any]:
    """OpenAI's tokenizers, from the files litellm ships (no download)."""
    tiktoken = pytest.importorskip("tiktoken")
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.origin is not None
    folder = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    try:
        found = []
        for name in ("cl100k_base", "o200k_base"):
            try:
                found.append(tiktoken.get_encoding(name))
            except Exception:  # noqa: BLE001 - an encoding litellm does not ship
                continue
    finally:
        if saved is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR")
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    if not found:
        pytest.skip("no tiktoken encoding available offline")
    return found


def real_counter(encodings: list[Any]) -> Callable[[FakeRequest], int]:
    """What the strictest real tokenizer says a request costs: every message, its role
    markers and the output schema (OpenAI counts it)."""
    def count(req: FakeRequest) -> int:
        text = [str(m.get("content") or "") for m in req.messages]
        if req.schema:
            text.append(json.dumps(req.schema))
        return max(sum(len(enc.encode(t)) for t in text) for enc in encodings) \
            + 4 * len(req.messages) + 3
    return count


def ta_args(srv: FakeOpenAIServer, db: Path, window_tokens: int | None, *extra: str) -> list[str]:
    sets = ["pipeline.1.debate.rounds=3", "models.default.max_tokens=300",
            "models.deep.max_tokens=300"]
    if window_tokens:
        sets += [f"models.default.context_window={window_tokens}",
                 f"models.deep.context_window={window_tokens}"]
    return ["run", TA, "--api-base", srv.base_url, "--model", "openai/fake", "--db", str(db),
            "--cache", "off", "--quiet", *[a for s in sets for a in ("--set", s)], *extra]


def run_ta(encodings: list[Any], db: Path, server_window: int | None, declared: int | None,
           seed: int, *extra: str) -> tuple[int, str, list[FakeRequest], Callable[..., int]]:
    """The firm against a fake server of `server_window` tokens (None: any size), the profiles
    declaring `declared`; (exit code, output, requests received, the real counter)."""
    count = real_counter(encodings)
    with FakeOpenAIServer(context_window=server_window, count_tokens=count) as srv:
        srv.default(Wordy(NEWS_TEXT, seed=seed))
        code, out = cli(*ta_args(srv, db, declared, *extra))
        return code, out, list(srv.requests), count


def trims(db: Path, run_id: str) -> list[dict[str, Any]]:
    return [s for s in steps(db, run_id) if s["pattern"] == "agent"
            and isinstance(s["input"], dict) and s["input"].get("trimmed")]


# ---------------------------------------------------------------- the firm, end to end


def test_a_small_window_trims_the_firm_and_no_request_overflows(
        tmp_path: Path, encodings: list[Any]) -> None:
    db = tmp_path / "log.duckdb"
    code, out, sent, count = run_ta(encodings, db, 4000, 4000, 3, "--symbol", "NVDA",
                                    "--symbol", "GOOGL", "--date", "2023-08-15")
    assert code == 0, out
    # every request the server received fits, with its completion, and none was refused
    assert sent and all(count(r) + r.body["max_tokens"] <= 4000 for r in sent)
    [run] = dicts(db, "SELECT run_id, status FROM runs")
    assert run["status"] == "completed"
    assert dicts(db, "SELECT count(*) AS n FROM model_calls WHERE error IS NOT NULL")[0]["n"] == 0
    trimmed = trims(db, run["run_id"])
    # the later debate turns and judges lost older turns; every trimmed step fits its budget
    dropped_turns = [t for t in trimmed if t["input"]["trimmed"]["dropped"].get("debate_turns")]
    assert {t["symbol"] for t in dropped_turns} == {"NVDA", "GOOGL"}
    for t in trimmed:
        record = t["input"]["trimmed"]
        assert record["tokens_after"] <= record["budget"] < record["tokens_before"]
        assert record["window"] == 4000 and not record["retried"]
    # countable in SQL, visible in `flowkit show`
    [[n]] = [tuple(r.values()) for r in dicts(
        db, "SELECT count(*) FROM steps WHERE input->>'trimmed' IS NOT NULL")]
    assert n == len(trimmed) > 0
    code, shown = cli("show", run["run_id"], "--db", str(db))
    assert code == 0 and shown.count("trimmed to fit the 4,000-token window") == len(trimmed)
    for t in dropped_turns:  # what each step lost, under it
        n = t["input"]["trimmed"]["dropped"]["debate_turns"]
        assert f"dropped the {n} oldest debate turn{'s' if n > 1 else ''}" in shown


def test_the_estimate_over_counts_real_tokenizers_on_the_firms_prompts(
        tmp_path: Path, encodings: list[Any]) -> None:
    """The firm's real prompts (news, bars, long debate turns) without trimming: flowkit's
    estimate is never below what OpenAI's tokenizers count."""
    code, out, sent, _ = run_ta(encodings, tmp_path / "log.duckdb", None, None, 11,
                                "--symbol", "MSFT", "--date", "2024-02-20")
    assert code == 0, out
    assert len(sent) == 16  # 4 analysts, 3 rounds of bull and bear, judge, trader, 3 risk, pm
    for req in sent:
        for enc in encodings:
            for m in req.messages:
                text = str(m.get("content") or "")
                assert estimate(text) >= len(enc.encode(text)), text[:80]


def test_a_window_too_small_for_the_fixed_parts_is_one_clear_error(tmp_path: Path) -> None:
    with FakeOpenAIServer() as srv:
        code, out = cli(*ta_args(srv, tmp_path / "log.duckdb", 1000))
        assert srv.requests == []  # refused before any call
    assert code == 1
    assert "cannot fit a prompt" in out and "context window of 1,000 tokens" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


def test_an_endpoint_that_overflows_anyway_gets_a_harder_trim_and_one_more_try(
        tmp_path: Path, encodings: list[Any]) -> None:
    """No window known (openai/fake is in no table): the server's 400 is the only sign."""
    db = tmp_path / "log.duckdb"
    code, out, sent, count = run_ta(encodings, db, 2600, None, 5, "--symbol", "AAPL",
                                    "--date", "2023-06-01")
    assert code == 0, out
    [run] = dicts(db, "SELECT run_id, status FROM runs")
    assert run["status"] == "completed"
    refused = dicts(db, "SELECT step_id, error FROM model_calls WHERE error IS NOT NULL")
    assert refused and all("context_length_exceeded" in r["error"]
                           or "maximum context length" in r["error"] for r in refused)
    retried = {t["step_id"]: t["input"]["trimmed"] for t in trims(db, run["run_id"])}
    assert {r["step_id"] for r in refused} == set(retried)
    assert all(r["retried"] and r["window"] is None for r in retried.values())
    answered = [r for r in sent if count(r) + r.body["max_tokens"] <= 2600]
    assert len(sent) - len(answered) == len(refused)


def test_the_offline_model_is_never_trimmed(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    code, out = cli("run", TA, "--db", str(db), "--quiet", "--symbol", "BTC-USDT", "--set",
                    "pipeline.1.debate.rounds=4")
    assert code == 0, out
    [run] = dicts(db, "SELECT run_id FROM runs")
    assert trims(db, run["run_id"]) == []


# ---------------------------------------------------------------- the priority, property-tested

PRIORITY_PROMPT = """{{ symbol }} as of {{ as_of }}
{% for t in transcript %}[{{ t.round }}] {{ t.agent }}: {{ t.output|tojson }}
{% endfor %}{% for n in market.news %}- {{ n.time }} {{ n.headline|fence }}
{% endfor %}{% for b in market.recent_bars %}{{ b.time }} {{ b.close|num }}
{% endfor %}{% if market.fundamentals %}{% for q in market.fundamentals.history %}{{ q.fiscal_date_ending }} {{ q.reported_eps|num }}
{% endfor %}{% endif %}{% for id, o in outputs.items() %}{{ id }} {{ o|tojson }}
{% endfor %}"""


def _words(rng: random.Random, n: int) -> str:
    return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randrange(2, 9)))
                    for _ in range(n))


def _variables(rng: random.Random) -> dict[str, Any]:
    turns = [{"agent": f"p{i % 3}", "round": i // 3 + 1,
              "output": {"argument": _words(rng, rng.randrange(5, 60))}}
             for i in range(rng.randrange(0, 9))]
    outputs = {t["agent"]: t["output"] for t in turns}  # each speaker's last turn
    outputs["analyst"] = {"summary": _words(rng, rng.randrange(5, 80))}
    news = [{"time": f"2024-03-{d:02d}T{rng.randrange(24):02d}:00", "headline": _words(rng, 12)}
            for d in sorted(rng.sample(range(1, 29), rng.randrange(0, 20)), reverse=True)]
    bars = [{"time": f"2024-02-{d:02d}", "close": rng.uniform(1, 5000)}
            for d in range(1, rng.randrange(1, 12))]
    quarters = [{"fiscal_date_ending": f"{2023 - i}-12-31", "reported_eps": rng.uniform(-2, 9)}
                for i in range(rng.randrange(0, 8))]
    return {"agent": {"id": "judge"}, "symbol": rng.choice(["AAPL", "BTC-USDT", "7203.T"]),
            "as_of": "2024-03-29", "transcript": turns, "outputs": outputs,
            "market": {"news": news, "recent_bars": bars,
                       "fundamentals": {"history": quarters} if quarters else None}}


@pytest.mark.parametrize("seed", range(12))
def test_trimming_follows_the_priority_and_keeps_the_newest(seed: int) -> None:
    rng = random.Random(seed)
    compiled = templates.template(InlinePrompt(inline=PRIORITY_PROMPT), None, Path("."))
    full = _variables(rng)
    render = lambda v: templates.render(compiled, v, "judge")  # noqa: E731
    system = "You judge. " + _words(rng, 20)
    total = request_tokens([{"content": system}, {"content": render(full)}])
    for share in (0.95, 0.8, 0.65, 0.5, 0.4, 0.3, 0.2):
        limit = int(total * share)
        budget = Budget(window=limit * 2, max_tokens=0, profile="m", tokens=limit)
        fitter = Fitter("judge", system, None, None, budget, render)
        try:
            fitted, messages = fitter.prompt(full)
        except Exception as exc:  # a budget below the template's own text: said plainly
            assert "does not fit" in str(exc)
            continue
        assert request_tokens(messages) <= limit
        trim = fitter.trim
        assert trim is not None and trim.tokens_before == total
        dropped = trim.dropped
        turns, news = fitted["transcript"], fitted["market"]["news"]
        bars = fitted["market"]["recent_bars"]
        # the newest of each kind is what stays (the last resort may have cut its text)
        def ids(items: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
            return [tuple(i[k] for k in keys) for i in items]
        assert ids(turns, "agent", "round") == ids(
            full["transcript"][len(full["transcript"]) - len(turns):], "agent", "round")
        assert ids(news, "time") == ids(full["market"]["news"][:len(news)], "time")
        every_bar = full["market"]["recent_bars"]
        assert bars == every_bar[len(every_bar) - len(bars):]
        # older debate turns go first, then news beyond the newest few, then history
        if dropped.get("news"):
            assert len(turns) <= 1
        if dropped.get("bars") or dropped.get("quarters"):
            assert len(turns) <= 1 and len(news) <= KEEP_NEWS
        if dropped.get("quarters"):
            assert bars == []
        if trim.cut:
            assert len(turns) <= 1 and len(news) <= KEEP_NEWS and bars == []
        # a speaker whose every turn was dropped is not repeated through `outputs`
        kept = {t["agent"] for t in turns}
        gone = {t["agent"] for t in full["transcript"]} - kept
        assert not gone & set(fitted["outputs"]) or trim.cut
    # the shared state the step read from is untouched
    assert full == _variables(random.Random(seed))


# ---------------------------------------------------------------- windows and errors


def test_where_a_window_comes_from() -> None:
    assert window(ModelProfile(model="openai/fake", context_window=1500)) == 1500
    assert window(ModelProfile(model="offline")) is None
    assert window(ModelProfile(model="openai/some-private-model")) is None
    assert window(ModelProfile(model="local/smollm2")) == 8192
    known = window(ModelProfile(model="gpt-4o-mini"))
    assert known is not None and known >= 100_000  # litellm's table
    # the tightest of a profile and its fallbacks sets the budget
    big = ModelProfile(model="gpt-4o-mini", max_tokens=1000)
    small = ModelProfile(model="openai/x", context_window=4096, max_tokens=500)
    budget = Budget.of([big, small])
    assert budget is not None and budget.window == 4096
    assert budget.tokens == 4096 - 500 - 409


@pytest.mark.parametrize("error, overflow", [
    ("HTTP 400: BadRequestError: This model's maximum context length is 8192 tokens. However, "
     "you requested 9000 tokens", True),
    ("HTTP 400: ContextWindowExceededError: litellm.ContextWindowExceededError: ...", True),
    ("HTTP 400: the request exceeds the available context size, try increasing it", True),
    ("HTTP 400: {'code': 400, 'type': 'exceed_context_size_error'}", True),
    ("HTTP 400: Requested tokens (9000) exceed context window of 8192", True),
    ("HTTP 400: prompt is too long: 210000 tokens > 200000 maximum", True),
    ("HTTP 400: Invalid schema for response_format 'analyst_report'", False),
    ("HTTP 429: RateLimitError: Rate limit reached", False),
    (None, False),
])
def test_overflow_errors_are_recognised(error: str | None, overflow: bool) -> None:
    assert faults.context_overflow(error) is overflow


def test_hostile_text_costs_at_least_one_token_per_byte_where_tokenizers_do() -> None:
    rng = random.Random(0)
    cjk = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(300))
    emoji = "".join(chr(rng.randrange(0x1F600, 0x1F64F)) for _ in range(200))
    assert estimate(cjk) == len(cjk.encode())
    assert estimate(emoji) == len(emoji.encode())
    assert estimate("1234567890") == 10
    assert estimate("") == 0 and estimate("word") == 1


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(context_window=50) as server:
        yield server


def test_the_fake_server_refuses_like_openai(srv: FakeOpenAIServer) -> None:
    import urllib.error
    import urllib.request

    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 400}],
                       "max_tokens": 10}).encode()
    request = urllib.request.Request(f"{srv.base_url}/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 - loopback
    assert caught.value.code == 400
    error = json.loads(caught.value.read())["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"
    assert "maximum context length is 50 tokens" in error["message"]


def test_a_large_tool_result_is_cut_to_fit_before_it_is_sent(
        tmp_path: Path, encodings: list[Any]) -> None:
    count = real_counter(encodings)
    with FakeOpenAIServer(context_window=3000, count_tokens=count) as srv:
        srv.script(CallTools(calls=(("price_history", {"n": 400}),)))
        path = firm(tmp_path, "models: {default: {model: openai/fake, api_base: "
                    f"'{srv.base_url}', context_window: 3000, max_tokens: 300}}}}\n"
                    "agents: {technical: {role: technical_analyst, tools: [price_history]},\n"
                    "         trader: {role: trader}}\n"
                    "pipeline: [technical, trader]\n"
                    "market: {symbols: [ETH-USDT], source: sample}\n")
        db = tmp_path / "log.duckdb"
        code, out = cli("run", str(path), "--db", str(db), "--quiet", "--cache", "off")
        sent = list(srv.requests)
    assert code == 0, out
    assert len(sent) == 3  # the tool call, the answer after the tool result, the trader
    assert all(count(r) + r.body["max_tokens"] <= 3000 for r in sent)
    tool_turn = sent[1].messages[-1]
    assert tool_turn["role"] == "tool" and tool_turn["content"].endswith("…[cut]")
    [run] = dicts(db, "SELECT run_id FROM runs")
    [step] = [t for t in trims(db, run["run_id"]) if t["agent"] == "technical"]
    assert step["input"]["trimmed"]["cut"] == ["message 4 (tool)"]
