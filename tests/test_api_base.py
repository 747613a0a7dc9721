"""An api_base is an http(s) URL a model call can reach, from the workflow or from --api-base:
anything else is one clear message before any call, never a failure per agent at run time."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
BAD = ["ftp://127.0.0.1:1/v1", "http://[::1", "127.0.0.1:8080/v1", "http://", "http://h:1/v 1",
       "javascript:alert(1)", "http://h:99999999/v1", "file:///etc/passwd"]
GOOD = ["http://127.0.0.1:8080/v1", "https://api.example.com", "http://[::1]:8080/v1",
        "http://gpu-box.local:9000/v1?token=abc"]


def _workflow(tmp_path: Path, api_base: str) -> Path:
    text = (ROOT / "workflows" / "tradingagents.yaml").read_text()
    path = tmp_path / "w.yaml"
    path.write_text(text.replace("    max_tokens: 1200\n",
                                 f"    max_tokens: 1200\n    api_base: {api_base!r}\n", 1))
    return path


@pytest.mark.parametrize("url", BAD)
def test_a_bad_api_base_in_the_workflow_is_located(tmp_path, capsys, url):
    path = _workflow(tmp_path, url)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path.name}:" in err and "models.default.api_base" in err and "http(s) URL" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("url", BAD)
def test_a_bad_api_base_flag_is_one_message_and_no_call(tmp_path, capsys, url):
    code = main(["run", str(ROOT / "workflows" / "tradingagents.yaml"), "--model", "openai/x",
                 "--api-base", url, "--db", str(tmp_path / "log.duckdb"), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and f"--api-base {url!r}" in err and "Traceback" not in err
    assert not (tmp_path / "log.duckdb").exists()  # refused before a run began


@pytest.mark.parametrize("url", GOOD)
def test_a_good_api_base_is_accepted(tmp_path, capsys, url):
    assert main(["validate", str(_workflow(tmp_path, url))]) == 0
    assert main(["run", str(ROOT / "workflows" / "tradingagents.yaml"), "--model", "openai/x",
                 "--api-base", url, "--estimate"]) == 0
