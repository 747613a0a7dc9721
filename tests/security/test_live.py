"""Live orders only when meant (issue 10, item 1). A careless user with the live confirmation
in the environment and exchange keys set, and a workflow on the ccxt broker, tries every way
to send live orders other than the one forward mode. Each is refused before any request
leaves the process, or (replay and resume of a live run) runs against the paper broker and
says so. Three guards watch: ccxt's one HTTP entry point, every socket connection to a
non-loopback address, and every exchange broker built for live trading."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import ccxt
import duckdb
import numpy as np
import pytest

from attack_support import REPO, TA, flowkit
from flowkit.app import Invocation, RunOptions, Session, compare, live, run_to_end
from flowkit.broker import CcxtBroker
from flowkit.errors import LiveRefused
from flowkit.spec.loader import load_workflow
from flowkit.store import open_reader

def rows(db: Path, sql: str, *params: object) -> list[tuple]:
    with open_reader(str(db)) as con:
        return con.execute(sql, list(params)).fetchall()


CRYPTO = REPO / "workflows" / "crypto.yaml"
ON_BINANCE = ("--set", "portfolio.broker=ccxt", "--set", "portfolio.exchange=binance")


class Guards:
    def __init__(self) -> None:
        self.exchange_requests: list[str] = []
        self.connections: list[object] = []
        self.live_brokers: list[str] = []

    def quiet(self) -> bool:
        return not (self.exchange_requests or self.connections or self.live_brokers)


@pytest.fixture
def guards(monkeypatch) -> Guards:
    """The environment of a user who once traded live: confirmation and keys set."""
    g = Guards()
    monkeypatch.setenv("FLOWKIT_LIVE_CONFIRM", "I-UNDERSTAND")
    monkeypatch.setenv("FLOWKIT_BINANCE_API_KEY", "live-key-3f9a1c")
    monkeypatch.setenv("FLOWKIT_BINANCE_SECRET", "live-secret-8d2e7b")

    def fetch(self, url, method="GET", headers=None, body=None):
        g.exchange_requests.append(f"{method} {url}")
        raise AssertionError(f"an exchange request was made: {method} {url}")

    connect = socket.socket.connect

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") \
                and sock.family in (socket.AF_INET, socket.AF_INET6):
            g.connections.append(address)
            raise AssertionError(f"a connection to {address} was attempted")
        return connect(sock, address)

    init = CcxtBroker.__init__

    def recording_init(self, exchange_id, *args, **kwargs):
        if kwargs.get("live"):
            g.live_brokers.append(exchange_id)
        init(self, exchange_id, *args, **kwargs)

    monkeypatch.setattr(ccxt.Exchange, "fetch", fetch)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(CcxtBroker, "__init__", recording_init)
    return g


# ------------------------------------------------------------ run --live, each forbidden way

FORBIDDEN = {
    "a historical window": (["--start", "2024-01-02", "--end", "2024-02-28"],
                            "historical window"),
    "a weekly window": (["--start", "2023-01-02", "--end", "2023-12-29", "--every", "1w"],
                        "historical window"),
    "an hourly window": (["--start", "2024-03-01", "--end", "2024-03-05", "--every", "1h"],
                         "historical window"),
    "a past date": (["--date", "2024-03-01"], "--date 2024-03-01 decides on a past day"),
    "seeds": (["--seeds", "3"], "--seeds 3 would send every order 3 times"),
    "seeds on a window": (["--seeds", "2", "--start", "2024-01-02", "--end", "2024-01-31"],
                          "--seeds 2"),
    "the latest data, which is old": ([], "not current"),
}


@pytest.mark.parametrize("workflow,symbol", [(TA, "AAPL"), (CRYPTO, "BTC-USDT")],
                         ids=["stocks", "crypto"])
@pytest.mark.parametrize("case", FORBIDDEN)
def test_live_outside_the_forward_mode_is_refused_before_any_request(
        guards, capsys, tmp_path, workflow, symbol, case):
    extra, reason = FORBIDDEN[case]
    code, out, err = flowkit(capsys, "run", workflow, "--symbol", symbol, "--live", *extra,
                             *ON_BINANCE, "--model", "offline", "--db", tmp_path / "log.db",
                             "--quiet")
    assert code == 1, out + err
    assert "--live refused" in err and reason in err, err
    assert "Traceback" not in err and "internal error" not in err
    assert guards.quiet(), vars(guards)
    if (tmp_path / "log.db").exists():  # nothing ran: no run row, no order
        assert rows(tmp_path / "log.db", "SELECT count(*) FROM runs") == [(0,)]


def test_live_with_the_paper_broker_is_refused_not_ignored(guards, capsys, tmp_path):
    code, _, err = flowkit(capsys, "run", TA, "--live", "--model", "offline",
                           "--db", tmp_path / "log.db")
    assert code == 1
    assert "the paper broker only simulates fills" in err
    assert not (tmp_path / "log.db").exists()  # refused before the log is opened


def test_live_without_the_confirmation_is_refused(guards, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWKIT_LIVE_CONFIRM")
    code, _, err = flowkit(capsys, "run", CRYPTO, "--live", *ON_BINANCE, "--model", "offline",
                           "--db", tmp_path / "log.db")
    assert code == 1 and "FLOWKIT_LIVE_CONFIRM=I-UNDERSTAND is not set" in err
    assert guards.quiet()


def test_every_reason_is_named_at_once(guards, capsys, tmp_path):
    code, _, err = flowkit(capsys, "run", TA, "--live", "--seeds", "3", "--start", "2024-01-02",
                           "--end", "2024-01-31", "--db", tmp_path / "log.db")
    assert code == 1
    for reason in ("historical window", "--seeds 3", "paper broker"):
        assert reason in err


# ------------------------------------------------------------ other use cases


def test_compare_never_trades_live(guards, tmp_path):
    inv = Invocation(start="2024-01-02", end="2024-01-31", live=True)
    with pytest.raises(LiveRefused, match="`compare` runs on past data"):
        compare([str(CRYPTO)], inv, RunOptions(db=str(tmp_path / "log.db"), model="offline"),
                list(ON_BINANCE[1::2]))
    assert guards.quiet()


@pytest.mark.parametrize("mode", ["backtest", "decide", "train", "replay"])
def test_a_live_invocation_that_bypasses_the_rule_is_refused_where_the_broker_is_built(
        guards, tmp_path, mode):
    """A use case that forgets to ask `live.execution` (a sweep, a plugin) cannot trade live:
    run_session refuses any live invocation whose session is not in the live mode."""
    loaded = load_workflow(CRYPTO, list(ON_BINANCE[1::2]))
    session = Session(loaded, RunOptions(db=str(tmp_path / "log.db"), model="offline",
                                         mode=mode))
    with pytest.raises(LiveRefused, match="did not come through the live trading rule"):
        run_to_end(session, Invocation(symbols=["BTC-USDT"], live=True))
    assert guards.quiet()


def test_the_forward_mode_is_the_one_way_to_trade_live(monkeypatch):
    """The rule must let the one meant way through, else it would refuse everything."""
    loaded = load_workflow(CRYPTO, list(ON_BINANCE[1::2]))
    confirmed = {"FLOWKIT_LIVE_CONFIRM": "I-UNDERSTAND"}
    plan = live.execution("run", loaded, Invocation(live=True), env=confirmed)
    assert (plan.mode, plan.inv.live, plan.note) == ("live", True, None)
    assert live.execution("run", loaded, Invocation(), env=confirmed).mode == "decide"

    class Forward:
        options = RunOptions(mode="live")
        spec = loaded.spec

    now = datetime(2026, 3, 9, 14, 0)  # a Monday: Friday's close is current for stocks
    friday = np.datetime64("2026-03-06T21:00")
    assert live.guard(Forward, Invocation(live=True), [friday], now) is True
    with pytest.raises(LiveRefused, match="not current"):
        live.guard(Forward, Invocation(live=True), [friday - np.timedelta64(7, "D")], now)
    with pytest.raises(LiveRefused):  # more than one decision time is not forward
        live.guard(Forward, Invocation(live=True), [friday, friday], now)
    assert live.guard(Forward, Invocation(), [friday - np.timedelta64(700, "D")], now) is False


# ------------------------------------------------------------ replay and resume of a live run


def _recorded_as_live(db: Path, run_id: str, status: str | None = None) -> None:
    """Make the log say `run_id` traded live on binance, as a live run's row does."""
    (config,), = rows(db, "SELECT config FROM runs WHERE run_id = ?", run_id)
    config = json.loads(config) if isinstance(config, str) else config
    config["invocation"]["live"] = True
    config["workflow"]["portfolio"].update(broker="ccxt", exchange="binance")
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE runs SET mode = 'live', config = ? WHERE run_id = ?",
                    [json.dumps(config), run_id])
        if status:
            con.execute("UPDATE runs SET status = ? WHERE run_id = ?", [status, run_id])


