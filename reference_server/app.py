"""The aiohttp application: routes, authentication at the upgrade, lifecycle.

Routes (all registered in one ``add_routes`` list):

* ``GET /ws`` — the protocol. The NextAuth session (cookie or ``Authorization: Bearer``) is
  checked before the handshake; a bad one gets HTTP 401 and no WebSocket.
* ``GET /healthz`` — liveness/readiness JSON.
* ``GET /metrics`` — Prometheus text format.
* ``POST /api/notifications`` — back ends create a notification for a user (admin bearer token).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from nextauth_tokens import AuthConfig, AuthError, authenticate

from . import __version__
from .bus import RedisBus
from .config import ServerConfig
from .connection import Connection, Hub
from .errors import CLOSE_GOING_AWAY, RemoteProtocolError
from .messages import MAX_FIELD_LENGTH, StoredNotification, encode, validate_user_id
from .metrics import CONTENT_TYPE, ServerMetrics
from .pgstore import PgStore, is_postgres_url, redact_url
from .protocol import Session, notification_push
from .store import Store

#: Either durable store: SQLite for one process, PostgreSQL when several processes serve.
AnyStore = Store | PgStore

__all__ = [
    "CONFIG",
    "CONNECTIONS",
    "HUB",
    "METRICS",
    "STORE",
    "create_app",
]

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", ServerConfig)
AUTH = web.AppKey("auth", AuthConfig)
STORE: web.AppKey[AnyStore] = web.AppKey("store")
HUB = web.AppKey("hub", Hub)
METRICS = web.AppKey("metrics", ServerMetrics)
CONNECTIONS: web.AppKey[weakref.WeakSet[Connection]] = web.AppKey("connections")
STARTED_AT = web.AppKey("started_at", float)
STOPPING = web.AppKey("stopping", list[bool])

MAX_TITLE_LENGTH = 200
MAX_BODY_LENGTH = 10_000
_OPTIONAL_NOTIFICATION_FIELDS = {"type": str, "link": str, "data": dict}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


# -- WebSocket ----------------------------------------------------------------------------------


async def websocket(request: web.Request) -> web.StreamResponse:
    """``GET /ws``: authenticate, upgrade, then hand the socket to a :class:`Connection`."""
    app = request.app
    config = app[CONFIG]
    metrics = app[METRICS]
    if app[STOPPING][0]:
        return _json({"error": "unavailable", "message": "server is shutting down"}, 503)
    try:
        principal = authenticate(
            request.headers.get("Cookie"), request.headers.get("Authorization"), app[AUTH]
        )
    except AuthError as exc:
        metrics.auth_failures[exc.reason] += 1
        return _json({"error": "unauthorized", "reason": exc.reason, "message": str(exc)}, 401)

    ws = web.WebSocketResponse(
        heartbeat=config.heartbeat,
        max_msg_size=config.max_message_size,
        autoping=False,  # pongs confirm delivery (Connection.on_pong); pings answered there
        # permessage-deflate only if asked for: it costs CPU per frame (reference_server/outbound.py)
        compress=config.compress,
        timeout=config.shutdown_timeout,
    )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:  # the peer left during the handshake
        return ws
    now = time.time()
    expires_at = principal.expires_at
    session = Session(
        principal.user_id,
        now=now,
        expires_at=None if expires_at is None else expires_at + config.clock_tolerance,
        max_content_length=config.max_content_length,
        max_batch=config.max_batch,
        rate_limit=config.rate_limit,
        rate_burst=config.rate_burst,
        hooks=metrics,
        gapless=app[STORE].gapless,
    )
    conn = Connection(
        ws,
        transport,
        session,
        hub=app[HUB],
        store=app[STORE],
        metrics=metrics,
        config=config,
    )
    app[CONNECTIONS].add(conn)
    metrics.connections_open += 1
    metrics.connections_total += 1
    try:
        await conn.start()
        await conn.run()
    finally:
        conn.stop()
        metrics.connections_open -= 1
        if not conn.close_sent and ws.close_code is not None:
            metrics.closed[ws.close_code] += 1
    return ws


# -- HTTP -------------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: ``{"status":"ok","server":"wsgauge-reference","connections":N,…}``.

    ``event_loop`` is the running loop's package (``asyncio`` or ``uvloop``), so a benchmark
    can check what it measured.
    """
    app = request.app
    stopping = app[STOPPING][0]
    hub = app[HUB]
    return _json(
        {
            "status": "stopping" if stopping else "ok",
            "server": "wsgauge-reference",
            "connections": app[METRICS].connections_open,
            "uptime_s": round(time.monotonic() - app[STARTED_AT], 3),
            "version": __version__,
            "db": redact_url(app[CONFIG].db),
            "store_pending": app[STORE].pending,
            "event_loop": type(asyncio.get_running_loop()).__module__.partition(".")[0],
            "pid": os.getpid(),
            "redis": None if hub.bus is None else hub.bus.connected,
        },
        503 if stopping else 200,
    )


