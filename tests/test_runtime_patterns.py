"""The five patterns, compiled from small YAML firms and run through the real runtime on the
shipped sample data. What each agent saw is read back from the DuckDB event log (steps rows and
the prompts in model_calls) and from a recording model injected for the `default` profile."""

from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path

import pytest
from runtime_support import (
    dicts,
    firm,
    model_calls,
    only,
    overlap,
    run_firm,
    steps,
    user_prompt,
)

from flowkit.cli import main
from flowkit.errors import FlowkitError, ModelError
from flowkit.spec import templates
from flowkit.testing.models import EagerModel, JitterModel, RecordingModel

HEAD = """
models:
  default: {model: offline}
market:
  symbols: [AAPL]
"""
SLOW = 30.0  # a branch this slow is only ever cancelled; the test never waits for it
# A model that never yields (the offline model, a cache hit) and one that answers concurrent
# calls in shuffled orders: what each agent sees, and so every prompt, must be the same.
TIMINGS = [pytest.param(EagerModel, id="never-yields"),
           pytest.param(functools.partial(JitterModel, seed=7), id="shuffled")]


def run(tmp_path: Path, body: str, model: RecordingModel | None = None, **kw):
    path = firm(tmp_path, HEAD + body)
    db = tmp_path / "log.duckdb"
    outcome = run_firm(path, db, models={"default": model} if model else None, **kw)
    return outcome, db


def agent_rows(db: Path, run_id: str) -> list[dict]:
    return [r for r in steps(db, run_id) if r["pattern"] == "agent"]


def prompts(db: Path, run_id: str, agent: str) -> list[str]:
    """The rendered prompt of each of `agent`'s model calls, in order."""
    return [user_prompt(c["request"]["messages"]) for c in model_calls(db, run_id)
            if c["agent"] == agent]


def markers(text: str, tag: str) -> list[str]:
    """`<agent@round>` markers an inline prompt printed after `tag:`."""
    return re.findall(r"<(\w+@\d+)>", text.split(f"{tag}:", 1)[1].split("\n", 1)[0])


# ---------------------------------------------------------------- sequential


def test_sequential_runs_in_order_and_later_steps_see_earlier_outputs(tmp_path: Path) -> None:
    model = RecordingModel(delays={"analyst": 0.05})
    outcome, db = run(tmp_path, """
agents:
  analyst: {role: technical_analyst}
  trader:
    role: trader
    prompt: {inline: "Desk {{ symbol }}. Seen:{% for id, o in outputs.items() %} [{{ id }} {{ o.signal }} {{ o.score }}]{% endfor %}"}
pipeline:
  - sequential: [analyst, trader]
""", model)
    assert outcome.status == "completed"
    rows = agent_rows(db, outcome.run_id)
    assert [(r["step_id"], r["status"]) for r in rows] == [
        ("sequential0/analyst", "ok"), ("sequential0/trader", "ok")]
    analyst, trader = rows
    assert analyst["finished_at"] <= trader["started_at"]
    # The trader's prompt, as sent and logged, quotes the analyst's logged output.
    out = analyst["output"]
    assert prompts(db, outcome.run_id, "trader") == [
        f"Desk AAPL. Seen: [analyst {out['signal']} {out['score']}]"]
    assert [c.outputs_seen for c in model.calls] == [[], ["analyst"]]
    [decision] = dicts(db, "SELECT agent, action FROM decisions WHERE run_id = ?", [outcome.run_id])
    assert decision == {"agent": "trader", "action": trader["output"]["action"]}


# ---------------------------------------------------------------- parallel

PARALLEL = """
agents:
  t: {{role: technical_analyst}}
  f: {{role: fundamentals_analyst}}
  n: {{role: news_analyst}}
  s: {{role: sentiment_analyst}}
  trader: {{role: trader}}
pipeline:
  - id: team
    parallel: {{steps: [t, f, n, s], join: "{join}", on_error: {on_error}}}
  - trader
"""


