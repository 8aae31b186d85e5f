"""A probe subprocess and a webhook receiver for the probe's end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


class ProbeProcess:
    """``python -m probe ...`` with its stdout and stderr collected line by line."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        for name in ("WSGAUGE_SECRET", "AUTH_SECRET", "NEXTAUTH_SECRET", "WSGAUGE_ADMIN_TOKEN"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "probe", *args],
            cwd=cwd or REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"timed out waiting for {what}; stdout:\n{self.text()}\nstderr:\n{self.errors()}"
        )

    def wait_line(self, needle: str, timeout: float = 20.0, count: int = 1) -> None:
        self.wait_for(lambda: sum(needle in line for line in self.out) >= count, timeout, repr(needle))

    def text(self) -> str:
        return "\n".join(self.out)

    def errors(self) -> str:
        return "\n".join(self.err)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return rc

    def wait(self, timeout: float = 30.0) -> int:
        rc = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording the JSON bodies POSTed to it (``fail_first``: 503 first)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