async def metrics_view(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition."""
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


def _check_admin(request: web.Request) -> bool:
    token = request.app[CONFIG].admin_token
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def _bad_request(message: str) -> web.Response:
    return _json({"error": "bad_request", "message": message}, 400)


async def create_notification(request: web.Request) -> web.Response:
    """``POST /api/notifications`` ``{userId, title, body, [type, link, data]}`` → 201.

    Stores an unread notification for ``userId`` and pushes ``notification_update`` to all of
    the user's open connections (or on their next connect). Guarded by the admin bearer token.
    """
    app = request.app
    if not _check_admin(request):
        return _json({"error": "unauthorized", "message": "admin bearer token required"}, 401)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _bad_request(f"body is not valid JSON: {exc}")
    if type(body) is not dict:
        return _bad_request("body must be a JSON object")
    try:
        user_id = validate_user_id(body.get("userId"), "userId")
    except RemoteProtocolError as exc:
        return _bad_request(exc.message)
    title, text = body.get("title"), body.get("body")
    if type(title) is not str or not 0 < len(title) <= MAX_TITLE_LENGTH:
        return _bad_request(f"title must be a string of 1 to {MAX_TITLE_LENGTH} characters")
    if type(text) is not str or len(text) > MAX_BODY_LENGTH:
        return _bad_request(f"body must be a string of at most {MAX_BODY_LENGTH} characters")
    extra: dict[str, Any] = {}
    for name, kind in _OPTIONAL_NOTIFICATION_FIELDS.items():
        if name in body and body[name] is not None:
            value = body[name]
            if type(value) is not kind or (kind is str and len(value) > MAX_FIELD_LENGTH * 8):
                return _bad_request(f"{name} must be a {kind.__name__}")
            extra[name] = value

    loop = asyncio.get_running_loop()
    done: asyncio.Future[StoredNotification] = loop.create_future()
    store = app[STORE]
    hub = app[HUB]

    def committed(result: StoredNotification | None, exc: BaseException | None) -> None:
        if done.done():
            return
        if result is None:
            done.set_exception(exc or RuntimeError("the store returned no notification"))
            return
        hub.route(notification_push(result))
        done.set_result(result)

    store.create_notification(user_id, title, text, extra, committed)
    stored = await done
    return web.Response(body=encode(stored.notification), status=201, content_type="application/json")


# -- lifecycle --------------------------------------------------------------------------------


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the store (and, with ``--redis``, the bus) for the app's lifetime; flush and close
    them at cleanup."""
    config = app[CONFIG]
    metrics = app[METRICS]
    store: AnyStore
    if is_postgres_url(config.db):
        store = PgStore(config.db, batch_max=config.batch_max, on_commit=metrics.observe_commit)
        await store.open()
    else:
        store = Store(
            config.db,
            batch_max=config.batch_max,
            synchronous=config.synchronous,
            on_commit=metrics.observe_commit,
        )
        store.start()
    app[STORE] = store
    hub = Hub(asyncio.get_running_loop(), gap_wait=config.gap_wait)
    app[HUB] = hub
    bus: RedisBus | None = None
    if config.redis and config.redis != "none":
        bus = RedisBus(
            config.redis, prefix=config.redis_prefix, deliver=hub.deliver_remote, on_resync=hub.resync
        )
        try:
            await bus.open()
        except BaseException:
            await store.close()
            raise
        hub.bus = bus
    try:
        yield
    finally:
        if bus is not None:
            await bus.close()
        await store.close()


async def _loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    """Measure event-loop lag every 0.25 s in a background task."""
    metrics = app[METRICS]

    async def monitor() -> None:
        interval = 0.25
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(interval)
            metrics.observe_loop_lag(max(0.0, time.perf_counter() - t0 - interval))

    task = asyncio.create_task(monitor())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _on_shutdown(app: web.Application) -> None:
    """Close every socket with 1001 Going Away."""
    app[STOPPING][0] = True
    open_connections = app[CONNECTIONS]
    conns = list(open_connections)
    for conn in conns:
        conn.shutdown()
    # Handlers end when peers answer the close. Give them most of the shutdown timeout, then
    # abort the rest ourselves, before aiohttp's runner would cancel handlers mid-flight.
    pending = [c.finished for c in conns if not c.finished.done()]
    if pending:
        await asyncio.wait(pending, timeout=app[CONFIG].shutdown_timeout * 0.8)
    for conn in conns:
        if not conn.finished.done():
            conn.transport.abort()
    log.info("closed %d connections with %d", len(conns), CLOSE_GOING_AWAY)


def _bus_stats(app: web.Application) -> tuple[int, int, bool] | None:
    bus = app[HUB].bus if HUB in app else None
    return None if bus is None else (bus.published, bus.received, bus.connected)


def create_app(config: ServerConfig) -> web.Application:
    """Build the reference server application.

    Args:
        config: Server settings; ``config.secrets`` must hold at least one secret.

    Raises:
        ValueError: No NextAuth secret configured.
    """
    app = web.Application(client_max_size=1024 * 1024)
    app[CONFIG] = config
    app[AUTH] = AuthConfig(secrets=config.secrets, clock_tolerance=config.clock_tolerance)
    app[CONNECTIONS] = weakref.WeakSet()
    app[STARTED_AT] = time.monotonic()
    app[STOPPING] = [False]
    app[METRICS] = ServerMetrics(
        buffer_sizes=lambda: [c.out.buffered() for c in app[CONNECTIONS]],
        pending_jobs=lambda: app[STORE].pending if STORE in app else 0,
        bus_stats=lambda: _bus_stats(app),
    )
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_loop_lag_ctx)
    app.on_shutdown.append(_on_shutdown)
    app.add_routes(
        [
            web.get("/ws", websocket),
            web.get("/healthz", healthz),
            web.get("/metrics", metrics_view),
            web.post("/api/notifications", create_notification),
        ]
    )
    return app
