"""The YAML layer on its own: what each construct reads as, and what it says when it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit.errors import Location
from flowkit.spec.yamlsrc import MAX_DEPTH, MAX_VALUES, parse

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"b{i}: &b{i} [{', '.join([f'*b{i - 1}' if i else '*a'] * 10)}]\n" for i in range(6))

# (YAML text, the data it reads as, ["line:col: message", ...])
CASES: list[tuple[str, Any, list[str]]] = [
    ("a: 1\nb: [x, 'y']\n", {"a": 1, "b": ["x", "y"]}, []),
    ("a: 1e6\nb: 1.5E-3\nc: '1e6'\nd: 1_000\ne: 0x1F\n",
     {"a": 1e6, "b": 1.5e-3, "c": "1e6", "d": 1000, "e": 31}, []),
    ("a: 2024-01-02\nb: '2024-01-02'\n", {"a": "2024-01-02", "b": "2024-01-02"}, []),
    ("a: 2024-01-02 10:00:00\n", {"a": "2024-01-02 10:00:00"}, []),
    ("a: True\nb: FALSE\nc: ~\nd: null\ne:\n", {"a": True, "b": False, "c": None, "d": None, "e": None},
     []),
    ('a: !!str no\nb: "on"\n', {"a": "no", "b": "on"}, []),
    ("a: &x {k: 1}\nb: *x\n", {"a": {"k": 1}, "b": {"k": 1}}, []),
    ("no: 1\non: 2\n", {"no": 1, "on": 2}, []),  # keys are always text
    ("a: no\n", {"a": "no"}, ["1:4: 'no' is read as a boolean by YAML 1.1; write true/false, or "
                              "quote it (\"no\") if you meant the text"]),
    ("a: [Off]\n", {"a": ["Off"]}, ["1:5: 'Off' is read as a boolean by YAML 1.1; write "
                                    "true/false, or quote it (\"Off\") if you meant the text"]),
    ("a: 12:30\n", {"a": "12:30"},
     ["1:4: '12:30' is read as a base-60 number by YAML 1.1; quote it (\"12:30\")"]),
    ("a: 1:20:30.5\n", {"a": "1:20:30.5"},
     ["1:4: '1:20:30.5' is read as a base-60 number by YAML 1.1; quote it (\"1:20:30.5\")"]),
    ("a: 0755\n", {"a": "0755"}, ["1:4: '0755' is read as an octal number by YAML 1.1; quote it "
                                  "(\"0755\") or drop the leading zero"]),
    ("a: 0x_\n", {"a": "0x_"}, ["1:4: '0x_' is not a valid number"]),
    ("a: 1e400\n", {"a": "1e400"}, ["1:4: '1e400' is not a finite number"]),
    ("a: .nan\n", {"a": ".nan"}, ["1:4: '.nan' is not a finite number"]),
    ("a: 2024-02-30\n", {"a": "2024-02-30"},
     ["1:4: invalid date '2024-02-30': day is out of range for month"]),
    ("a: 1\nb: 2\na: 3\n", {"a": 1, "b": 2}, ["3:1: duplicate key 'a' (first written at line 1)"]),
    ("x:\n  a: 1\n  a: 1\n", {"x": {"a": 1}},
     ["3:3: duplicate key 'a' in x (first written at line 2)"]),
    ("a: !!python/object:os.system {}\n", {"a": None},
     ["1:4: YAML tag !!python/object:os.system is not supported; a workflow holds plain values"]),
    ("a: !!int abc\n", {"a": "abc"},
     ["1:4: YAML tag !!int is not supported; a workflow holds plain values"]),
    ("a: !!set {x}\n", {"a": None}, ["1:4: YAML tag !!set is not supported; a workflow holds "
                                     "plain values"]),
    ("a: !local x\n", {"a": "x"}, ["1:4: YAML tag !local is not supported; a workflow holds "
                                   "plain values"]),
    ("a: &x {k: 1}\nb: {<<: *x}\n", {"a": {"k": 1}, "b": {}},
     ["2:5: merge keys (<<) are not supported; write the keys out"]),
    ("? [a]\n: 1\n", {}, ["1:3: mapping keys must be plain strings"]),
    ("a: &x [1, *x]\n", {"a": [1, None]},
     ["1:4: recursive alias: this node contains itself (an endless loop)"]),
    ("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n", None,
     [f"1:{MAX_DEPTH + 3}: nesting deeper than {MAX_DEPTH} levels"]),
    ("a: " + "[" * 2000 + "]" * 2000 + "\n", None,  # deeper than PyYAML's own recursion
     [f"1:{MAX_DEPTH + 3}: nesting deeper than {MAX_DEPTH} levels"]),
    ("", None, ["1:1: the file holds no YAML document; expected a workflow mapping (version, "
                "name, models, ...)"]),
    ("a: 1\n\x00\n", None, ["2:1: YAML syntax error: special character #x0000 is not allowed"]),
    ("a: *nope\n", None, ["1:4: YAML syntax error: *nope refers to no anchor &nope written "
                          "before it"]),
    ("a: b: c\n", None, ["1:5: YAML syntax error: unexpected ':'; quote text that contains ': ', "
                         "or check the indentation"]),
    ("a: [1, 2\nb: 3\n", None, ["2:2: YAML syntax error: expected ',' or ']': is the bracket "
                                "opened at line 1 closed, and are its items separated by commas?"]),
    ("a: [\n", None, ["2:1: YAML syntax error: the file ends where a value should be; is a "
                      "bracket left open?"]),
    ("a: @x\n", None, ["1:4: YAML syntax error: '@' cannot start a value; quote the text"]),
    ('a: "\\q"\n', None, ["1:6: YAML syntax error: found unknown escape character 'q' (while "
                          "scanning a double-quoted scalar at line 1)"]),
]


@pytest.mark.parametrize(("text", "data", "problems"), CASES, ids=[c[0][:30] for c in CASES])
def test_reads_and_reports(text: str, data: Any, problems: list[str]) -> None:
    doc = parse(text, "f.yaml")
    assert [f"{p.location.line}:{p.location.col}: {p.message}" for p in doc.problems] == problems
    if data is not None:
        assert doc.data == data


def test_an_alias_bomb_stops_at_the_value_budget() -> None:
    doc = parse(BOMB, "f.yaml")  # 10**7 values if expanded
    assert [p.message for p in doc.problems] == [
        f"the document expands to more than {MAX_VALUES} values (aliases repeating aliases?)"]


def test_every_key_and_value_has_a_location() -> None:
    doc = parse("top:\n  list:\n    - {k: v}\n", "f.yaml")
    assert doc.keys[("top", "list")] == Location("f.yaml", 2, 3)
    assert doc.values[("top", "list", 0, "k")] == Location("f.yaml", 3, 11)
    # a path that does not exist is placed at its nearest ancestor
    assert doc.at(("top", "list", 0, "missing")) == Location("f.yaml", 3, 7)
    assert doc.at(("top", "list"), key=True) == Location("f.yaml", 2, 3)
