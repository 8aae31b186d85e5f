"""A small GraphQL over WebSocket server (``graphql-transport-ws``): the target of the GraphQL example.

Run it with ``python examples/graphql/server.py --port 0``: it prints one line,
``graphql example server listening on ws://127.0.0.1:PORT/graphql``, once it accepts connections, and
stops on SIGTERM or SIGINT. It stands in for *your* product: nothing in it knows about wsgauge.

It speaks the protocol of https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md:

* the handshake must offer the ``graphql-transport-ws`` subprotocol, else the socket is closed at once
  with ``4406 Subprotocol not acceptable``;
* ``connection_init`` → ``connection_ack``; none within ``--init-timeout`` s → close ``4408``; a second
  one → close ``4429``;
* ``ping`` → ``pong`` (with the ping's payload); a ``pong`` is taken silently;
* ``subscribe`` before the ack → close ``4401 Unauthorized``; with an id already running → close ``4409``;
  a document that fails to parse or validate → ``error`` with the GraphQL errors; a query → one ``next``
  (after a seeded lognormal service time, ≈ 3 ms) then ``complete``; a ``ticks`` subscription → a
  ``next`` every ``intervalMs`` whose ``sentAt`` is its send time (Unix seconds), then ``complete``
  after ``count`` of them (if given);
* ``complete`` from the client stops its operation (no ``complete`` back);
* anything else (not JSON, not an object, an unknown or server-only ``type``, a binary frame) → close
  ``4400`` with the reason.

``GET /stats`` (HTTP, same port) answers what the server saw: ``{"operations": {root field: started},
"next": sent}``, to check a load test's counts against.

The schema and its executor are :mod:`examples.graphql.schema`. :class:`Session` is the protocol's state
without I/O; :func:`create_app` is the aiohttp shell that runs the operations it asks for.

``--misbehave`` (test only) makes every ``--misbehave-every``-th ``subscribe`` of a connection go wrong on
purpose: ``non_json`` sends a text frame that is not JSON first, ``binary`` a binary frame, ``unmatched`` a
``next`` for an id nobody subscribed, ``error`` sends an ``error`` for the operation instead of running it,
``close`` closes the socket (1011) instead of running it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

if __package__ in (None, ""):  # run as a script: make ``examples.*`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples._server_common import (
    MISBEHAVIOURS,
    SOCKETS,
    add_misbehave_arguments,
    common_config,
    connection_rng,
    example_app,
    lognormal_service_time,
    misbehave_due,
    misbehave_frames,
    run_server,
    send_json,
    serve,
    server_parser,
)
from examples.graphql.schema import (
    GraphQLError,
    Operation,
    parse_operation,
    resolve_query,
    tick,
    ticks_arguments,
)

__all__ = [
    "CLOSE_BAD_MESSAGE",
    "CLOSE_DUPLICATE_ID",
    "CLOSE_INIT_TIMEOUT",
    "CLOSE_SUBPROTOCOL",
    "CLOSE_TOO_MANY_INITS",
    "CLOSE_UNAUTHORIZED",
    "MISBEHAVIOURS",
    "SUBPROTOCOL",
    "Close",
    "Send",
    "ServerConfig",
    "Session",
    "Start",
    "Stop",
    "create_app",
    "main",
]

SUBPROTOCOL = "graphql-transport-ws"
CLOSE_BAD_MESSAGE = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_SUBPROTOCOL = 4406
CLOSE_INIT_TIMEOUT = 4408
CLOSE_DUPLICATE_ID = 4409
CLOSE_TOO_MANY_INITS = 4429

QUERY_MEDIAN_S = 0.003
"""Median service time of a query; lognormal spread (sigma 0.5), capped at ten times the median."""


@dataclass(frozen=True)
class Send:
    """Send this message (a JSON object) to the client."""

    message: dict[str, Any]


@dataclass(frozen=True)
class Close:
    """Close the socket with this code and reason; nothing after it is sent."""

    code: int
    reason: str


@dataclass(frozen=True)
class Start:
    """Run this operation under this id; call :meth:`Session.complete` when it ends by itself."""

    id: str
    operation: Operation


@dataclass(frozen=True)
class Stop:
    """The client completed this id: stop its operation, send nothing."""

    id: str


Action = Send | Close | Start | Stop


@dataclass
class Session:
    """The ``graphql-transport-ws`` state of one socket, with no I/O.

    Feed it each text frame with :meth:`receive`; it answers with the actions to take, in order.
    """

    initialised: bool = False
    acknowledged: bool = False
    closed: bool = False
    active: set[str] = field(default_factory=set)

    def _close(self, code: int, reason: str) -> list[Action]:
        self.closed = True
        return [Close(code, reason)]

    def receive(self, text: str) -> list[Action]:
        """Handle one text frame from the client.

        Returns:
            The actions to take; after a :class:`Close`, feed it nothing more.
        """
        if self.closed:
            return []
        try:
            message = json.loads(text)
        except ValueError:
            return self._close(CLOSE_BAD_MESSAGE, "Invalid message received: not JSON")
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "connection_init":
            if self.initialised:
                return self._close(CLOSE_TOO_MANY_INITS, "Too many initialisation requests")
            self.initialised = self.acknowledged = True
            return [Send({"type": "connection_ack"})]
        if kind == "ping":
            pong: dict[str, Any] = {"type": "pong"}
            if "payload" in message:
                pong["payload"] = message["payload"]
            return [Send(pong)]
        if kind == "pong":
            return []
        if kind == "subscribe":
            return self._subscribe(message)
        if kind == "complete":
            id = message.get("id")
            if not isinstance(id, str):
                return self._close(CLOSE_BAD_MESSAGE, 'Invalid message received: "complete" needs an id')
            if id in self.active:
                self.active.discard(id)
                return [Stop(id)]
            return []
        return self._close(CLOSE_BAD_MESSAGE, f"Invalid message received: type {kind!r}")

    def _subscribe(self, message: dict[str, Any]) -> list[Action]:
        if not self.acknowledged:
            return self._close(CLOSE_UNAUTHORIZED, "Unauthorized")
        id = message.get("id")
        if not isinstance(id, str) or not id:
            return self._close(CLOSE_BAD_MESSAGE, 'Invalid message received: "subscribe" needs a string id')
        if not isinstance(message.get("payload"), dict):
            return self._close(CLOSE_BAD_MESSAGE, 'Invalid message received: "subscribe" needs a payload')
        if id in self.active:
            return self._close(CLOSE_DUPLICATE_ID, f"Subscriber for {id} already exists")
        try:
            operation = parse_operation(message["payload"])
        except GraphQLError as exc:
            return [Send({"id": id, "type": "error", "payload": [exc.to_json()]})]
        self.active.add(id)
        return [Start(id, operation)]

    def complete(self, id: str) -> list[Action]:
        """An operation ended by itself: the ``complete`` to send (nothing if the client completed it)."""
        if self.closed or id not in self.active:
            return []
        self.active.discard(id)
        return [Send({"id": id, "type": "complete"})]

    def binary(self) -> list[Action]:
        """A binary frame arrived: not part of the protocol."""
        return [] if self.closed else self._close(CLOSE_BAD_MESSAGE, "Invalid message received: binary")


# -- the aiohttp shell ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """Limits and test switches, all with defaults."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_scale: float = 1.0
    seed: int = 1
    init_timeout: float = 3.0
    max_message_size: int = 1 << 20
    misbehave: frozenset[str] = frozenset()
    misbehave_every: int = 5


