"""Options of a real ``locust -f loadtest`` that must fail at start, before anything is created."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.loadtest.locust_runs import locust_command, locust_env

pytestmark = pytest.mark.timeout(120)


def test_a_results_url_is_a_usage_error_never_a_local_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        locust_command("-u", "1", "-t", "2s", "--results", "redis://127.0.0.1:6379/0"),
        cwd=tmp_path, env=locust_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "--results" in proc.stderr and "redis://" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no 'redis:' folder, no store


def test_a_dead_port_is_named_before_the_missing_secret(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    proc = subprocess.run(
        locust_command("-u", "1", "-t", "2s", "--results", str(tmp_path / "w.sqlite3"),
                       "--host", f"ws://127.0.0.1:{dead}/ws"),
        cwd=tmp_path, env=locust_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"wsgauge: cannot reach ws://127.0.0.1:{dead}/ws: connection refused; also ")
    assert "--secret" in line and "Traceback" not in proc.stderr
