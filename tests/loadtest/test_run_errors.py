"""Bad options and unreachable targets end in one clear line; Ctrl-C and SIGTERM still finalise the run."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from runstore.store import RunStore
from tests.loadtest.locust_runs import (
    own_master_port,
    reap,
    run_locust,
    start_locust,
    stored_run,
    wait_for_log,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wsgauge_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("wsgauge: ")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--batch-size", "1"), "--batch-size 1 is not batching"),
        (("--host", "http://127.0.0.1:1/ws"), "--host must be a ws:// or wss:// URL"),
        (("--host", "ws://127.0.0.1:1/ws"), "--auth v4 against --host ws://127.0.0.1:1/ws needs --secret"),
        (("--auth", "cookies"), "--auth cookies needs --cookies-file FILE"),
        (("--reconnect-base-ms", "500", "--reconnect-max-ms", "100"), "--reconnect-max-ms must be >="),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    run = run_locust(tmp_path / "wsgauge.sqlite3", "-u", "1", "-t", "2s", *args, timeout=30)
    assert run.returncode == 2, run.output
    lines = _wsgauge_lines(run.stderr)
    assert len(lines) == 1 and message in lines[0], run.output
    assert "Traceback" not in run.stderr + run.stdout
    assert run.run_id is None  # nothing stored


def test_unreachable_target_gives_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{_free_port()}/ws"
    run = run_locust(
        tmp_path / "wsgauge.sqlite3", "-u", "1", "-t", "2s", "--host", url, "--secret=x", timeout=30
    )
    assert run.returncode == 1, run.output
    assert _wsgauge_lines(run.stderr) == [f"wsgauge: cannot reach {url}: connection refused"], run.output
    assert "Traceback" not in run.stderr + run.stdout


def test_unreachable_target_with_processes_exits_without_hanging(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{_free_port()}/ws"
    started = time.monotonic()
    run = run_locust(
        tmp_path / "wsgauge.sqlite3",
        "--processes",
        "2",
        *own_master_port(),
        "-u",
        "2",
        "-t",
        "5s",
        *("--host", url, "--secret=x"),
    )
    assert run.returncode == 1, run.output
    assert f"wsgauge: cannot reach {url}: connection refused" in _wsgauge_lines(run.stderr)
    assert time.monotonic() - started < 30


def _embedded_pid(log: Path) -> int:
    match = re.search(r"embedded reference server listening on \S+ \(pid (\d+)\)", log.read_text())
    assert match, log.read_text()[-3000:]
    return int(match.group(1))


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize(
    ("sig", "processes"),
    [(signal.SIGTERM, ()), (signal.SIGINT, ()), (signal.SIGINT, ("--processes", "2", *own_master_port()))],
    ids=["sigterm", "ctrl-c", "ctrl-c-processes"],
)
def test_interrupted_run_is_finalised_and_the_server_stopped(
    tmp_path: Path, sig: signal.Signals, processes: tuple[str, ...]
) -> None:
    store_path = tmp_path / "wsgauge.sqlite3"
    log = tmp_path / "locust.log"
    locust = start_locust(
        *("--results", str(store_path), *processes, "-u", "4", "-r", "4", "-t", "60s", "--report", "false"),
        log=log,
    )
    try:
        wait_for_log(log, "All users spawned")
        time.sleep(2.5)
        pid = _embedded_pid(log)
        os.killpg(locust.pid, sig)  # a terminal's Ctrl-C reaches the whole foreground process group
        code = locust.wait(30)
    finally:
        reap(locust)
    text = log.read_text()
    assert "Traceback" not in text, text[-6000:]
    assert code in (0, 1), text[-4000:]
    assert _gone(pid), "the embedded reference server outlived Locust"
    with RunStore.open(store_path, readonly=True) as store:
        record = store.get_run(stored_run(store_path))
        assert record.status == "interrupted"
        assert record.ended_at is not None and record.summary is not None
        sent = store.counters(record.id, prefix="sent.")["value"].sum()
        assert sent > 0 and record.summary["sent"] == sent


def test_a_run_in_which_no_user_ever_connected_is_failed(tmp_path: Path, reference_server: Any) -> None:
    # A reachable target that refuses every upgrade (cookies minted with the wrong secret): users tried,
    # none got in. Such a run measured nothing of the target: failed, not completed.
    run = run_locust(
        tmp_path / "wsgauge.sqlite3",
        *("--host", reference_server.ws_url, "--secret", "not-the-servers-secret"),
        *("--admin-token", reference_server.admin_token, "-u", "3", "-r", "3", "-t", "4s"),
        *("--report", "false"),
        timeout=60,
    )
    assert run.returncode == 1, run.output
    record = run.record()
    assert record.status == "failed", run.output
    assert record.summary is not None
    failure = record.summary["failure"]
    assert failure.startswith(f"no user ever connected to {reference_server.ws_url} ("), failure
    assert "connects failed" in failure
    assert f"wsgauge run {record.id} " in run.stdout and ": failed," in run.stdout