def test_parallel_branches_overlap_in_time_and_do_not_see_each_other(tmp_path: Path) -> None:
    # Different delays: t, f and n have answered while s is still waiting on its model.
    model = RecordingModel(delays={"t": 0.05, "f": 0.1, "n": 0.15, "s": 0.2})
    outcome, db = run(tmp_path, PARALLEL.format(join="all", on_error="fail_fast"), model)
    assert outcome.status == "completed"
    rows = {r["agent"]: r for r in agent_rows(db, outcome.run_id)}
    analysts = [rows[a] for a in "tfns"]
    assert all(r["status"] == "ok" for r in analysts)
    assert overlap([(r["started_at"], r["finished_at"]) for r in analysts])
    # Each analyst's model saw the state as of the parallel's start: no sibling output.
    assert {c.agent: c.outputs_seen for c in model.calls if c.agent in "tfns"} == {
        "t": [], "f": [], "n": [], "s": []}
    assert model.by_agent("trader")[0].outputs_seen == ["f", "n", "s", "t"]
    [team] = only(steps(db, outcome.run_id), step_id="team")
    assert team["status"] == "ok" and team["output"]["ok"] == ["t", "f", "n", "s"]


def test_parallel_outputs_are_read_in_yaml_order_whatever_order_branches_finish(
        tmp_path: Path) -> None:
    body = PARALLEL.format(join="all", on_error="fail_fast").replace(
        "trader: {role: trader}", "trader:\n    role: trader\n    prompt: {inline: \"Seen:"
        "{% for id in outputs %} {{ id }}{% endfor %}\"}")
    model = RecordingModel(delays={"t": 0.2, "f": 0.15, "n": 0.1, "s": 0.05})  # s finishes first
    outcome, db = run(tmp_path, body, model)
    assert [c.agent for c in model.calls][:4] == ["s", "n", "f", "t"]
    assert prompts(db, outcome.run_id, "trader") == ["Seen: t f n s"]


SEEN_PROMPT = "prompt: {inline: \"seen: {{ outputs | list | sort }}\"}"


@pytest.mark.parametrize("make", TIMINGS)
def test_parallel_branches_never_see_each_other_whatever_the_timing(tmp_path: Path, make) -> None:
    body = PARALLEL.format(join="all", on_error="fail_fast")
    for a in "tfns":
        role = re.search(rf"  {a}: {{role: (\w+)}}", body)[1]
        body = body.replace(f"  {a}: {{role: {role}}}", f"  {a}: {{role: {role}, {SEEN_PROMPT}}}")
    model = make()
    outcome, db = run(tmp_path, body, model)
    assert outcome.status == "completed"
    for a in "tfns":  # each branch rendered, and its model read, the state the parallel began with
        assert prompts(db, outcome.run_id, a) == ["seen: []"]
    assert model.seen() == {"t": [[]], "f": [[]], "n": [[]], "s": [[]],
                            "trader": [["f", "n", "s", "t"]]}


@pytest.mark.parametrize("join, fast", [("any", ["t"]), ("quorum:2", ["t", "f"])])
def test_join_any_and_quorum_stop_early_and_record_the_rest(tmp_path: Path, join: str,
                                                             fast: list[str]) -> None:
    delays = {a: SLOW for a in "tfns"} | {a: 0.01 * (i + 1) for i, a in enumerate(fast)}
    model = RecordingModel(delays=delays)
    outcome, db = run(tmp_path, PARALLEL.format(join=join, on_error="fail_fast"), model)
    assert outcome.status == "completed"
    rows = {r["agent"]: r for r in agent_rows(db, outcome.run_id)}
    slow = [a for a in "tfns" if a not in fast]
    assert {a: rows[a]["status"] for a in "tfns"} == {a: "ok" if a in fast else "cancelled"
                                                      for a in "tfns"}
    assert all(rows[a]["error"] for a in slow)
    [team] = only(steps(db, outcome.run_id), step_id="team")
    assert team["status"] == "ok"
    assert team["output"] == {"join": join, "ok": fast, "failed": {}, "cancelled": slow}
    # The trader goes on with the branches that made the join, and only those.
    assert model.by_agent("trader")[0].outputs_seen == sorted(fast)
    assert rows["trader"]["status"] == "ok"
    assert not [c for c in model.calls if c.agent in slow]  # no slow answer ever arrived


PARALLEL_THEN_DEBATE = """
agents:
  t: {{role: technical_analyst}}
  f: {{role: fundamentals_analyst}}
  n: {{role: news_analyst}}
  s: {{role: sentiment_analyst}}
  bull: {{role: bull_researcher}}
  bear: {{role: bear_researcher}}
  judge: {{role: research_manager}}
  trader: {{role: trader}}
pipeline:
  - id: team
    parallel: {{steps: [t, f, n, s], join: all, on_error: {on_error}}}
  - id: research
    debate: {{participants: [bull, bear], rounds: 1, judge: judge}}
  - trader
"""


