"""Run an example's locustfile for real, and the reports CLI on what it stored.

    run = run_example(tmp_path / "store.sqlite3", "jsonrpc", url, "-u", "5", "-r", "5", "-t", "4s")
    assert run.returncode == 0, run.output
    build = reports("build", "--results", str(store), str(run.run_id), "-o", str(html))

Locust runs as users run it, ``python -m locust -f examples/<name>/locustfile.py --headless --host URL
--results STORE ...`` from the repository root, with this checkout importable (``locust_env``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.loadtest.locust_runs import REPO_ROOT, LocustRun, locust_env, stored_run

__all__ = ["locustfile", "reports", "run_example"]


def locustfile(name: str) -> Path:
    """``examples/<name>/locustfile.py``."""
    return REPO_ROOT / "examples" / name / "locustfile.py"


def run_example(store: Path, name: str | Path, host: str, *args: str, timeout: float = 90.0) -> LocustRun:
    """``locust -f examples/<name>/locustfile.py --headless --host HOST --results STORE ARGS`` to its end.

    ``name`` may also be the path of a locustfile of the test's own.
    """
    path = name if isinstance(name, Path) else locustfile(name)
    command = [sys.executable, "-m", "locust", "-f", str(path), "--headless"]
    proc = _run([*command, "--host", host, "--results", str(store), *args], timeout)
    return LocustRun(proc.returncode, proc.stdout, proc.stderr, store, stored_run(store))


def reports(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``python -m reports ARGS`` (its exit code is the caller's to check)."""
    return _run([sys.executable, "-m", "reports", *args], timeout)


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``command`` from the repository root with this checkout importable, its output captured."""
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=locust_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
