"""Secrets never reach the file: every string written passes through one SQL macro.

The macro runs inside DuckDB over whole columns (vectorised, off the GIL), and every write path
(batched rows, run updates, checkpoints, cache entries) goes through it, so there is exactly
one redaction rule. It is defined in the process's in-memory catalog, never in the file. The
rules themselves (key shapes, credential variables) live in flowkit.secrets, shared with the
validator and the stdout/stderr redactor.
"""

from __future__ import annotations

from flowkit.secrets import CONTEXT_PATTERNS, KEY_SHAPES, MASK, RANDOM_CLASSES, RANDOM_TOKEN
from flowkit.store._db import sql_literal

PATTERNS: tuple[tuple[str, str], ...] = (
    *((pattern, MASK) for _, pattern in KEY_SHAPES), *CONTEXT_PATTERNS)


def _scoped(pattern: str) -> str:
    """A pattern as one alternative of a union: its leading (?i) scoped to itself."""
    return f"(?i:{pattern[4:]})" if pattern.startswith("(?i)") else f"(?:{pattern})"


def macro_sql(name: str, secrets: list[str]) -> str:
    """CREATE MACRO name(s): literal secrets first, then the patterns, then random tokens.

    Most strings hold nothing to redact, so one scan for any of it (memmem per secret, one RE2
    pass over the union of the patterns) gates the chain of replacements."""
    expr = "s"
    for secret in secrets:
        expr = f"replace({expr}, {sql_literal(secret)}, '{MASK}')"
    for pattern, replacement in PATTERNS:
        expr = f"regexp_replace({expr}, {sql_literal(pattern)}, {sql_literal(replacement)}, 'g')"
    # RE2 cannot say "mixes upper, lower and digits": find the long tokens, keep the mixed ones
    mixed = " AND ".join(f"regexp_matches(t, {sql_literal(c)})" for c in RANDOM_CLASSES)
    tokens = f"list_filter(regexp_extract_all(s, {sql_literal(RANDOM_TOKEN)}), lambda t: {mixed})"
    expr = f"list_reduce({tokens}, lambda acc, t: replace(acc, t, '{MASK}'), {expr})"
    found = [f"contains(s, {sql_literal(secret)})" for secret in secrets]
    union = "|".join(_scoped(p) for p, _ in (*PATTERNS, (RANDOM_TOKEN, "")))
    found.append(f"regexp_matches(s, {sql_literal(union)})")
    return f"CREATE OR REPLACE MACRO {name}(s) AS CASE WHEN {' OR '.join(found)} THEN {expr} ELSE s END"
