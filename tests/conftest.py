"""Shared fixtures.

``reference_server_factory`` / ``reference_server``: the real reference server as a subprocess
(``python -m reference_server``) on a free 127.0.0.1 port, with a temp SQLite file, a random
NextAuth secret and admin token. Load tests and end-to-end tests reuse them::

    def test_something(reference_server):
        ws = reference_server.connect("alice")            # websocket-client, authenticated
        ws.send('{"type":"ping","ts":1}')
        headers = [f"Cookie: {reference_server.cookie('bob')}"]   # for your own client

    def test_restart(reference_server_factory):
        srv = reference_server_factory("--rate-limit", "0")   # extra CLI options
        srv.kill()                                            # SIGKILL
        again = reference_server_factory(db_path=srv.db_path) # same file, new process

Each server is stopped (SIGTERM, then SIGKILL) at the end of the test that created it. Servers
start with ``--shutdown-timeout 1`` (idle test sockets rarely answer the close handshake) unless
the arguments say otherwise.
``module_reference_server_factory`` is the same with module scope, to share one server.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_PREFIX = "wsgauge reference server listening on "


@dataclass
class RunningServer:
    """A reference server subprocess and helpers to talk to it.

    Attributes:
        proc: The ``python -m reference_server`` process.
        ws_url: ``ws://127.0.0.1:PORT/ws``.
        http_url: ``http://127.0.0.1:PORT``.
        secret: The NextAuth secret the server accepts.
        admin_token: Bearer token for ``POST /api/notifications``.
        db_path: The SQLite file (``":memory:"`` if so started).
        port: The TCP port.
        stderr_path: Where the server's stderr (logs) goes.
    """

    proc: subprocess.Popen[str]
    ws_url: str
    http_url: str
    secret: str
    admin_token: str
    db_path: str
    port: int
    stderr_path: Path
    args: tuple[str, ...] = field(default=())

    # -- credentials --------------------------------------------------------------------------

    def token(self, user_id: str, *, version: int = 4, max_age: float = 3600, **claims: Any) -> str:
        """A NextAuth session token for ``user_id`` (v4 or v5, plain cookie name)."""
        import nextauth_tokens as nextauth

        payload = {"sub": user_id, "name": user_id, **claims}
        if version == 4:
            return nextauth.mint_v4(self.secret, payload, max_age=max_age)
        return nextauth.mint_v5(self.secret, payload, max_age=max_age)

    def cookie(self, user_id: str, *, version: int = 4, max_age: float = 3600, **claims: Any) -> str:
        """A ``Cookie`` header value authenticating ``user_id``."""
        import nextauth_tokens as nextauth

        name = nextauth.V4_COOKIE if version == 4 else nextauth.V5_COOKIE
        token = self.token(user_id, version=version, max_age=max_age, **claims)
        return nextauth.cookie_header(token, name)

    def connect(self, user_id: str, *, timeout: float = 5.0, **kwargs: Any) -> Any:
        """An authenticated ``websocket.WebSocket`` (websocket-client) for ``user_id``."""
        import websocket

        header = [f"Cookie: {self.cookie(user_id)}", *kwargs.pop("header", [])]
        return websocket.create_connection(self.ws_url, header=header, timeout=timeout, **kwargs)

    # -- HTTP ---------------------------------------------------------------------------------

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """Make an HTTP request; returns ``(status, decoded JSON or text)``."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.http_url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, content, ctype = resp.status, resp.read(), resp.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            status, content, ctype = exc.code, exc.read(), exc.headers.get_content_type()
        if ctype == "application/json":
            return status, json.loads(content)
        return status, content.decode()

    def post_notification(self, user_id: str, title: str = "t", body: str = "b", **extra: Any):
        """``POST /api/notifications`` with the admin token; returns ``(status, json)``."""
        return self.http(
            "POST",
            "/api/notifications",
            {"userId": user_id, "title": title, "body": body, **extra},
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )

    def healthz(self) -> dict[str, Any]:
        return self.http("GET", "/healthz")[1]

    def metrics(self) -> str:
        return self.http("GET", "/metrics")[1]

    # -- process ------------------------------------------------------------------------------

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL and wait."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_reference_server(
    tmp_dir: Path,
    *args: str,
    db_path: str | None = None,
    secret: str | None = None,
    admin_token: str | None = None,
    startup_timeout: float = 20.0,
) -> RunningServer:
    """Start ``python -m reference_server`` on a free loopback port; return once healthy.

    Args:
        tmp_dir: Directory for the database (unless ``db_path``) and the stderr log.
        *args: Extra command-line options.
        db_path: SQLite file to use (e.g. to restart on an existing one) or ``":memory:"``.
        secret, admin_token: Defaults are random.
    """
    secret = secret or secrets.token_urlsafe(32)
    admin_token = admin_token or secrets.token_urlsafe(16)
    db_path = db_path or str(tmp_dir / f"ws-{secrets.token_hex(4)}.db")
    stderr_path = tmp_dir / f"server-{secrets.token_hex(4)}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    for name in ("AUTH_SECRET", "NEXTAUTH_SECRET", "WSGAUGE_ADMIN_TOKEN", "WSGAUGE_DB"):
        env.pop(name, None)
    cmd = [
        sys.executable,
        "-m",
        "reference_server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        db_path,
        f"--secret={secret}",  # "=": a random value may start with "-"
        f"--admin-token={admin_token}",
        *(() if "--shutdown-timeout" in args else ("--shutdown-timeout", "1")),
        *args,
    ]
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + startup_timeout
    line = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    if not line.startswith(READY_PREFIX):
        with contextlib.suppress(Exception):
            proc.kill()
        raise RuntimeError(
            f"reference server did not start (rc={proc.poll()}, stdout={line!r}):\n"
            + stderr_path.read_text(errors="replace")
        )
    ws_url = line[len(READY_PREFIX) :].strip()
    port = int(ws_url.rsplit(":", 1)[1].split("/", 1)[0])
    server = RunningServer(
        proc=proc,
        ws_url=ws_url,
        http_url=f"http://127.0.0.1:{port}",
        secret=secret,
        admin_token=admin_token,
        db_path=db_path,
        port=port,
        stderr_path=stderr_path,
        args=tuple(args),
    )
    while time.monotonic() < deadline:  # the ready line follows listen(); check anyway
        with contextlib.suppress(OSError):
            if server.healthz().get("status") == "ok":
                return server
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("reference server never became healthy")


