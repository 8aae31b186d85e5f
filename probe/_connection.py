"""One probe user's connection: connect, read, write, and reconnect with backoff + jitter, forever.

The I/O shell around :class:`probe._checks.ProbeChecks`: it moves frames between an aiohttp WebSocket and the
core and reports connection changes; it decides nothing about checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from probe._auth import Credentials
from probe._backoff import Backoff
from probe._checks import ProbeChecks

__all__ = ["AuthRefused", "ProbeConnection"]

log = logging.getLogger(__name__)

SESSION_EXPIRED = 4001


class AuthRefused(Exception):
    """The target refused the probe's credentials at the first connect (HTTP 401, or close 4401)."""


def _connect_code(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"http_{exc.status}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused" if isinstance(exc.os_error, ConnectionRefusedError) else "network"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    return "network"


class ProbeConnection:
    """Keeps probe user ``index`` connected to ``url``.

    Args:
        index: 0 (``a``) or 1 (``b``).
        url: ``ws(s)://.../ws``.
        credentials: the upgrade request's headers.
        checks: the core to feed.
        session: the aiohttp client session.
        backoff: reconnect delays.
        first_connect_pending: returns ``True`` until any probe user has connected once (a 401 before
            that is a wrong credential: fatal; after it, a server-side change: keep trying).
        connect_timeout: seconds for TCP + handshake.
        heartbeat: seconds between protocol pings (aiohttp closes a connection whose pong does not come).
    """

    def __init__(
        self,
        index: int,
        url: str,
        credentials: Credentials,
        checks: ProbeChecks,
        session: aiohttp.ClientSession,
        backoff: Backoff,
        first_connect_pending: Callable[[], bool],
        *,
        connect_timeout: float = 10.0,
        heartbeat: float = 10.0,
        on_state: Callable[[int, str, str], None] | None = None,
    ) -> None:
        self.index = index
        self.url = url
        self._credentials = credentials
        self._checks = checks
        self._session = session
        self._backoff = backoff
        self._first_connect_pending = first_connect_pending
        self._connect_timeout = connect_timeout
        self._heartbeat = heartbeat
        self._on_state = on_state
        self._outbound: asyncio.Queue[tuple[dict[str, Any], float]] = asyncio.Queue()
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    @property
    def queue_size(self) -> int:
        """Frames queued and not yet written to the socket (the seed's ``messageQueueSize``)."""
        return self._outbound.qsize()

    def send(self, frame: dict[str, Any], scheduled: float = 0.0) -> None:
        """Queue ``frame`` (due at ``scheduled``) for sending; returns at once."""
        self._outbound.put_nowait((frame, scheduled))

    async def run(self) -> None:
        """Connect and stay connected until cancelled.

        Raises:
            AuthRefused: the first connect was refused with 401 (or closed with 4401).
        """
        while True:
            try:
                if await self._connect():
                    await self._serve()
            except (AuthRefused, asyncio.CancelledError):
                raise
            except Exception:  # a bug must cost one connection, never the probe that watches production
                log.exception("probe user %d: unexpected error; reconnecting", self.index)
            await asyncio.sleep(self._backoff.next_delay())

    async def close(self) -> None:
        """Close the socket with 1000 (on shutdown)."""
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
                await asyncio.wait_for(ws.close(), 2.0)

    async def _connect(self) -> bool:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._connect_timeout):
                ws = await self._session.ws_connect(
                    self.url,
                    headers=self._credentials.headers(self.index),
                    heartbeat=self._heartbeat,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                    max_msg_size=4 * 1024 * 1024,
                    autoping=True,
                )
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            code = _connect_code(exc)
            if code == "http_401" and self._first_connect_pending():
                raise AuthRefused(
                    f"{self.url} refused the probe's credentials (HTTP 401): check --secret / --auth / "
                    "--cookies-file / --bearer-file"
                ) from exc
            self._checks.connect_failed(self.index, time.time(), code, str(exc)[:200])
            self._state("connect_failed", f"{code}: {str(exc)[:120]}")
            return False
        self._ws = ws
        self._backoff.reset()
        self._checks.connection_up(self.index, time.time(), (time.perf_counter() - started) * 1e6)
        self._state("connected", "")
        return True

    async def _serve(self) -> None:
        ws = self._ws
        assert ws is not None
        writer = asyncio.get_running_loop().create_task(self._write(ws))
        reason = "closed"
        try:
            async for message in ws:
                at = time.time()
                if message.type == aiohttp.WSMsgType.TEXT:
                    try:
                        frame = orjson.loads(message.data)
                    except orjson.JSONDecodeError:
                        frame = None
                    if isinstance(frame, dict):
                        self._checks.receive(self.index, frame, at)
                    else:
                        self._checks.receive(self.index, {}, at)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    reason = f"error: {ws.exception()}"
                    break
            code = ws.close_code
            if code is not None:
                reason = f"close {code}"
            if code == 4401 and self._first_connect_pending():
                raise AuthRefused(f"{self.url} closed the probe's connection with 4401 (unauthorized)")
            if code == SESSION_EXPIRED:
                self._credentials.renew(self.index)
        except (aiohttp.ClientError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            writer.cancel()
            self._ws = None
            while not self._outbound.empty():  # their checks fail below (connection_lost); never send late
                self._outbound.get_nowait()
            if not ws.closed:
                await ws.close()
            if not self._checks.closing:
                self._checks.connection_down(self.index, time.time(), reason)
                self._state("reconnecting", reason)

    async def _write(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            frame, scheduled = await self._outbound.get()
            try:
                await ws.send_str(orjson.dumps(frame).decode())
            except (aiohttp.ClientError, OSError, ConnectionResetError):
                return
            self._checks.frame_sent(scheduled, time.time())

    def _state(self, state: str, detail: str) -> None:
        if self._on_state is not None:
            self._on_state(self.index, state, detail)