def test_on_error_fail_fast_cancels_siblings_and_fails_the_run(tmp_path: Path) -> None:
    model = RecordingModel(delays={"t": SLOW, "f": SLOW, "s": SLOW, "n": 0.01}, fail={"n"})
    outcome, db = run(tmp_path, PARALLEL_THEN_DEBATE.format(on_error="fail_fast"), model)
    assert outcome.status == "failed"
    assert "team" in outcome.error and "scripted failure for n" in outcome.error
    [run_row] = dicts(db, "SELECT status, error FROM runs WHERE run_id = ?", [outcome.run_id])
    assert run_row == {"status": "failed", "error": outcome.error}
    rows = steps(db, outcome.run_id)
    status = {r["agent"]: r["status"] for r in rows if r["agent"]}
    assert status == {"n": "failed", "t": "cancelled", "f": "cancelled", "s": "cancelled"}
    assert only(rows, step_id="team")[0]["status"] == "failed"
    assert not only(rows, step_id="research")  # nothing after the failure ran
    assert not dicts(db, "SELECT * FROM decisions WHERE run_id = ?", [outcome.run_id])


def test_on_error_continue_records_the_failure_and_the_debate_still_runs(tmp_path: Path) -> None:
    model = RecordingModel(delays={"t": 0.02, "f": 0.02, "s": 0.02}, fail={"n"})
    outcome, db = run(tmp_path, PARALLEL_THEN_DEBATE.format(on_error="continue"), model)
    assert outcome.status == "completed"
    rows = steps(db, outcome.run_id)
    [n_row] = only(rows, agent="n")
    assert n_row["status"] == "failed" and "scripted failure for n" in n_row["error"]
    [team] = only(rows, step_id="team")
    assert team["status"] == "ok" and team["output"]["ok"] == ["t", "f", "s"]
    assert list(team["output"]["failed"]) == ["n"]
    assert [(r["agent"], r["status"]) for r in rows if r["step_id"].startswith("research/")] == [
        ("bull", "ok"), ("bear", "ok"), ("judge", "ok")]
    assert model.by_agent("bull")[0].outputs_seen == ["f", "s", "t"]  # without the failed one
    [decision] = dicts(db, "SELECT agent FROM decisions WHERE run_id = ?", [outcome.run_id])
    assert decision["agent"] == "trader"


def test_parallel_that_cannot_meet_its_join_fails(tmp_path: Path) -> None:
    model = RecordingModel(fail={"t", "f", "n"}, delays={"s": SLOW})
    outcome, db = run(tmp_path, PARALLEL.format(join="quorum:2", on_error="continue"), model)
    assert outcome.status == "failed" and "cannot be met" in outcome.error
    status = {r["agent"]: r["status"] for r in agent_rows(db, outcome.run_id)}
    assert status == {"t": "failed", "f": "failed", "n": "failed", "s": "cancelled"}


class DeadEndpoint(RecordingModel):
    """Every failing agent meets the same error, as behind one endpoint that refuses them all."""

    async def complete(self, request):
        if request.agent in self.fail:
            raise ModelError("cannot connect to http://127.0.0.1:1/v1: connection refused")
        return await super().complete(request)


def test_branches_failing_alike_are_told_once_naming_each(tmp_path: Path) -> None:
    model = DeadEndpoint(fail={"t", "f", "n", "s"})
    outcome, _ = run(tmp_path, PARALLEL.format(join="all", on_error="continue"), model)
    assert outcome.status == "failed"
    assert outcome.error.count("connection refused") == 1
    assert "'t', 'f', 'n', 's': " in outcome.error  # every branch named, in YAML order


def test_branches_failing_differently_each_keep_their_reason(tmp_path: Path) -> None:
    model = RecordingModel(fail={"t", "f", "n", "s"})
    outcome, _ = run(tmp_path, PARALLEL.format(join="all", on_error="continue"), model)
    assert all(f"scripted failure for {a}" in outcome.error for a in "tfns")


# ---------------------------------------------------------------- debate

