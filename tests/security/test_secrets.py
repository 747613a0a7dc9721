"""Item 2 of issue 10: a key leaves the process only for its owner, and no credential or
key-shaped string reaches any output (stdout, stderr, every DuckDB text column, the HTML
report, the PNG, the response cache), whatever echoes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from attack_support import TA, db_text, flowkit, recorder

from flowkit.testing.fakeserver import FakeOpenAIServer
from flowkit.secrets import key_shape, redact
from flowkit.store import open_reader

pytestmark = pytest.mark.usefixtures("http_path")  # lean and litellm transports alike

KEYS = {  # recognisable fake keys, one per provider shape
    "OPENAI_API_KEY": "sk-proj-FAKEopenai0123456789abcdefXYZ",
    "ANTHROPIC_API_KEY": "sk-ant-api03-FAKEanthropic0123456789abcdef",
    "GROQ_API_KEY": "gsk_FAKEgroq0123456789abcdefGHIJ",
    "HF_TOKEN": "hf_FAKEhuggingface0123456789abcd",
    "GEMINI_API_KEY": "AIzaFAKEgemini0123456789abcdefghijklmno",
    "GITHUB_TOKEN": "ghp_FAKEgithub0123456789abcdefghijklmnop",
    "AWS_ACCESS_KEY_ID": "AKIAFAKEAWS01234567Z",
    "AWS_SECRET_ACCESS_KEY": "Fk3aws9Secret0Access4Key7Random2Str8ing",
}
ACCESS = "plain-words-7731-quartz"  # held by a variable whose name does not look secret


@dataclass(frozen=True)
class EchoKeys:
    """A provider error that echoes the bearer it received and every key it can think of."""

    status: int = 401
    retry_after: str | None = None
    delay: float = 0.0

    def reply(self, req: Any) -> tuple[int, dict[str, str], Any]:
        bearer = req.headers.get("authorization", "").removeprefix("Bearer ")
        message = (f"Incorrect API key provided: {bearer}; "
                   f"other keys on file: {' '.join(KEYS.values())}")
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return self.status, headers, {"error": {"message": message, "type": "invalid_request_error",
                                                "code": "invalid_api_key"}}


@pytest.fixture(autouse=True)
def _keys_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWKIT_MODEL", "FLOWKIT_DEEP_MODEL", "FLOWKIT_DB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LLM_ACCESS", ACCESS)


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def secrets_in(text: str | bytes) -> list[str]:
    values = [*KEYS.values(), ACCESS]
    if isinstance(text, bytes):
        return [v for v in values if v.encode() in text]
    return [v for v in values if v in text]


def firm_with_key(tmp_path: Path, api_base: str, *, key_env: str | None = "LLM_ACCESS",
                  retries: int = 0) -> Path:
    """The TradingAgents firm with both profiles on `api_base`, keyed by `key_env`."""
    text = TA.read_text()
    key = f"\n    api_key_env: {key_env}" if key_env else ""
    for env in ("FLOWKIT_MODEL", "FLOWKIT_DEEP_MODEL"):
        text = text.replace(f"model: ${{env:{env}:-offline}}",
                            f"model: openai/fake\n    api_base: \"{api_base}\"{key}\n"
                            f"    retries: {retries}", 1)
    text = text.replace("    retries: 2\n", "")
    path = tmp_path / "firm.yaml"
    path.write_text(text)
    return path


def test_provider_key_is_not_sent_to_a_custom_api_base(capsys, srv, tmp_path: Path) -> None:
    # The README's own override on a shared workflow: gpt-4o-mini has no openai/ prefix.
    code, out, err = flowkit(capsys, "run", TA, "--model", "gpt-4o-mini", "--api-base",
                             srv.base_url, "--db", tmp_path / "log.duckdb", "--cache", "off",
                             "--quiet")
    assert code == 0, err
    assert len(srv.requests) == 14
    for req in srv.requests:
        assert not secrets_in(json.dumps(req.headers)), req.headers
        assert req.headers["authorization"] == "Bearer sk-local"


@pytest.mark.parametrize("model", ["anthropic/claude-3-5-haiku-20241022", "groq/llama-3.1-8b-instant",
                                   "gemini/gemini-1.5-flash"])
def test_no_provider_key_for_any_provider_at_a_custom_api_base(capsys, tmp_path: Path,
                                                                model: str) -> None:
    with recorder() as rec:
        code, out, err = flowkit(capsys, "run", TA, "--model", model, "--api-base", rec.url,
                                 "--db", tmp_path / "log.duckdb", "--cache", "off", "--quiet")
    assert rec.requests, "the model call never reached the custom api_base"
    for headers in rec.requests:
        assert not secrets_in(json.dumps(headers)), headers
    assert not secrets_in(out + err)
    assert not secrets_in(db_text(tmp_path / "log.duckdb"))


def test_the_named_key_goes_to_its_api_base_and_its_echo_is_masked(capsys, srv,
                                                                   tmp_path: Path) -> None:
    srv.default(EchoKeys())
    db = tmp_path / "log.duckdb"
    code, out, err = flowkit(capsys, "run", firm_with_key(tmp_path, srv.base_url), "--db", db,
                             "--cache", "off")
    assert srv.requests
    assert {r.headers["authorization"] for r in srv.requests} == {f"Bearer {ACCESS}"}
    text = db_text(db)
    assert "Incorrect API key provided" in text  # the error is kept, the key is not
    assert not secrets_in(out + err) and not secrets_in(text)


def test_a_token_interpolated_into_api_base_is_not_printed_nor_stored(
        capsys, srv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "proxy7-plain-token-value"
    monkeypatch.setenv("PROXY_URL", f"{srv.base_url}?token={token}")
    monkeypatch.setenv("PROXY_MODEL", "openai/fake")
    path = firm_with_key(tmp_path, "${env:PROXY_URL}", key_env=None)
    path.write_text(path.read_text().replace("model: openai/fake", "model: ${env:PROXY_MODEL}"))
    db = tmp_path / "log.duckdb"
    code, out, err = flowkit(capsys, "run", path, "--db", db, "--cache", "off")
    with open_reader(str(db)) as con:
        (config,) = con.execute("SELECT config FROM runs").fetchone()
    assert "?token=***" in config
    assert token not in config and token not in out + err and token not in db_text(db)


def test_a_full_backtest_leaks_no_key_to_any_output(capsys, srv, tmp_path: Path) -> None:
    # The first call's provider error (retried) echoes every key; the rest answer normally.
    srv.script(EchoKeys(status=429, retry_after="0"))
    db = tmp_path / "log.duckdb"
    firm = firm_with_key(tmp_path, srv.base_url, retries=1)
    code, out, err = flowkit(capsys, "run", firm, "--start", "2024-03-04", "--end", "2024-03-06",
                             "--db", db, "--cache", "read_write")
    assert code == 0, err
    with open_reader(str(db)) as con:
        (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
        errors = [e for (e,) in con.execute(
            "SELECT error FROM model_calls WHERE error IS NOT NULL").fetchall()]
        cached = con.execute("SELECT count(*) FROM model_cache").fetchone()[0]
    assert errors and "***" in errors[0]  # the echo was recorded, masked
    assert cached > 0
    html = tmp_path / "report.html"
    code2, out2, err2 = flowkit(capsys, "report", run_id, "--db", db, "--out", html)
    assert code2 == 0, err2
    outputs: dict[str, str | bytes] = {
        "stdout": out + out2, "stderr": err + err2, "duckdb": db_text(db),
        "html": html.read_text(), "png": html.with_suffix(".png").read_bytes(),
        "db file": db.read_bytes()}
    assert {where: secrets_in(text) for where, text in outputs.items() if secrets_in(text)} == {}


@pytest.mark.parametrize("value", [*KEYS.values(), "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"])
def test_one_list_of_key_shapes_for_validator_and_redactor(value: str) -> None:
    assert key_shape(f"api: {value}.") is not None
    assert value not in redact(f"key {value}, again: {value}", [])


@pytest.mark.parametrize("harmless", [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # a sha256 (workflow hash)
    "20241203-105817-ab12", "Apple-Q3-earnings-2024-beats-expectations-strongly",
    "bearer instruments", "sk-learn", "https://example.com/news/2024/03/04/apple?page=2"])
def test_hashes_ids_and_prose_are_not_keys(harmless: str) -> None:
    assert key_shape(harmless) is None
    assert redact(harmless, []) == harmless


def test_a_pasted_key_of_any_shape_fails_validate(capsys, tmp_path: Path) -> None:
    for i, value in enumerate(KEYS.values()):
        path = tmp_path / f"f{i}.yaml"
        path.write_text(TA.read_text().replace("temperature: 0.2", f"temperature: 0.2\n    api_base: "
                                               f"\"http://h/v1?k={value}\"", 1))
        code, out, err = flowkit(capsys, "validate", path)
        assert code == 1 and "looks like an API key" in err and f"{path}:13:15:" in err, err
        assert value not in out + err
