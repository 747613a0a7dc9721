"""Helpers for the attacking tests: run the CLI in-process, read every text of an event log,
and a loopback server that records any request (whatever path or provider format)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flowkit.cli import main
from flowkit.store import open_reader

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
TA = WORKFLOWS / "tradingagents.yaml"


def flowkit(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def db_text(path: Path) -> str:
    """Every text and JSON value of every table of the event log, as one blob."""
    chunks = []
    with open_reader(str(path)) as con:
        columns = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                              "WHERE data_type IN ('VARCHAR', 'JSON')").fetchall()
        assert columns
        for table, column in columns:
            chunks += [v for (v,) in con.execute(
                f'SELECT "{column}"::VARCHAR FROM "{table}"').fetchall() if v]
    return "\n".join(chunks)


@dataclass
class Recorder:
    url: str
    requests: list[dict[str, str]] = field(default_factory=list)  # headers (lower-case) + path


@contextmanager
def recorder() -> Iterator[Recorder]:
    """A server on 127.0.0.1 that records the headers of every POST, whatever its path or
    provider format, and answers 404."""
    rec = Recorder("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("content-length") or 0))
            rec.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            body = json.dumps({"error": {"message": "no such route", "type": "not_found"}}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
