"""The TEST ONLY tail delay (``--test-tail-delay`` / ``WSGAUGE_TEST_TAIL_DELAY``): parsing, order, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from reference_server.test_faults import TailDelay
from tests.conftest import REPO_ROOT

from .helpers import recv_json, uid

pytestmark = pytest.mark.timeout(60)


def test_parse_and_draw():
    tail = TailDelay.parse("0.25:2.5")
    assert tail == TailDelay(0.25, 2.5)
    assert tail.draw(lambda: 0.2) == pytest.approx(0.0025)
    assert tail.draw(lambda: 0.25) == 0.0  # the share is the probability of a delay: [0, share)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("0.03", "SHARE:MS"), ("x:2", "SHARE:MS"), ("0:2", "share must be in (0, 1]"), ("1.5:2", "(0, 1]"),
     ("0.1:0", "positive milliseconds"), ("0.1:-3", "positive")],
)  # fmt: skip
def test_bad_values_name_the_problem(text, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        TailDelay.parse(text)


def test_a_bad_value_from_the_environment_is_exit_2_naming_it():
    env = {**os.environ, "WSGAUGE_TEST_TAIL_DELAY": "3%:2", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "reference_server", "--port", "0", "--db", ":memory:"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "--test-tail-delay" in proc.stderr and "SHARE:MS" in proc.stderr and "'3%:2'" in proc.stderr


def test_delayed_frames_keep_their_order_and_are_late(reference_server_factory):
    server = reference_server_factory("--test-tail-delay", "0.5:150")
    ws = server.connect(uid())
    started = time.monotonic()
    for i in range(20):
        ws.send(json.dumps({"type": "ping", "ts": i}))
    assert [recv_json(ws)["ts"] for _ in range(20)] == list(range(20))  # an undelayed frame waits its turn
    assert time.monotonic() - started >= 0.15  # at least one of 20 was delayed (chance it was not: 1e-6)
    ws.close()


def test_every_frame_delayed_with_share_1(reference_server_factory):
    server = reference_server_factory("--test-tail-delay", "1:200")
    ws = server.connect(uid())
    started = time.monotonic()
    ws.send(json.dumps({"type": "ping", "ts": 7}))
    assert recv_json(ws) == {"type": "pong", "ts": 7}
    assert time.monotonic() - started >= 0.2
    ws.close()