@contextlib.contextmanager
def _factory(tmp_dir: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def start(*args: str, **kwargs: Any) -> RunningServer:
        server = start_reference_server(tmp_dir, *args, **kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            try:
                server.terminate(timeout=10)
            except Exception:
                server.kill()
            if server.proc.stdout is not None:
                server.proc.stdout.close()


@pytest.fixture
def reference_server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start reference servers: ``factory(*cli_args, db_path=None, secret=None, admin_token=None)``."""
    with _factory(tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def module_reference_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningServer]]:
    """Like ``reference_server_factory``, but servers live for the whole test module."""
    with _factory(tmp_path_factory.mktemp("refserver")) as start:
        yield start


@pytest.fixture
def reference_server(reference_server_factory: Callable[..., RunningServer]) -> RunningServer:
    """One reference server with default settings, for this test."""
    return reference_server_factory()


# ==========================================================================================================
# Load-test runs (owner: run lifecycle, loadtest/_lifecycle*.py). Apart from the reference-server fixtures.
#
# ``real_run_store``: ONE short real headless run of ``locust -f loadtest`` (embedded reference server, all
# personas, 8 users, 8 s) per test session; returns ``(store_path, run_id)`` of a completed run with every
# kind of row (latency, counters, gauges, events, server metrics). Read it, don't write to it::
#
#     def test_report(real_run_store):
#         store_path, run_id = real_run_store
#         with RunStore.open(store_path, readonly=True) as store: ...
# ==========================================================================================================


@pytest.fixture(scope="session")
def real_run_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A completed real load run in a fresh run store: ``(store_path, run_id)``."""
    from tests.loadtest.locust_runs import run_locust

    store_path = tmp_path_factory.mktemp("real_run") / "wsgauge.sqlite3"
    run = run_locust(
        store_path,
        *("-u", "8", "-r", "8", "-t", "8s", "--think-scale", "0.5", "--seed", "7"),
        *("--run-name", "real-run-fixture", "--report", "false"),
        timeout=120,
    )
    (store_path.parent / "locust.out").write_text(run.stdout + "\n--- stderr\n" + run.stderr)
    if run.returncode != 0 or run.run_id is None:
        raise RuntimeError(f"the real load run failed:\n{run.output}")
    return store_path, run.run_id