DEBATE = """
agents:
  tech: {role: technical_analyst}
  bull:
    role: bull_researcher
    prompt: {inline: "Bull speaks in round {{ round }}.\\nHeard: {% for t in transcript %}<{{ t.agent }}@{{ t.round }}>{% endfor %}\\n"}
  bear:
    role: bear_researcher
    prompt: {inline: "Bear speaks in round {{ round }}.\\nHeard: {% for t in transcript %}<{{ t.agent }}@{{ t.round }}>{% endfor %}\\n"}
  judge:
    role: research_manager
    prompt: {inline: "Rule.\\nHeard: {% for t in transcript %}<{{ t.agent }}@{{ t.round }}>{% endfor %}\\n"}
  trader: {role: trader}
pipeline:
  - tech
  - id: research
    debate: {participants: [bull, bear], rounds: 3, judge: judge}
  - trader
"""


@pytest.mark.parametrize("make", TIMINGS)
def test_debate_speaks_in_turn_for_exactly_its_rounds_then_the_judge_once(tmp_path: Path,
                                                                          make) -> None:
    outcome, db = run(tmp_path, DEBATE, make())
    assert outcome.status == "completed"
    rows = [r for r in agent_rows(db, outcome.run_id) if r["step_id"].startswith("research/")]
    turns = [(r["agent"], r["round"]) for r in rows]
    assert turns == [("bull", 1), ("bear", 1), ("bull", 2), ("bear", 2), ("bull", 3), ("bear", 3),
                     ("judge", None)]
    assert [r["step_id"] for r in rows][:2] == ["research/r1/bull", "research/r1/bear"]
    assert all(a["finished_at"] <= b["started_at"] for a, b in itertools.pairwise(rows))  # in turn
    # Each turn heard exactly the turns before it, in order; nobody heard a later one.
    spoken = [f"{a}@{r}" for a, r in turns[:-1]]
    heard = {"bull": prompts(db, outcome.run_id, "bull"), "bear": prompts(db, outcome.run_id, "bear")}
    for k, (agent, rnd) in enumerate(turns[:-1]):
        prompt = heard[agent][rnd - 1]
        assert f"round {rnd}" in prompt
        assert markers(prompt, "Heard") == spoken[:k]
        assert rows[k]["input"]["transcript_turns"] == k
    [verdict] = prompts(db, outcome.run_id, "judge")
    assert markers(verdict, "Heard") == spoken
    [research] = only(steps(db, outcome.run_id), step_id="research")
    assert research["output"]["turns"] == [[a, r] for a, r in turns[:-1]]


def test_debate_rounds_follow_the_yaml(tmp_path: Path) -> None:
    outcome, db = run(tmp_path, DEBATE.replace("rounds: 3", "rounds: 1"))
    rows = [r for r in agent_rows(db, outcome.run_id) if r["step_id"].startswith("research/")]
    assert [(r["agent"], r["round"]) for r in rows] == [("bull", 1), ("bear", 1), ("judge", None)]


# ---------------------------------------------------------------- hierarchical

HIER = """
agents:
  boss:
    role: manager
    prompt: {{inline: "Round {{{{ round }}}} final={{{{ final }}}}.\\nReports: {{% for r in reports %}}<{{{{ r.agent }}}}:{{{{ r.output.signal }}}}>{{% endfor %}}\\n"}}
  w1:
    role: technical_analyst
    prompt: {{inline: "Task: {{{{ task }}}}"}}
  w2:
    role: fundamentals_analyst
    prompt: {{inline: "Task: {{{{ task }}}}"}}
  w3: {{role: news_analyst}}
pipeline:
  - id: desk
    hierarchical: {{manager: boss, workers: [w1, w2, w3], max_rounds: {rounds}}}
"""


def plan(*workers: str, action: str = "HOLD", size: float = 0.0) -> dict:
    return {"assignments": [{"worker": w, "instruction": f"look into {w}"} for w in workers],
            "action": action, "size_pct": size, "confidence": 0.6, "reasoning": "scripted"}


