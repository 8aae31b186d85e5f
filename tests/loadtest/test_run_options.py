"""Options of a real ``locust -f loadtest`` that must fail at start, before anything is created."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.loadtest.locust_runs import locust_command, locust_env

pytestmark = pytest.mark.timeout(120)


def test_a_results_url_is_a_usage_error_never_a_local_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        locust_command("-u", "1", "-t", "2s", "--results", "postgresql://user@host/db"),
        cwd=tmp_path, env=locust_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "--results" in proc.stderr and "postgresql://" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no 'postgresql:' folder, no store
