"""Full prompts in the event log: every request reads back exactly as sent, from the table, from
model_calls_full and from files written while messages were stored as line references."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb

from flowkit.store import EventLog, RunStore, open_reader

T0 = datetime(2024, 1, 2, 21, 0)
SYSTEM = "You are 'bull'.\nAnswer with JSON matching:\n{\"type\":\"object\"}\n"
REPORT = '{"signal":"bullish","score":0.78,"summary":"AAPL above SMA50 (193.54 vs 188.69)"}'


def requests() -> list[dict]:
    """What agents send: a shared system prompt, earlier answers quoted, awkward text."""
    return [
        {"messages": [{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": f"AAPL, round 1.\n\n- market_analyst: {REPORT}\n"}],
         "response_format": "research_argument", "structured_output": None},
        {"messages": [{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": f"- market_analyst: {REPORT}\r\n  trailing  \n\nÉté ☃ 📈"},
                      {"role": "assistant", "content": None,
                       "tool_calls": [{"id": "c1", "type": "function",
                                       "function": {"name": "news", "arguments": "{\"n\":3}"}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": ""},
                      {"role": "user", "content": [{"type": "text", "text": "a list\ncontent"}]}],
         "tools": ["news"], "response_format": "trade_proposal", "structured_output": "json_schema"},
        {"messages": "(not logged)", "response_format": "analyst_report", "structured_output": None},
    ]


def test_requests_read_back_exactly_as_sent(tmp_path):
    path = tmp_path / "log.duckdb"
    sent = requests()
    with EventLog(path) as log:
        for i, request in enumerate(sent):
            log.append("model_calls", {"run_id": "r", "call_id": f"c#{i}", "symbol": "AAPL",
                                       "as_of": T0, "agent": "bull", "request": request,
                                       "response": REPORT, "started_at": T0})
    with open_reader(path) as con:
        table = con.execute("SELECT request, response FROM model_calls ORDER BY call_id").fetchall()
        full = con.execute("SELECT request FROM model_calls_full ORDER BY call_id").fetchall()
    assert [json.loads(r) for r, _ in table] == sent  # whole in the table itself
    assert [r for (r,) in full] == [r for r, _ in table]  # the documented view: the same text
    assert {resp for _, resp in table} == {REPORT}
    calls = RunStore.open(path).model_calls("r")
    assert [c["request"] for c in calls] == sent  # RunStore decodes JSON columns


def test_files_with_line_references_still_give_full_prompts(tmp_path):
    """A file written while each message was stored as ids of lines in prompt_parts."""
    path = tmp_path / "old.duckdb"
    log = EventLog(path)
    log.close()
    log.flush()  # close returns at once; flush waits until the writer has let go of the file
    sent = requests()[0]
    lines = {f"{i:016x}": line for i, line in enumerate(
        dict.fromkeys(line for m in sent["messages"] for line in m["content"].splitlines(keepends=True)))}
    ids = {line: key for key, line in lines.items()}
    lean = {**sent, "messages": [{"role": m["role"], "content_parts": [
        ids[line] for line in m["content"].splitlines(keepends=True)]} for m in sent["messages"]]}
    with duckdb.connect(str(path)) as con:
        con.executemany("INSERT INTO prompt_parts VALUES (?, ?)", list(lines.items()))
        con.execute("INSERT INTO model_calls (run_id, call_id, request) VALUES ('old', 'c#1', ?)",
                    [json.dumps(lean)])
    with open_reader(path) as con:
        [(request,)] = con.execute("SELECT request FROM model_calls_full").fetchall()
    assert json.loads(request) == sent