@pytest.mark.parametrize("make", TIMINGS)
def test_hierarchical_manager_assigns_reads_reports_and_stops_at_max_rounds(tmp_path: Path,
                                                                            make) -> None:
    # A manager that never stops assigning: two assign-report rounds, then it must decide.
    model = make(script={"boss": [plan("w1"), plan("w2"),
                                            plan("w1", "w2", "w3", action="BUY", size=7.0)]})
    outcome, db = run(tmp_path, HIER.format(rounds=2), model)
    assert outcome.status == "completed"
    rows = agent_rows(db, outcome.run_id)
    assert [(r["step_id"], r["status"]) for r in rows] == [
        ("desk/r1/boss", "ok"), ("desk/r1/work/w1", "ok"),
        ("desk/r2/boss", "ok"), ("desk/r2/work/w2", "ok"),
        ("desk/r3/boss", "ok")]  # w3 was only named in the final answer: never run
    assert prompts(db, outcome.run_id, "w1") == ["Task: look into w1"]
    boss = prompts(db, outcome.run_id, "boss")
    w1_signal, w2_signal = rows[1]["output"]["signal"], rows[3]["output"]["signal"]
    assert boss[0] == "Round 1 final=False.\nReports: "
    assert boss[1] == f"Round 2 final=False.\nReports: <w1:{w1_signal}>"
    assert boss[2] == f"Round 3 final=True.\nReports: <w2:{w2_signal}>"
    [decision] = dicts(db, "SELECT agent, action, size_pct FROM decisions WHERE run_id = ?",
                       [outcome.run_id])
    assert decision == {"agent": "boss", "action": "BUY", "size_pct": 7.0}


def test_hierarchical_assigned_workers_run_concurrently(tmp_path: Path) -> None:
    # The offline manager assigns every worker, then decides from their reports.
    model = RecordingModel(delays={"w1": 0.1, "w2": 0.15, "w3": 0.2})
    outcome, db = run(tmp_path, HIER.format(rounds=1), model)
    assert outcome.status == "completed"
    rows = agent_rows(db, outcome.run_id)
    workers = [r for r in rows if "/work/" in r["step_id"]]
    assert sorted(r["agent"] for r in workers) == ["w1", "w2", "w3"]
    assert overlap([(r["started_at"], r["finished_at"]) for r in workers])
    # Each worker sees the manager's plan, never a sibling's report.
    assert [c.outputs_seen for c in model.calls if c.agent.startswith("w")] == [["boss"]] * 3
    boss = [r for r in rows if r["agent"] == "boss"]
    assert [r["step_id"] for r in boss] == ["desk/r1/boss", "desk/r2/boss"]
    assert all(w["finished_at"] <= boss[1]["started_at"] for w in workers)
    final = prompts(db, outcome.run_id, "boss")[1]
    assert final.startswith("Round 2 final=True.")
    assert sorted(re.findall(r"<(w\d):", final)) == ["w1", "w2", "w3"]


def test_hierarchical_manager_that_assigns_nothing_decides_at_once(tmp_path: Path) -> None:
    model = RecordingModel(script={"boss": [plan(action="SELL", size=3.0)]})
    outcome, db = run(tmp_path, HIER.format(rounds=3), model)
    assert [r["step_id"] for r in agent_rows(db, outcome.run_id)] == ["desk/r1/boss"]
    assert outcome.decisions[0].action == "SELL"


# ---------------------------------------------------------------- broadcast

BROADCAST = """
agents:
  a:
    role: technical_analyst
    prompt: {inline: "Round {{ round }}.\\nBoard: {% for t in transcript %}<{{ t.agent }}@{{ t.round }}>{% endfor %}\\n"}
  b:
    role: news_analyst
    prompt: {inline: "Round {{ round }}.\\nBoard: {% for t in transcript %}<{{ t.agent }}@{{ t.round }}>{% endfor %}\\n"}
  c:
    role: sentiment_analyst
    prompt: {inline: "Round {{ round }}.\\nBoard: {% for t in transcript %}<{{ t.agent }}@{{ t.round }}>{% endfor %}\\n"}
  trader: {role: trader}
pipeline:
  - id: board
    broadcast: {agents: [a, b, c], rounds: 3}
  - trader
"""