@dataclass
class Stats:
    """What the server saw, for ``GET /stats``: operations started per root field, ``next`` messages sent."""

    operations: dict[str, int] = field(default_factory=dict)
    next: int = 0


CONFIG = web.AppKey("config", ServerConfig)
STATS = web.AppKey("stats", Stats)


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    config: ServerConfig
    stats: Stats
    rng: random.Random
    session: Session = field(default_factory=Session)
    operations: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    subscribes: int = 0

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one JSON message; ``False`` if the socket was closed."""
        if not await send_json(self.ws, message):
            return False
        if message.get("type") == "next":
            self.stats.next += 1
        return True

    async def act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                await self.send(action.message)
            elif isinstance(action, Close):
                self.stop_all()
                await self.ws.close(code=action.code, message=action.reason.encode())
            elif isinstance(action, Start):
                for f in action.operation.fields:
                    self.stats.operations[f.name] = self.stats.operations.get(f.name, 0) + 1
                if await self.misbehave(action.id):
                    continue
                self.operations[action.id] = asyncio.create_task(self.run(action.id, action.operation))
            else:
                task = self.operations.pop(action.id, None)
                if task is not None:
                    task.cancel()

    async def run(self, id: str, operation: Operation) -> None:
        try:
            if operation.kind == "query":
                median = QUERY_MEDIAN_S * self.config.latency_scale
                await asyncio.sleep(lognormal_service_time(median, self.rng))
                await self.send({"id": id, "type": "next", "payload": resolve_query(operation, time.time())})
            else:
                await self.stream(id, operation)
        except GraphQLError as exc:
            self.session.active.discard(id)
            await self.send({"id": id, "type": "error", "payload": [exc.to_json()]})
        else:
            await self.act(self.session.complete(id))
        finally:
            self.operations.pop(id, None)

    async def stream(self, id: str, operation: Operation) -> None:
        f, symbol, interval, count = ticks_arguments(operation)
        seq = 0
        while count is None or seq < count:
            await asyncio.sleep(interval)
            seq += 1
            await self.send({"id": id, "type": "next", "payload": tick(f, symbol, seq, time.time())})

    async def misbehave(self, id: str) -> bool:
        """Test only: go wrong as configured on every n-th subscribe; ``True`` when that operation is dealt
        with (the socket closed, or an ``error`` sent instead of running it)."""
        config = self.config
        self.subscribes += 1
        if not misbehave_due(config.misbehave, config.misbehave_every, self.subscribes):
            return False
        if "close" in config.misbehave:
            self.stop_all()
        if await misbehave_frames(self.ws, config.misbehave):
            return True
        if "unmatched" in config.misbehave:
            await self.send({"id": f"nobody-{self.subscribes}", "type": "next", "payload": {"data": None}})
        if "error" in config.misbehave:
            self.session.active.discard(id)
            await self.send({"id": id, "type": "error", "payload": [{"message": "misbehaving on purpose"}]})
            return True
        return False

    def stop_all(self) -> None:
        for task in self.operations.values():
            task.cancel()
        self.operations.clear()


async def graphql_socket(request: web.Request) -> web.StreamResponse:
    """``GET /graphql``: one ``graphql-transport-ws`` socket."""
    config = request.app[CONFIG]
    ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), heartbeat=30.0, max_msg_size=config.max_message_size)
    await ws.prepare(request)
    if ws.ws_protocol != SUBPROTOCOL:
        await ws.close(code=CLOSE_SUBPROTOCOL, message=b"Subprotocol not acceptable")
        return ws
    request.app[SOCKETS].add(ws)
    conn = _Connection(ws, config, request.app[STATS], connection_rng(config.seed, ws))

    async def init_deadline() -> None:
        await asyncio.sleep(config.init_timeout)
        if not conn.session.initialised and not ws.closed:
            conn.session.closed = True
            await ws.close(code=CLOSE_INIT_TIMEOUT, message=b"Connection initialisation timeout")

    deadline = asyncio.create_task(init_deadline())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await conn.act(conn.session.receive(msg.data))
            elif msg.type == WSMsgType.BINARY:
                await conn.act(conn.session.binary())
    finally:
        deadline.cancel()
        conn.stop_all()
    return ws


async def stats(request: web.Request) -> web.Response:
    """``GET /stats``: what the server saw (to check a load test's counts against)."""
    s = request.app[STATS]
    return web.json_response({"operations": s.operations, "next": s.next})


def create_app(config: ServerConfig) -> web.Application:
    """The aiohttp application: ``graphql-transport-ws`` on ``/graphql``, what it saw on ``/stats``."""
    app = example_app([web.get("/graphql", graphql_socket), web.get("/stats", stats)])
    app[CONFIG] = config
    app[STATS] = Stats()
    return app


# -- command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = server_parser(
        "python examples/graphql/server.py",
        "GraphQL over WebSocket (graphql-transport-ws) example server: quote, echo, ticks.",
        port=4000,
        latency_help="multiply every query's service time (0: none)",
        seed_help="seed of the service times",
    )
    p.add_argument("--init-timeout", type=float, default=3.0, help="seconds allowed before connection_init")
    add_misbehave_arguments(p, unit="subscribe")
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServerConfig:
    common = common_config(args, parser)
    if args.init_timeout <= 0:
        parser.error("--init-timeout must be > 0")
    return ServerConfig(**common, init_timeout=args.init_timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    config = config_from_args(parser.parse_args(argv), parser)
    ready = "graphql example server listening on ws://{host}:{port}/graphql"
    return run_server("graphql example server", serve(create_app(config), config.host, config.port, ready))


if __name__ == "__main__":
    sys.exit(main())
