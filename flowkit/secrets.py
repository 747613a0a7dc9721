"""What a secret looks like, which ones this process holds, and how they are masked.

One list of key shapes serves the workflow validator (a key pasted into YAML is an error) and
every redactor (the event log's SQL macro, stdout and stderr), so the two cannot disagree.
Every pattern is valid for both Python's `re` and DuckDB's RE2.

A secret is: a key-shaped string; the value of an environment variable whose name looks
secret (OPENAI_API_KEY, DB_PASSWORD...); or the value of a variable flowkit was told holds a
credential (a profile's `api_key_env`, whatever its name), registered with `remember_env`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

MASK = "***"

# Known key shapes, one RE2/`re` pattern each (the validator names the first that matches).
KEY_SHAPES: tuple[tuple[str, str], ...] = (
    ("an OpenAI/Anthropic-style key (sk-...)", r"\bsk-[A-Za-z0-9_\-]{16,}"),
    ("a Groq key (gsk_...)", r"\bgsk_[A-Za-z0-9]{20,}"),
    ("a Hugging Face token (hf_...)", r"\bhf_[A-Za-z0-9]{20,}"),
    ("a Google API key (AIza...)", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("a GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    ("a Slack token (xox...)", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    ("an AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
)
# A long random string: 32+ letters and digits mixing upper case, lower case and digits (hex
# hashes and run ids, lower case only, are not secrets). RE2 has no lookahead, so the token is
# found by RANDOM_TOKEN and kept only if it contains every class in RANDOM_CLASSES.
RANDOM_TOKEN = r"\b[A-Za-z0-9]{32,}\b"
RANDOM_CLASSES = ("[A-Z]", "[a-z]", "[0-9]")

# Secrets recognised by where they stand rather than by shape: (pattern, replacement).
CONTEXT_PATTERNS: tuple[tuple[str, str], ...] = (
    # bearer tokens (16+ chars, so prose such as "bearer instruments" is left alone)
    (r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*", r"\1 " + MASK),
    # Authorization / x-api-key headers, as text or as a JSON/dict entry: up to the quote/eol
    (r"""(?i)\b((?:authorization|x-api-key)["']?\s*[:=]\s*["']?)[^"'\r\n]+""", r"\1" + MASK),
    # api_key=..., "client_secret": "...", password: ... (values of 8+ token characters)
    ((r"""(?i)\b((?:api|secret|access|private)[_-]?(?:key|token)|client[_-]?secret|password"""
      r"""|passphrase)(["']?\s*[:=]\s*["']?)[A-Za-z0-9._~+/=\-]{8,}"""), r"\1\2" + MASK),
    # credentials in a URL: https://user:pass@host, ...?token=...&sig=...
    (r"""(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@"']+:[^/\s@"']+@""", r"\1" + MASK + "@"),
    (r"""(?i)([?&](?:token|access_token|auth|key|api[_-]?key|apikey|sig|signature|secret"""
     r"""|password|code)=)[^&#\s"']+""", r"\1" + MASK),
)

# Whole name parts only: OPENAI_API_KEY, GITHUB_TOKEN, DB_PASSWORD, but not PIP_KEYRING_PROVIDER.
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSPHRASE|CREDENTIALS?)(?:_|$)")
MIN_SECRET_LEN = 8

_SHAPES = [(what, re.compile(p)) for what, p in KEY_SHAPES]
_CONTEXT = [(re.compile(p), r) for p, r in CONTEXT_PATTERNS]
_RANDOM = re.compile(RANDOM_TOKEN)
_CLASSES = [re.compile(c) for c in RANDOM_CLASSES]

_lock = threading.Lock()
_credential_names: set[str] = set()
_generation = 0  # bumped when the set of credentials grows, so redactors rebuild


def key_shape(text: str) -> str | None:
    """What kind of key `text` contains (for the validator's message), or None."""
    for what, pattern in _SHAPES:
        if pattern.search(text):
            return what
    if any(_random(m.group()) for m in _RANDOM.finditer(text)):
        return "a long random string (an API key or token?)"
    return None


def _random(token: str) -> bool:
    return all(c.search(token) for c in _CLASSES)


def remember_env(name: str) -> None:
    """Mark environment variable `name` as holding a credential: its value is redacted
    everywhere from now on, whatever its name looks like."""
    global _generation
    with _lock:
        if name not in _credential_names:
            _credential_names.add(name)
            _generation += 1


def generation() -> int:
    """Changes whenever `remember_env` adds a variable: a cached redactor is then stale."""
    return _generation


def credentials(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of credential variables (secret-looking names and remembered ones), in the plain
    and JSON-escaped forms they may take in text; longest first, so a secret containing
    another is masked whole."""
    environ = os.environ if environ is None else environ
    with _lock:
        named = set(_credential_names)
    forms: set[str] = set()
    for name, value in environ.items():
        if (name in named or _SECRET_NAME.search(name.upper())) and len(value) >= MIN_SECRET_LEN:
            forms.update((value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]))
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every credential value and key-shaped string replaced by MASK (the same
    rules, in the same order, as the event log's SQL macro)."""
    for secret in credentials() if secrets is None else secrets:
        text = text.replace(secret, MASK)
    for _, pattern in _SHAPES:
        text = pattern.sub(MASK, text)
    for pattern, replacement in _CONTEXT:
        text = pattern.sub(replacement, text)
    return _RANDOM.sub(lambda m: MASK if _random(m.group()) else m.group(), text)


class _RedactingStream:
    """A text stream that masks secrets in everything written through it."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, encoding...: the real stream's
        return getattr(self._stream, name)


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """stdout and stderr redacted for the block (a command's whole run)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _RedactingStream(sys.stdout), _RedactingStream(sys.stderr)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