def test_broadcast_everyone_posts_each_round_at_once_and_sees_only_earlier_rounds(
        tmp_path: Path) -> None:
    model = RecordingModel(delays={"a": 0.05, "b": 0.1, "c": 0.15})
    outcome, db = run(tmp_path, BROADCAST, model)
    assert outcome.status == "completed"
    rows = [r for r in agent_rows(db, outcome.run_id) if r["step_id"].startswith("board/")]
    for rnd in (1, 2, 3):
        posts = [r for r in rows if r["round"] == rnd]
        assert sorted(r["agent"] for r in posts) == ["a", "b", "c"]
        assert all(r["step_id"] == f"board/r{rnd}/{r['agent']}" for r in posts)
        assert overlap([(r["started_at"], r["finished_at"]) for r in posts])
        if rnd > 1:  # a round starts once the previous one is done
            before = [r for r in rows if r["round"] == rnd - 1]
            assert max(r["finished_at"] for r in before) <= min(r["started_at"] for r in posts)
    for agent in "abc":
        for rnd, prompt in enumerate(prompts(db, outcome.run_id, agent), start=1):
            assert prompt.startswith(f"Round {rnd}.")
            assert sorted(markers(prompt, "Board")) == sorted(
                f"{x}@{r}" for r in range(1, rnd) for x in "abc")
    # Within a round no member sees a same-round post, even from a faster member.
    first_round = [c for c in model.calls if c.agent in "abc"][:3]
    assert [c.outputs_seen for c in first_round] == [[], [], []]


# ---------------------------------------------------------------- when:

WHEN = """
agents:
  tech: {{role: technical_analyst}}
  trader: {{role: trader}}
pipeline:
  - tech
  - agent: trader
    when: "{when}"
"""


@pytest.mark.parametrize("when, runs", [("tech.score > 5", False), ("tech.score >= -1", True),
                                        ("symbol == 'MSFT'", False), ("symbol == 'AAPL'", True)])
def test_when_skips_a_step_whose_condition_is_false(tmp_path: Path, when: str, runs: bool) -> None:
    model = RecordingModel()
    outcome, db = run(tmp_path, WHEN.format(when=when), model)
    assert outcome.status == "completed"
    [row] = only(steps(db, outcome.run_id), step_id="trader")
    assert (row["status"], row["agent"]) == ("ok" if runs else "skipped", "trader")
    assert bool(model.by_agent("trader")) == runs
    [decision] = dicts(db, "SELECT action, reasoning FROM decisions WHERE run_id = ?",
                       [outcome.run_id])
    if not runs:
        assert row["input"] == {"when": when}
        assert decision == {"action": "HOLD", "reasoning": "no decision: trader skipped by its "
                                                           "condition"}


def test_when_skipped_step_shows_in_the_transcript(tmp_path: Path, capsys) -> None:
    outcome, db = run(tmp_path, WHEN.format(when="tech.score > 5"))
    capsys.readouterr()
    assert main(["show", outcome.run_id, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "trader (trader): skipped" in out and "None" not in out


ATTACKS = [
    "().__class__",
    "().__class__.__base__.__subclasses__()",
    "tech.__class__.__mro__",
    "lipsum.__globals__.os.system('touch {marker}')",
    "cycler.__init__.__globals__.os.system('touch {marker}')",
    "'{{0.__class__}}'.format(tech)",
    "tech.update(action='BUY')",
    # computed, so only evaluation sees it (the literal 'x' * 10**12 is refused at validate:
    # tests/security/test_templates.py)
    "'x' * (tech.confidence|int + 10**12) == 'y'",
    "1 / 0",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_when_cannot_run_code(tmp_path: Path, attack: str) -> None:
    marker = tmp_path / "pwned"
    source = attack.format(marker=marker)
    with pytest.raises(FlowkitError, match="could not be evaluated"):
        templates.holds(source, {"tech": {"action": "HOLD"}})
    outcome, db = run(tmp_path, WHEN.format(when=source.replace('"', '\\"')))
    assert outcome.status == "failed" and "could not be evaluated" in outcome.error
    assert "step 'trader'" in outcome.error
    [row] = only(steps(db, outcome.run_id), step_id="trader")
    assert row["status"] == "failed"
    assert not marker.exists()


def test_when_attack_through_the_cli_is_one_line(tmp_path: Path, capsys) -> None:
    path = firm(tmp_path, HEAD + WHEN.format(when="().__class__.__base__.__subclasses__()"))
    assert main(["run", str(path), "--db", str(tmp_path / "x.duckdb")]) == 1
    err = capsys.readouterr().err.strip()
    assert "unsafe" in err and "\n" not in err and "Traceback" not in err
