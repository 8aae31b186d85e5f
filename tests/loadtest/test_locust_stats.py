"""Batched Locust stats (``loadtest._locust_stats``): the same stats as one event per reply, on real sockets.

The scenario runs in a child process (``_locust_stats_scenario.py``): importing Locust monkeypatches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.conftest import REPO_ROOT, RunningServer

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def result(module_reference_server_factory: Callable[..., RunningServer]) -> dict:
    server = module_reference_server_factory()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    config = {"ws_url": server.ws_url, "secret": server.secret}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.loadtest._locust_stats_scenario", json.dumps(config)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_batched_stats_equal_one_event_per_request(result: dict) -> None:
    assert result["pending_before_flush"] == 0  # nothing reaches Locust's stats before a flush
    for name, (batched, fired) in result["direct"].items():
        assert batched == fired, name
        assert batched["num_requests"] > 0
    assert result["totals"][0] == result["totals"][1]
    assert result["totals"][0]["num_requests"] == 3500


def test_every_measured_pong_reaches_locust_by_the_end_of_the_test(result: dict) -> None:
    assert result["measured"] == result["locust_pongs"] == 200


def test_another_listener_gets_every_event_again(result: dict) -> None:
    assert result["active_with_listener"] is False
    assert "pong" in result["seen"] and "connect" in result["seen"]
