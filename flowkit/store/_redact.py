"""Secrets never reach the file: every string written passes through one SQL macro.

The macro runs inside DuckDB over whole columns (vectorised, off the GIL), and every write path
(batched rows, run updates, checkpoints, cache entries) goes through it, so there is exactly
one redaction rule. It is defined in the process's in-memory catalog, never in the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from flowkit.store._db import sql_literal

MASK = "***"

# Whole name parts only: OPENAI_API_KEY, GITHUB_TOKEN, DB_PASSWORD, but not PIP_KEYRING_PROVIDER.
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSPHRASE|CREDENTIALS?)(?:_|$)")
_MIN_SECRET_LEN = 8

# (RE2 pattern, replacement). Kept narrow: they run over prompts and reasoning text too.
PATTERNS: tuple[tuple[str, str], ...] = (
    # well-known key shapes: OpenAI/Anthropic sk-..., AWS access key ids, GitHub, Slack, Google
    ((r"\b(?:sk-[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
      r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35})"), MASK),
    # bearer tokens (16+ chars, so prose such as "bearer instruments" is left alone)
    (r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*", r"\1 " + MASK),
    # Authorization headers, as text or as a JSON/dict entry: everything up to the quote/eol
    (r"""(?i)\b(authorization["']?\s*[:=]\s*["']?)[^"'\r\n]+""", r"\1" + MASK),
    # api_key=..., "client_secret": "...", password: ... (values of 8+ token characters)
    ((r"""(?i)\b((?:api|secret|access|private)[_-]?(?:key|token)|client[_-]?secret|password"""
      r"""|passphrase)(["']?\s*[:=]\s*["']?)[A-Za-z0-9._~+/=\-]{8,}"""), r"\1\2" + MASK),
)


def env_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values of secret-looking variables, as they may appear in plain or JSON-escaped text."""
    forms: set[str] = set()
    for name, value in environ.items():
        if _SECRET_NAME.search(name.upper()) and len(value) >= _MIN_SECRET_LEN:
            forms.update((value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]))
    return sorted(forms, key=len, reverse=True)  # a secret containing another goes first


def _scoped(pattern: str) -> str:
    """A pattern as one alternative of a union: its leading (?i) scoped to itself."""
    return f"(?i:{pattern[4:]})" if pattern.startswith("(?i)") else f"(?:{pattern})"


def macro_sql(name: str, secrets: list[str]) -> str:
    """CREATE MACRO name(s): literal secrets first, then the patterns.

    Most strings hold nothing to redact, so one scan for any of it (memmem per secret, one RE2
    pass over the union of the patterns) gates the chain of replacements."""
    expr = "s"
    for secret in secrets:
        expr = f"replace({expr}, {sql_literal(secret)}, '{MASK}')"
    for pattern, replacement in PATTERNS:
        expr = f"regexp_replace({expr}, {sql_literal(pattern)}, {sql_literal(replacement)}, 'g')"
    found = [f"contains(s, {sql_literal(secret)})" for secret in secrets]
    found.append(f"regexp_matches(s, {sql_literal('|'.join(_scoped(p) for p, _ in PATTERNS))})")
    return f"CREATE OR REPLACE MACRO {name}(s) AS CASE WHEN {' OR '.join(found)} THEN {expr} ELSE s END"
