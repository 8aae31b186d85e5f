"""The embedded default target: the reference server as a child process of the Locust master.

``locust -f loadtest`` without ``--host`` starts ``python -m reference_server`` on a free loopback port,
with a fresh SQLite file in a temporary directory and a fresh random NextAuth secret and admin token, and
stops it when Locust quits. The secret and token travel to the child in its environment (``AUTH_SECRET``,
``WSGAUGE_ADMIN_TOKEN``), never on its command line, so ``ps`` does not show them.

The child runs in its own session, so a Ctrl-C on the terminal reaches Locust only: Locust finalises the run
(a last drain, a last scrape of the server's ``/metrics``) and then stops the server itself. On Linux the
child also gets ``PR_SET_PDEATHSIG``: if Locust is killed outright, the server follows it.

Scaled out (``--embedded-workers N`` with ``--embedded-db postgresql://…`` and
``--embedded-redis redis://…``), the child is the server's supervisor with N worker processes on
one port, storing in that database and delivering through that Redis under a channel prefix of
this run's own. The database is the user's: its tables are created if missing and kept.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EmbeddedServer", "EmbeddedServerError", "ServerHandle"]

log = logging.getLogger(__name__)

_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "::": "::1"}
"""Wildcard bind addresses, and the address this machine reaches such a listener on."""
READY_PATTERN = re.compile(r"listening on (wss?://\S+)")
"""The reference server's one-line readiness message (``wsgauge reference server listening on ws://...``)."""


class EmbeddedServerError(RuntimeError):
    """The embedded reference server could not be started; ``str()`` says why in one line."""


@dataclass(frozen=True)
class ServerHandle:
    """Where the embedded server listens and the credentials it accepts."""

    ws_url: str
    http_base: str
    secret: str
    admin_token: str
    pid: int
    db: Path | str


def _project_root() -> Path | None:
    """The directory holding the ``reference_server`` package (for the child's ``PYTHONPATH``).

    Found, not imported: the server is a separate program (``python -m reference_server``), not a library
    of the load generator's.
    """
    spec = importlib.util.find_spec("reference_server")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent.parent


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM the child when its parent dies (Linux only; best effort)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


class EmbeddedServer:
    """A reference server child process.

    Args:
        test_delay_ms: the server's test-only per-frame delay (``--server-test-delay-ms``).
        start_timeout: seconds to wait for the readiness line.
        extra_args: more ``python -m reference_server`` arguments.
        bind_host: the interface to listen on: loopback unless workers on other machines must reach it
            (``0.0.0.0``: every interface). The handle's URLs use this address, or loopback for a
            wildcard, so that this machine can always reach them.
        workers: server processes (``--workers``); more than one needs ``db`` and ``redis``.
        db: a ``postgresql://`` database instead of a fresh SQLite file (needs ``redis``).
        redis: the ``redis://`` URL that carries pushes between the server's processes.

    Call :meth:`start`, then :meth:`stop` (idempotent; also safe if :meth:`start` failed).
    """

    def __init__(
        self,
        *,
        test_delay_ms: float = 0.0,
        start_timeout: float = 20.0,
        extra_args: tuple[str, ...] = (),
        bind_host: str = "127.0.0.1",
        workers: int = 1,
        db: str | None = None,
        redis: str | None = None,
    ) -> None:
        if workers > 1 and not (db and redis):
            raise EmbeddedServerError(f"{workers} embedded server processes need a PostgreSQL db and a Redis")
        if db and not redis:
            raise EmbeddedServerError("an embedded server on PostgreSQL needs a Redis")
        self.bind_host = bind_host
        self.workers = workers
        self.postgres = db
        self.redis = redis
        self.test_delay_ms = test_delay_ms
        # a supervisor starts its workers one after another's imports: allow them the time
        self.start_timeout = start_timeout if workers <= 1 else max(start_timeout, 20.0 + 10.0 * workers)
        self.extra_args = extra_args
        self.handle: ServerHandle | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._tmpdir: Path | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=20)
        self._ready = threading.Event()
        self._ws_url: str | None = None

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def died(self) -> bool:
        """Whether the child exited on its own (not through :meth:`stop`)."""
        return self._process is not None and self._process.poll() is not None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def last_output(self) -> str:
        """The child's last line of output (for error messages), or ``""``."""
        return self._output[-1] if self._output else ""

    def start(self) -> ServerHandle:
        """Start the server and wait until it accepts connections.

        Raises:
            EmbeddedServerError: if it exits or does not become ready within ``start_timeout``.
        """
        self._tmpdir = Path(tempfile.mkdtemp(prefix="wsgauge-embedded-"))
        db: Path | str = self.postgres or self._tmpdir / "reference.sqlite3"
        scale_out: list[str] = []
        if self.redis:
            prefix = f"wsgauge-embedded-{secrets.token_hex(6)}:"  # this run's own channels
            scale_out = ["--workers", str(self.workers), "--redis", self.redis, "--redis-prefix", prefix]
        secret = secrets.token_urlsafe(32)
        admin_token = secrets.token_urlsafe(24)
        env = dict(os.environ)
        for name in ("NEXTAUTH_SECRET", "WSGAUGE_REDIS", *(f"AUTH_SECRET_{i}" for i in range(1, 10))):
            env.pop(name, None)
        env["AUTH_SECRET"] = secret
        env["WSGAUGE_ADMIN_TOKEN"] = admin_token
        env["PYTHONUNBUFFERED"] = "1"
        root = _project_root()
        if root is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-m",
            "reference_server",
            "--host",
            self.bind_host,
            "--port",
            "0",
            "--db",
            str(db),
            "--test-delay-ms",
            repr(float(self.test_delay_ms)),
            *scale_out,
            *self.extra_args,
        ]
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            self.stop()
            raise EmbeddedServerError(f"cannot start the embedded reference server: {exc}") from exc
        reader = threading.Thread(target=self._read_output, name="wsgauge-embedded-output", daemon=True)
        reader.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._ready.wait(0.05):
            if self._process.poll() is not None:
                reader.join(1.0)
                detail = self.last_output() or "no output"
                code = self._process.returncode
                self.stop()
                raise EmbeddedServerError(f"the embedded reference server exited with code {code}: {detail}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedServerError(
                    f"the embedded reference server did not become ready within {self.start_timeout:g} s"
                )
        assert self._ws_url is not None
        port = urllib.parse.urlsplit(self._ws_url).port
        host = _LOOPBACK_FOR.get(self.bind_host, self.bind_host)
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        ws_url, http_base = f"ws://{netloc}/ws", f"http://{netloc}"
        self.handle = ServerHandle(ws_url, http_base, secret, admin_token, self._process.pid, db)
        log.info(
            "embedded reference server listening on %s (pid %s)%s",
            ws_url,
            self._process.pid,
            f", on every interface ({self.bind_host})" if self.bind_host in _LOOPBACK_FOR else "",
        )
        return self.handle

    def _read_output(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self._output.append(line)
            if not self._ready.is_set():
                match = READY_PATTERN.search(line)
                if match:
                    self._ws_url = match.group(1)
                    self._ready.set()
                    continue
            log.debug("reference server: %s", line)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout`` seconds; remove its files.

        Returns:
            The child's exit code, or ``None`` if it was never started.
        """
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                try:
                    process.send_signal(signal.SIGTERM)
                    code = process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("embedded reference server ignored SIGTERM for %g s; killing it", timeout)
                    process.kill()
                    code = process.wait(5.0)
                except ProcessLookupError:
                    code = process.poll()
            else:
                code = process.returncode
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        return code
