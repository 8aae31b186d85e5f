"""The probe end to end: a real reference server on loopback, the real probe process, a real run store."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from probe.__main__ import main
from runstore.store import RunStore
from tests.probe.helpers import ProbeProcess, WebhookReceiver

INTERVAL = "0.25"


def _probe_args(server, store: Path, *extra: str) -> list[str]:
    return [
        "--host",
        server.ws_url,
        f"--secret={server.secret}",
        "--interval",
        INTERVAL,
        "--timeout",
        "2",
        "--results",
        str(store),
        "--name",
        "e2e",
        *extra,
    ]


def _run(store: Path) -> tuple[int, object]:
    with RunStore.open(store, readonly=True) as runs:
        [run] = runs.list_runs()
        return run.id, run


def test_outage_shows_as_a_gap_alert_fires_and_recovers_and_a_restart_continues_the_run(
    reference_server_factory, tmp_path: Path
) -> None:
    server = reference_server_factory()
    store = tmp_path / "probe.sqlite3"
    hook = WebhookReceiver(fail_first=1)  # the first POST fails: delivery is retried
    probe = ProbeProcess(
        *_probe_args(
            server,
            store,
            f"--admin-token={server.admin_token}",
            "--rule",
            "disconnected > 0.5s",
            "--rule",
            "p99 pong < 10s over 5s",
            "--alert-webhook",
            hook.url,
            "--metrics-port",
            "0",
        )
    )
    try:
        probe.wait_line("-b connected")
        probe.wait_for(lambda: _count(store, "push:notification") >= 3, 20, "three notification round trips")
        server.kill()  # SIGKILL: an outage, not a clean shutdown
        outage_start = time.time()
        probe.wait_line("alert FIRING: disconnected > 0.5s")
        time.sleep(1.0)
        again = reference_server_factory(
            "--port",
            str(server.port),
            db_path=server.db_path,
            secret=server.secret,
            admin_token=server.admin_token,
        )
        outage_end = time.time()
        probe.wait_line("alert resolved: disconnected > 0.5s")
        probe.wait_line("-a connected", count=2)
        probe.wait_for(lambda: _count(store, "delivery:chat", since=outage_end) >= 3, 20, "chat after outage")
        probe.wait_for(lambda: len(hook.bodies) >= 2, 20, "both webhook deliveries")
        metrics_url = next(line.split("metrics on ", 1)[1] for line in probe.out if "metrics on " in line)
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            metrics = response.read().decode()
        assert probe.stop(signal.SIGINT) == 0, probe.errors()
    finally:
        probe.kill()
        hook.close()

    assert 'wsgauge_probe_latency_seconds_count{metric="pong",probe="e2e"}' in metrics
    assert 'wsgauge_probe_users{probe="e2e",state="connected"} 2.0' in metrics
    assert 'wsgauge_probe_alert_firing{probe="e2e",rule="disconnected > 0.5s"} 0.0' in metrics
    assert "wsgauge_probe_queue_size" in metrics

    assert [b["status"] for b in hook.bodies] == ["firing", "resolved"]
    assert hook.bodies[0]["rule"] == "disconnected > 0.5s" and hook.bodies[0]["probe"] == "e2e"
    assert hook.attempts == 3

    run_id, run = _run(store)
    assert run.kind == "probe" and run.name == "e2e"
    assert run.status == "stopped" and run.ended_at is not None  # SIGINT: a clean stop, continuable
    with RunStore.open(store, readonly=True) as runs:
        events = runs.events(run_id)
        gauges = runs.gauges(run_id, ["users.connected"])
        latency = runs.latency(run_id)
    alerts = events[events.kind.isin(["alert_firing", "alert_resolved"])]
    assert list(alerts.kind) == ["alert_firing", "alert_resolved"]
    assert set(alerts.user) == {"disconnected > 0.5s"}
    detail = json.loads(alerts.detail.iloc[0])
    assert set(detail) >= {"rule", "value", "threshold", "window_s"} and detail["threshold"] == 0.5
    kinds = list(events.kind)
    assert "disconnected" in kinds and "reconnecting" in kinds and "connect_failed" in kinds
    # Every second of the run has its gauge row, outage included: the series itself has no hole.
    assert list(gauges.t) == list(range(gauges.t.min(), gauges.t.max() + 1))
    # Judged after both users first connected: the probe snapshots its users once a second from its start,
    # and on a loaded machine the first connects can finish after the first snapshot (a second of
    # "0 connected" before anything was up is the probe starting, not an outage).
    connects = events[events.kind == "connected"]
    both_up = connects.groupby("user").ts.min().max()
    assert both_up < outage_start
    gauges = gauges[gauges.t > int(both_up)]
    # The outage is a gap in the connection-state gauge: seconds with no user connected, inside the outage.
    down = gauges[gauges["sum"] == 0]
    assert not down.empty
    assert down.t.min() >= int(outage_start) - 1 and down.t.max() <= int(outage_end) + 2, gauges
    # ... and only there: every other second had both users connected (no gap beyond the outage).
    up = gauges[(gauges.t < int(outage_start) - 1) | (gauges.t > int(outage_end) + 3)]
    assert (up["sum"] == 2).all(), up
    assert set(latency.metric) >= {
        "pong",
        "ack:chat_message",
        "delivery:chat",
        "ack:progress_update",
        "sync:progress",
        "push:notification",
        "connect",
    }

    # A restart of the probe continues the same run.
    restarted = time.time()
    probe = ProbeProcess(*_probe_args(again, store))
    try:
        probe.wait_line(f"run {run_id} (continued)")
        probe.wait_for(lambda: _count(store, "pong", since=restarted) >= 2, 20, "pongs after the restart")
        assert probe.stop() == 0
    finally:
        probe.kill()
    with RunStore.open(store, readonly=True) as runs:
        [again_run] = runs.list_runs()
        assert again_run.id == run_id and again_run.started_at == run.started_at
        assert again_run.status == "stopped"
        # one series: the first process's seconds and the restarted one's, in the same run
        assert not runs.latency(run_id, ["pong"], end=outage_start).empty
        assert not runs.latency(run_id, ["pong"], start=restarted).empty


def _count(store: Path, metric: str, since: float = 0.0) -> int:
    if not store.exists():
        return 0
    try:
        with RunStore.open(store, readonly=True) as runs:
            frame = runs.latency(1, [metric], start=since)
    except sqlite3.Error:
        return 0
    return int(frame["count"].sum())


def test_target_down_at_start_the_probe_waits_and_connects_when_it_comes_up(
    reference_server_factory, tmp_path: Path
) -> None:
    server = reference_server_factory()
    port, db, secret = server.port, server.db_path, server.secret
    server.kill()
    store = tmp_path / "probe.sqlite3"
    probe = ProbeProcess(*_probe_args(server, store))
    try:
        probe.wait_line("connect_failed", count=4)
        assert probe.proc.poll() is None  # never exits by itself
        reference_server_factory("--port", str(port), db_path=db, secret=secret)
        probe.wait_line("-a connected")
        probe.wait_for(lambda: _count(store, "ack:chat_message") >= 2, 20, "chat acks")
        assert probe.stop() == 0
    finally:
        probe.kill()
    run_id, _ = _run(store)
    with RunStore.open(store, readonly=True) as runs:
        errors = runs.counters(run_id, prefix="errors.")
        events = runs.events(run_id)
    assert errors[errors.name == "errors.connect.refused"].value.sum() >= 4
    assert errors[errors.name == "errors.ping.not_connected"].value.sum() >= 1
    assert list(events.kind).index("connect_failed") < list(events.kind).index("connected")


def test_wrong_secret_is_a_clear_error_and_exit_2(reference_server, tmp_path: Path) -> None:
    store = tmp_path / "probe.sqlite3"
    args = _probe_args(reference_server, store)
    args[args.index(f"--secret={reference_server.secret}")] = "--secret=not-the-secret"
    probe = ProbeProcess(*args)
    assert probe.wait(30) == 2
    assert "refused the probe's credentials (HTTP 401)" in probe.errors()
    assert "Traceback" not in probe.errors()
    with RunStore.open(store, readonly=True) as runs:
        assert runs.list_runs() == []  # a refused start leaves no empty run behind


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rule", "p99 pong < 5 parsecs"], "cannot parse rule"),
        (["--rule", "p99 nosuch < 5ms"], "records no latency 'nosuch'"),
        (["--rule", "error rate < 1% over soon"], "the window after 'over'"),
        (["--rule", "disconnected > 30s", "--rule", "disconnected  >  30s"], "given twice"),
        (["--auth", "cookies"], "--auth cookies needs --cookies-file"),
        (["--alert-webhook", "ftp://x"], "--alert-webhook must be an http"),
        (["--host", "http://127.0.0.1:9/ws"], "--host must be a ws:// or wss:// URL"),
        (["--results", "redis://db/x"], "stores are not supported"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    # In-process: the real command line code, without a Python start-up per case.
    base = ["--host", "ws://127.0.0.1:9/ws", "--secret=s", "--results", str(tmp_path / "s.sqlite3")]
    assert main([*base, *args]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "s.sqlite3").exists()  # refused before touching the store


def test_rules_file_errors_name_the_line(tmp_path: Path, capsys) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[probe]\nwindow = "1m"\n\n[absolute]\nrules = [\n  "pong.p99 < 50ms",\n  "pong.p99 <<< 1",\n]\n'
    )
    args = ["--host", "ws://127.0.0.1:9/ws", "--secret=s", "--results", str(tmp_path / "s.sqlite3")]
    assert main([*args, "--rules-file", str(rules)]) == 2
    assert f"--rules-file {rules} line 7" in capsys.readouterr().err


def test_an_unwritable_store_is_a_clear_error_and_exit_2(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"this is not an SQLite file" * 100)
    for results in (blocker / "store.sqlite3", tmp_path, corrupt):  # parent is a file; a directory; junk
        assert main(["--host", "ws://127.0.0.1:9/ws", "--secret=s", "--results", str(results)]) == 2
        err = capsys.readouterr().err
        assert "cannot write the run store" in err, err
