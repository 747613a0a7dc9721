"""Secrets never reach the event log file, whatever column or write path they travel by."""

from __future__ import annotations

import json

import pytest

from flowkit.store import EventLog, open_reader
from flowkit.secrets import credentials as env_secrets

OPENAI = "sk-proj-Abc123def456GHI789jkl012MNO345"
ENV_SECRET = 'pa55:wörd"with\\quotes'    # needs JSON escaping, has non-ASCII
BROKER = "12345678"                       # numeric: redacting it must not break JSON numbers
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)
    monkeypatch.setenv("MY_SERVICE_PASSWORD", ENV_SECRET)
    monkeypatch.setenv("broker_token", BROKER)
    monkeypatch.setenv("SHORT_KEY", "abc")             # too short to be treated as a secret
    monkeypatch.setenv("HOME_DIRECTORY", "/home/quant-user")  # not a secret-looking name
    with EventLog(tmp_path / "log.duckdb") as log:
        yield log


def all_text(path) -> str:
    """Every string value in every table, as one blob."""
    chunks = []
    with open_reader(path) as con:
        for table, column in con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE data_type IN ('VARCHAR', 'JSON')").fetchall():
            chunks += [v for (v,) in con.execute(f'SELECT "{column}"::VARCHAR FROM "{table}"').fetchall() if v]
    return "\n".join(chunks)


def test_env_secret_selection(monkeypatch):
    env = {"OPENAI_API_KEY": OPENAI, "github_token": "ghp_" + "x" * 36, "DB_PASSPHRASE": "correct horse",
           "SHORT_SECRET": "1234567", "PATH": "/usr/local/bin:/usr/bin", "HOME": "/root"}
    found = env_secrets(env)
    assert OPENAI in found and "ghp_" + "x" * 36 in found and "correct horse" in found
    assert "1234567" not in found and "/root" not in found and "/usr/local/bin:/usr/bin" not in found


def test_secrets_are_redacted_on_every_write_path(log):
    leak = f"key={OPENAI} pw={ENV_SECRET} token {BROKER}"
    log.append("runs", {"run_id": "r", "status": "running", "config": {"api_key": OPENAI, "n": 1234567890}})
    log.append("model_calls", {"run_id": "r", "request": {"messages": [{"role": "user", "content": leak}],
                                                          "headers": {"Authorization": f"Bearer {BEARER}"}},
                               "response": leak, "error": f"401 for {OPENAI}"})
    log.append("steps", {"run_id": "r", "input": leak, "output": leak})
    log.update_run("r", status="failed", error=f"litellm.AuthenticationError: Incorrect API key {OPENAI}")
    log.checkpoint("r", 1, "2024-01-02", {"broker": {"password": ENV_SECRET}})
    log.cache_put("k", "m", {"content": leak})
    log.flush()
    text = all_text(log.path)
    for secret in (OPENAI, ENV_SECRET, json.dumps(ENV_SECRET)[1:-1], BROKER, BEARER):
        assert secret not in text
    assert "***" in text
    # JSON columns stay valid JSON after redaction
    with open_reader(log.path) as con:
        for (request,) in con.execute("SELECT request FROM model_calls_full").fetchall():
            assert json.loads(request)["headers"]["Authorization"] == "***"
        # {"n": 1234567890} contains BROKER: once redacted it is no JSON number, so the whole
        # text is kept as a JSON string rather than rejected
        assert json.loads(con.execute("SELECT config FROM runs").fetchone()[0]) == \
            '{"api_key":"***","n":***90}'
        state = json.loads(con.execute("SELECT state FROM checkpoints").fetchone()[0])
        assert state == {"broker": {"password": "***"}}
        assert con.execute("SELECT error FROM runs").fetchone()[0].endswith("Incorrect API key ***")
    with open(log.path, "rb") as f:
        raw = f.read()
    assert OPENAI.encode() not in raw and BEARER.encode() not in raw


@pytest.mark.parametrize("text, expected", [
    (f"Authorization: Bearer {BEARER}", "Authorization: ***"),
    ('{"authorization": "Basic dXNlcjpwYXNzd29yZA=="}', '{"authorization": "***"}'),
    (f"curl -H 'Bearer {BEARER}'", "curl -H 'Bearer ***'"),
    ("export ANTHROPIC=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv", "export ANTHROPIC=***"),
    ("aws AKIAIOSFODNN7EXAMPLE here", "aws *** here"),
    ("api_key=abcdef0a1b2c3d4e rest", "api_key=*** rest"),
    ('{"client_secret": "s3cr3t-value-123"}', '{"client_secret": "***"}'),
    ("password: hunter2hunter2", "password: ***"),
    # ordinary trading prose is left alone
    ("bearer bonds and basic materials", "bearer bonds and basic materials"),
    ("task-0a1b2c3d4e5f6g7h8i9j finished", "task-0a1b2c3d4e5f6g7h8i9j finished"),
    ("the risk-free rate; key levels: 185.5", "the risk-free rate; key levels: 185.5"),
])
def test_secret_patterns(log, text, expected):
    log.append("steps", {"run_id": "p", "error": text})
    assert log.query("SELECT error FROM steps WHERE run_id = 'p'") == [(expected,)]
