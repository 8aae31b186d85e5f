"""``--workers N``: N server processes on one port, and a supervisor that keeps them running.

The supervisor binds the port first (``SO_REUSEPORT``, not listening: it only holds the number,
so ``--port 0`` gives every worker the same free port), then starts each worker as
``python -m reference_server … --port P --worker``; a worker binds the port with
``SO_REUSEPORT`` and the kernel spreads new connections over the listening workers. The
supervisor prints the one ready line once every worker is ready, restarts a worker that dies
(the kernel hands its port share to the others meanwhile; its clients reconnect and get their
backlog from the shared store), and on SIGTERM/SIGINT passes the signal to every worker, waits
for their graceful shutdown and exits 0. A worker dies with its supervisor
(``PR_SET_PDEATHSIG``), so a SIGKILLed supervisor leaves no orphans.

Secrets reach workers in their environment (``AUTH_SECRET``), never on a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence

from .config import ServerConfig

__all__ = ["reserve_port", "supervise"]

log = logging.getLogger("reference_server.supervisor")

READY_PREFIX = "wsgauge reference server listening on "
_RESTART_DELAY = 0.5  # seconds before a dead worker is started again (doubling to 8 s)


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) ``host:port`` with ``SO_REUSEPORT``; the caller keeps it open."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class _Worker:
    def __init__(self, index: int, argv: list[str], env: dict[str, str]) -> None:
        self.index = index
        self.argv = argv
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self, timeout: float) -> None:
        """Start the worker and wait for its ready line.

        Raises:
            RuntimeError: It exited or stayed silent.
        """
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent,
            # Own session: a terminal's Ctrl-C reaches the supervisor only, which then stops the
            # workers itself (no race between a worker's exit and the supervisor's restart).
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        text = line.decode(errors="replace")
        if not text.startswith(READY_PREFIX):
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            rc = await self.proc.wait()
            raise RuntimeError(f"worker {self.index} did not start (exit status {rc})")
        self.url = text[len(READY_PREFIX) :].strip()


async def _run(config: ServerConfig, argv: list[str], env: dict[str, str], port: int) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    workers = [_Worker(i, argv, env) for i in range(config.workers)]
    try:
        await asyncio.gather(*(w.start(30.0) for w in workers))
    except RuntimeError as exc:
        print(f"wsgauge reference server: {exc}; stopping", file=sys.stderr, flush=True)
        await _stop_all(workers, config.shutdown_timeout)
        return 1
    sys.stdout.write(f"{READY_PREFIX}ws://{config.host}:{port}/ws\n")
    sys.stdout.flush()
    delays = [_RESTART_DELAY] * len(workers)
    waits: dict[asyncio.Task[int], _Worker] = {}
    for w in workers:
        assert w.proc is not None
        waits[asyncio.create_task(w.proc.wait())] = w
    stopper = asyncio.create_task(stop.wait())
    while not stop.is_set():
        done, _ = await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is stopper:
                continue
            w = waits.pop(task)
            rc = task.result()
            if stop.is_set():
                continue
            log.warning("worker %d (pid %s) exited with %s; restarting", w.index, w.proc and w.proc.pid, rc)
            print(f"wsgauge reference server: worker {w.index} exited ({rc}); restarting", file=sys.stderr)
            started = time.monotonic()
            while not stop.is_set():
                try:
                    await w.start(30.0)
                    break
                except RuntimeError as exc:
                    log.error("%s; retrying in %.1f s", exc, delays[w.index])
                    await asyncio.sleep(delays[w.index])
                    delays[w.index] = min(8.0, delays[w.index] * 2)
            if time.monotonic() - started < 60:
                delays[w.index] = _RESTART_DELAY
            if w.proc is not None and w.proc.returncode is None:
                waits[asyncio.create_task(w.proc.wait())] = w
    await _stop_all(workers, config.shutdown_timeout)
    return 0


async def _stop_all(workers: list[_Worker], shutdown_timeout: float) -> None:
    """SIGTERM every worker (graceful: 1001 to clients, store flushed); SIGKILL stragglers."""
    procs = [w.proc for w in workers if w.proc is not None and w.proc.returncode is None]
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    if not procs:
        return
    _, pending = await asyncio.wait(
        [asyncio.create_task(p.wait()) for p in procs], timeout=shutdown_timeout + 10
    )
    for p in procs:
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
    if pending:
        await asyncio.wait(pending, timeout=5)


def supervise(config: ServerConfig, argv: Sequence[str]) -> int:
    """Run ``config.workers`` workers of ``python -m reference_server argv`` until a signal.

    Returns the exit status: 0 after a signal, 1 if the port or a worker cannot start.
    """
    try:
        holder = reserve_port(config.host, config.port)
    except OSError as exc:
        print(f"wsgauge reference server: cannot bind {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    port = holder.getsockname()[1]
    env = dict(os.environ)
    for name in ("WSGAUGE_DB", "AUTH_SECRET", "NEXTAUTH_SECRET", *(f"AUTH_SECRET_{i}" for i in range(1, 10))):
        env.pop(name, None)
    if config.secrets:
        env["AUTH_SECRET"] = config.secrets[0]
        for i, old in enumerate(config.secrets[1:10], start=1):
            env[f"AUTH_SECRET_{i}"] = old
    # Last wins in argparse: the worker's own port and role override what the user gave.
    child = [sys.executable, "-m", "reference_server", *_without_secrets(argv), "--port", str(port)]
    child += ["--workers", "1", "--worker"]
    try:
        return asyncio.run(_run(config, child, env, port))
    finally:
        holder.close()


def _without_secrets(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--secret`` options (workers get the secrets in their environment)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--secret":
            skip = True
            continue
        if arg.startswith("--secret="):
            continue
        out.append(arg)
    return out
