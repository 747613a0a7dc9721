"""How names resolve: model ids to providers, in-process tools, clashing and broken plugins, and
the located errors `flowkit validate` gives for each kind."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from flowkit import plugins, tools
from flowkit.errors import PluginError, SpecError
from flowkit.plugins import SOURCES, provider_name
from flowkit.spec.loader import load_workflow
from flowkit.testing.conformance import check_tool

FIRM = Path(__file__).parent / "fixtures" / "valid" / "firm.yaml"


@pytest.mark.parametrize("model,provider", [
    ("offline", "offline"), ("offline/anything", "offline"), ("gpt-4o-mini", "litellm"),
    ("anthropic/claude-3-5-haiku-latest", "litellm"), ("ollama_chat/llama3.1", "litellm"),
    ("openai/offline", "litellm"), ("litellm", "litellm"), ("offline-ish", "litellm"),
])
def test_a_model_id_goes_to_the_provider_its_prefix_names(model: str, provider: str) -> None:
    assert provider_name(model) == provider


def firm_with(tmp_path: Path, old: str, new: str) -> Path:
    text = FIRM.read_text()
    assert old in text
    path = tmp_path / "firm.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("model", ["gpt-4o-mini", "anthropic/claude-3-5-haiku-latest",
                                   "ollama/llama3.1", "openai/gpt-4o", "groq/llama-3.1-8b",
                                   "offline/v2"])
def test_litellm_and_provider_ids_validate(tmp_path: Path, model: str) -> None:
    spec = load_workflow(firm_with(tmp_path, "model: offline\n    temperature",
                                   f"model: {model}\n    temperature")).spec
    assert spec.models["default"].model == model


@pytest.mark.parametrize("model,prefix", [("Offline", "Offline"), ("offlne", "offlne"),
                                          ("oflline/v2", "oflline")])
def test_a_provider_typo_is_a_located_error(tmp_path: Path, model: str, prefix: str) -> None:
    path = firm_with(tmp_path, "model: offline\n    temperature", f"model: {model}\n    temperature")
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    assert str(err.value) == (
        f"{path}:8:12: unknown model provider '{prefix}' in model '{model}' (did you mean "
        f"'offline'?); an id starts with a registered provider (local, offline) or is a litellm model id")


def test_a_tool_registered_in_process_validates_and_keeps_the_contract(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins.TOOLS, "_loaded", dict(plugins.TOOLS._loaded))  # forget it after

    @tools.tool(description="Distance of the close from its 20-day mean, in ATRs.")
    def stretch_test_only(view, window: int = 20) -> float:
        snap = view.snapshot()
        return (snap["price"]["close"] - snap["indicators"]["sma_20"]) / snap["indicators"]["atr_14"]

    path = firm_with(tmp_path, "tech: {role: technical_analyst}",
                     "tech: {role: technical_analyst, tools: [stretch_test_only, news]}")
    assert load_workflow(path).spec.agents["tech"].tools == ["stretch_test_only", "news"]
    check_tool("stretch_test_only", arguments={"window": 20})
    assert tools.get("stretch_test_only").parameters["properties"] == {"window": {"type": "integer"}}


def test_a_module_path_tool_is_imported_at_compile_time(tmp_path: Path) -> None:
    path = firm_with(tmp_path, "tech: {role: technical_analyst}",
                     "tech: {role: technical_analyst, tools: ['flowkit.tools.builtin:news']}")
    load_workflow(path)
    assert tools.get("flowkit.tools.builtin:news").name == "news"
    with pytest.raises(Exception, match="cannot be imported"):
        tools.get("flowkit.tools.builtin:no_such_tool")


def _with_extra(monkeypatch: pytest.MonkeyPatch, *extra: EntryPoint) -> None:
    real = plugins._installed
    monkeypatch.setattr(plugins, "_installed", lambda group: real(group) + tuple(
        ep for ep in extra if ep.group == group))


def test_two_packages_claiming_one_name_is_an_error_naming_both(monkeypatch) -> None:
    _with_extra(monkeypatch, EntryPoint("csv", "other_pkg:CsvSource", "flowkit.sources"))
    SOURCES._loaded.pop("csv", None)
    with pytest.raises(PluginError, match=r"data source 'csv' is registered by more than one "
                                          r"package: .*flowkit\.market\.sources:CsvSource.*"
                                          r"other_pkg:CsvSource"):
        SOURCES["csv"]


def test_a_plugin_that_fails_to_import_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    _with_extra(monkeypatch, EntryPoint("broken_feed", "no_such_module_xyz:Feed", "flowkit.sources"))
    assert "broken_feed" in SOURCES  # listed from metadata without importing it
    with pytest.raises(PluginError, match=r"data source 'broken_feed' \(no_such_module_xyz:Feed, "
                                          r"from .*\) cannot be imported: ModuleNotFoundError"):
        SOURCES["broken_feed"]
    path = firm_with(tmp_path, "source: sample", "source: broken_feed")
    assert load_workflow(path).spec.market.source == "broken_feed"  # validate never imports it


def test_a_role_whose_package_is_broken_is_a_located_error(monkeypatch, tmp_path: Path) -> None:
    _with_extra(monkeypatch, EntryPoint("ghost_analyst", "no_such_module_xyz:ghost", "flowkit.roles"))
    path = firm_with(tmp_path, "news: {role: news_analyst}", "news: {role: ghost_analyst}")
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:16:16: role 'ghost_analyst' (no_such_module_xyz:ghost, from an unknown package) "
        f"cannot be imported: ModuleNotFoundError: No module named 'no_such_module_xyz'"]
