"""Item 3 of issue 10: the files a workflow may read. Prompt and data paths resolve inside the
workflow's folder or flowkit's own prompts (symlinks resolved first); anything else is refused
at validate, located, and nothing is read or sent, unless the user allows the folder in
FLOWKIT_ALLOW_PATHS."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from attack_support import REPO, flowkit

from flowkit.errors import FlowkitError
from flowkit.spec import templates
from flowkit.testing.fakeserver import FakeOpenAIServer

FIRM = """version: 1
name: reads-files
models:
  default: {{model: offline}}
agents:
  analyst: {{role: technical_analyst, prompt: "{prompt}"}}
  trader: {{role: trader, inputs: [analyst]}}
pipeline: [analyst, trader]
market:
  symbols: [AAPL]
{market}"""


@pytest.fixture(autouse=True)
def _no_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWKIT_ALLOW_PATHS", raising=False)


def write(folder: Path, prompt: str = "mine.j2", market: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mine.j2").write_text("Analyse {{ symbol }}.")
    path = folder / "firm.yaml"
    path.write_text(FIRM.format(prompt=prompt, market=market))
    return path


def secret_file(tmp_path: Path) -> Path:
    outside = tmp_path / "elsewhere" / "private.txt"
    outside.parent.mkdir(parents=True)
    outside.write_text("PRIVATE-CONTENT-{{ symbol }}")
    return outside


@pytest.mark.parametrize("prompt", ["/etc/passwd", "../elsewhere/private.txt",
                                    "sub/../../elsewhere/private.txt", "link.j2", "linkdir/private.txt"])
def test_a_prompt_outside_the_workflow_folder_fails_validate_at_the_prompt(
        capsys, tmp_path: Path, prompt: str) -> None:
    secret_file(tmp_path)
    folder = tmp_path / "firm"
    path = write(folder, prompt)
    (folder / "sub").mkdir()
    os.symlink(tmp_path / "elsewhere" / "private.txt", folder / "link.j2")
    os.symlink(tmp_path / "elsewhere", folder / "linkdir")
    code, out, err = flowkit(capsys, "validate", path)
    assert code == 1
    assert f"{path}:6:46: prompt file '{prompt}' is outside the workflow's folder" in err, err
    assert "FLOWKIT_ALLOW_PATHS" in err and "PRIVATE-CONTENT" not in out + err


def test_nothing_is_read_nor_sent_when_a_run_points_outside(capsys, tmp_path: Path) -> None:
    secret_file(tmp_path)
    path = write(tmp_path / "firm", "../elsewhere/private.txt")
    with FakeOpenAIServer() as srv:
        code, out, err = flowkit(capsys, "run", path, "--model", "openai/fake", "--api-base",
                                 srv.base_url, "--db", tmp_path / "log.duckdb", "--quiet")
    assert code == 1 and "outside the workflow's folder" in err
    assert srv.requests == []


def test_prompts_inside_the_folder_and_shipped_prompts_are_fine(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "firm"
    (folder / "prompts").mkdir(parents=True)
    (folder / "prompts" / "deep.j2").write_text("Deep {{ symbol }}.")
    for prompt in ("mine.j2", "prompts/deep.j2", "./prompts/../mine.j2", "technical_analyst.j2",
                   "prompts/trader.j2"):
        code, out, err = flowkit(capsys, "validate", write(folder, prompt))
        assert code == 0, (prompt, err)


def test_the_allow_list_widens_the_rule(capsys, tmp_path: Path, monkeypatch) -> None:
    secret_file(tmp_path)
    path = write(tmp_path / "firm", "../elsewhere/private.txt")
    monkeypatch.setenv("FLOWKIT_ALLOW_PATHS", os.pathsep.join(["/nonexistent", str(tmp_path / "elsewhere")]))
    code, out, err = flowkit(capsys, "validate", path)
    assert code == 0, err


@pytest.mark.parametrize("where", ["/etc", "../elsewhere", "~/data"])
def test_a_data_folder_outside_fails_validate_at_market_path(capsys, tmp_path: Path, where: str) -> None:
    (tmp_path / "elsewhere").mkdir()
    path = write(tmp_path / "firm", market=f"  source: csv\n  path: {where}\n")
    code, out, err = flowkit(capsys, "validate", path)
    assert code == 1
    assert f"{path}:12:9: market.path {where} is outside the workflow's folder" in err, err


def test_a_data_folder_inside_is_fine(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "firm"
    (folder / "data" / "ohlcv").mkdir(parents=True)
    shutil.copy(REPO / "flowkit" / "market" / "sample" / "ohlcv" / "AAPL.csv",
                folder / "data" / "ohlcv" / "AAPL.csv")
    code, out, err = flowkit(capsys, "validate", write(folder, market="  source: csv\n  path: data\n"))
    assert code == 0, err


def test_compiling_a_firm_refuses_an_outside_prompt_too(tmp_path: Path) -> None:
    # Defence in depth: a spec built in Python skips validate, the compiler still refuses.
    secret_file(tmp_path)
    (tmp_path / "firm").mkdir()
    with pytest.raises(FlowkitError, match="outside the workflow's folder"):
        templates.template("../elsewhere/private.txt", None, tmp_path / "firm")
    with pytest.raises(FlowkitError, match="outside the workflow's folder"):
        templates.template("/etc/passwd", None, tmp_path / "firm")
