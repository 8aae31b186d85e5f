"""Start an example server (``python examples/<name>/server.py --port 0 ...``) as its users would.

    with example_server("jsonrpc", "--latency-scale", "0") as url:   # ws://127.0.0.1:PORT/
        ...

The server is a subprocess in its own session, its ready line read off stdout; it gets SIGTERM at the
end (SIGKILL after 5 s).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["EXAMPLES", "example_server", "start_example_server", "stop"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def start_example_server(name: str, *args: str, timeout: float = 20.0) -> tuple[subprocess.Popen[str], str]:
    """Start ``examples/<name>/server.py --port 0 ARGS``; return the process and the URL it printed."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name / "server.py"), "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if " listening on " in line:
                return proc, line.rsplit(" ", 1)[1].strip()
            if not line:
                break
    stop(proc)
    raise RuntimeError(f"{name} example server did not start: {proc.stderr.read() if proc.stderr else ''}")


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL to the server's session after 5 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@contextlib.contextmanager
def example_server(name: str, *args: str) -> Iterator[str]:
    """A running example server for the block; yields its URL."""
    proc, url = start_example_server(name, *args)
    try:
        yield url
    finally:
        stop(proc)