def _run(capsys, db: Path, *args: str) -> str:
    code, out, err = flowkit(capsys, "run", CRYPTO, "--model", "offline", "--db", db, "--quiet",
                             *args)
    assert code == 0, out + err
    (run_id,), = rows(db, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
    return run_id


def test_replay_of_a_live_run_trades_on_paper_and_says_so(guards, capsys, tmp_path):
    db = tmp_path / "log.db"
    original = _run(capsys, db, "--date", "2024-03-01")
    _recorded_as_live(db, original)
    code, out, err = flowkit(capsys, "replay", original, "--db", db, "--quiet")
    assert code == 0, out + err
    assert f"run {original} traded live on the ccxt broker" in out
    assert "against the paper broker: no order is sent" in out
    assert "identical to the original" in out
    assert guards.quiet(), vars(guards)
    (replay_config,), = rows(db, "SELECT config FROM runs WHERE parent_run_id = ?", original)
    replayed = json.loads(replay_config) if isinstance(replay_config, str) else replay_config
    assert replayed["workflow"]["portfolio"]["broker"] == "paper"
    assert {b for (b,) in rows(db, "SELECT DISTINCT broker FROM orders WHERE run_id != ?",
                               original)} <= {"paper"}


@pytest.mark.parametrize("window", [("--date", "2024-03-01"),
                                    ("--start", "2024-01-02", "--end", "2024-01-20")],
                         ids=["live decision", "backtest recorded with --live"])
def test_resume_of_a_live_run_trades_on_paper_and_says_so(guards, capsys, tmp_path, window):
    db = tmp_path / "log.db"
    run_id = _run(capsys, db, *window)
    _recorded_as_live(db, run_id, status="interrupted")
    with duckdb.connect(str(db)) as con:  # killed before its first checkpoint
        con.execute("DELETE FROM checkpoints WHERE run_id = ?", [run_id])
    code, out, err = flowkit(capsys, "resume", run_id, "--db", db, "--quiet")
    assert code == 0, out + err
    assert f"run {run_id} traded live" in out and "paper broker" in out
    assert guards.quiet(), vars(guards)
    assert rows(db, "SELECT status FROM runs WHERE run_id = ?", run_id) == [("completed",)]
    assert {b for (b,) in rows(db, "SELECT DISTINCT broker FROM orders WHERE run_id = ?",
                               run_id)} <= {"paper"}


def test_replay_of_a_paper_run_is_unchanged(guards, capsys, tmp_path):
    db = tmp_path / "log.db"
    original = _run(capsys, db, "--date", "2024-03-01")
    code, out, _ = flowkit(capsys, "replay", original, "--db", db, "--quiet")
    assert code == 0 and "note:" not in out and "identical to the original" in out


def test_a_replay_plan_clears_live_on_a_copy():
    """Replay repeats the recorded invocation with live cleared, not the recorded one."""
    loaded = load_workflow(CRYPTO, list(ON_BINANCE[1::2]))
    recorded = Invocation(date="2024-03-01", live=True)
    plan = live.execution("replay", loaded, recorded, mode="live", run_id="r1")
    assert plan.inv == replace(recorded, live=False) and recorded.live
    assert plan.loaded.spec.portfolio.broker == "paper" and plan.mode == "replay"
    assert loaded.spec.portfolio.broker == "ccxt"  # the caller's workflow is not changed
