"""Running ``locust -f loadtest`` for real, as a subprocess, and reading what it stored.

Shared by the run-lifecycle tests and the session fixture ``real_run_store`` (``tests/conftest.py``).
Every run is bounded: few users, a few seconds (``-t``), and a subprocess timeout on top.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from runstore.store import RunRecord, RunStore

__all__ = [
    "LOCUSTFILES",
    "REPO_ROOT",
    "LocustRun",
    "locust_command",
    "locust_env",
    "own_master_port",
    "reap",
    "run_locust",
    "start_locust",
    "stored_run",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILES = REPO_ROOT / "loadtest"


def locust_command(*args: str, headless: bool = True) -> list[str]:
    """``python -m locust -f loadtest --headless ARGS`` (without ``--headless``: with the web UI)."""
    mode = ["--headless"] if headless else []
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES), *mode, *args]


def own_master_port() -> tuple[str, ...]:
    """``--master-bind-port P --master-port P`` with a free port, for runs with ``--processes``.

    Locust's default master port (5557) is one per machine: two distributed runs at once (parallel test
    sessions) would otherwise bind-fail, or worse, have one run's forked workers join the other's master.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    return ("--master-bind-port", port, "--master-port", port)


def locust_env() -> dict[str, str]:
    """The environment for a Locust subprocess: the checkout importable, no stray wsgauge options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSGAUGE_", "LOCUST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _restore_sigint() -> None:  # pragma: no cover - runs in the child
    # A shell's background job inherits SIGINT ignored; give Locust its default Ctrl-C behaviour back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_locust(*args: str, log: Path, headless: bool = True) -> subprocess.Popen[bytes]:
    """Start Locust in its own process group, output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            locust_command(*args, headless=headless),
            cwd=REPO_ROOT,
            env=locust_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_restore_sigint,
        )


def wait_for_log(log: Path, text: str, timeout: float = 30.0) -> None:
    """Wait until ``text`` appears in a :func:`start_locust` log (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)


def reap(proc: subprocess.Popen[bytes]) -> None:
    """Make sure a Locust started by :func:`start_locust` is gone (SIGKILL to its group if still running)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


@dataclass
class LocustRun:
    """A finished Locust process and the run it stored (if any)."""

    returncode: int
    stdout: str
    stderr: str
    store_path: Path
    run_id: int | None

    def record(self) -> RunRecord:
        assert self.run_id is not None, self.output
        with RunStore.open(self.store_path, readonly=True) as store:
            return store.get_run(self.run_id)

    @property
    def output(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-6000:]}"


def stored_run(store_path: Path) -> int | None:
    """The newest run id in a store, or ``None``."""
    if not store_path.is_file():
        return None
    with RunStore.open(store_path, readonly=True) as store:
        return store.latest_run_id()


def run_locust(store_path: Path, *args: str, timeout: float = 90.0) -> LocustRun:
    """Run ``locust -f loadtest --headless --results STORE ARGS`` to completion."""
    proc = subprocess.run(
        locust_command("--results", str(store_path), *args),
        cwd=REPO_ROOT,
        env=locust_env(),
        stdin=subprocess.DEVNULL,
        preexec_fn=_restore_sigint,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return LocustRun(proc.returncode, proc.stdout, proc.stderr, store_path, stored_run(store_path))
