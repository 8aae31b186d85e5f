"""A small JSON-RPC 2.0 over WebSocket server: the target of the JSON-RPC worked example.

Run it with ``python examples/jsonrpc/server.py --port 0``: it prints one line,
``jsonrpc example server listening on ws://127.0.0.1:PORT/``, once it accepts connections, and
stops on SIGTERM or SIGINT. It stands in for *your* product: nothing in it knows about wsgauge.

Methods (each answered after a seeded, lognormal service time, so replies come out of order):

* ``echo(*params)`` → the params as given (≈ 0.2 ms);
* ``sum([numbers])`` → their sum; anything but a list of numbers is ``-32602 Invalid params`` (≈ 1 ms);
* ``get_quote({"symbol": S})`` → ``{"symbol", "price", "ts"}``; an unknown symbol is the application
  error ``-32001 Unknown symbol`` (≈ 5 ms);
* ``subscribe({"channel": "ticker", "symbol": S, "interval_ms": N})`` → a subscription id; the server then
  sends the notification ``{"jsonrpc": "2.0", "method": "ticker", "params": {"subscription", "symbol",
  "price", "ts"}}`` every ``N`` ms, ``ts`` being its send time in Unix seconds (a float);
* ``unsubscribe([id])`` → ``true`` (``false`` for an id it does not know).

``GET /stats`` (HTTP, same port) answers what the server saw: ``{"calls": {method: received}, "notifications":
sent}``, to check a load test's counts against.

Everything else follows the specification (https://www.jsonrpc.org/specification): ``-32700 Parse
error`` (id ``null``), ``-32600 Invalid Request``, ``-32601 Method not found``, batches (an array of
calls answered by one array, notifications unanswered, an empty array an ``Invalid Request``).

``--misbehave`` (test only) makes every ``--misbehave-every``-th call of a connection go wrong on
purpose, to show how the load test counts a foreign server's bad input: ``non_json`` sends a text frame
that is not JSON before the reply, ``binary`` a binary frame, ``unmatched`` a reply whose id matches no
call, ``error`` answers ``-32603 Internal error`` instead of the result, ``close`` closes the socket
instead of replying.

The protocol core (:func:`parse_message`, :func:`execute`) does no I/O; :func:`create_app` is the
aiohttp shell that moves text between the socket and it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
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

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MISBEHAVIOURS",
    "PARSE_ERROR",
    "UNKNOWN_SYMBOL",
    "Call",
    "RpcError",
    "ServerConfig",
    "create_app",
    "error_response",
    "execute",
    "main",
    "parse_message",
    "service_time",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNKNOWN_SYMBOL = -32001
"""An application error (the spec leaves -32000 to -32099 to the server)."""

PRICES = {"ACME": 101.25, "GLOBEX": 47.5, "INITECH": 12.75, "UMBRELLA": 230.0}
"""The symbols ``get_quote`` and the ticker know, and their opening prices."""

SERVICE_MEDIAN_S = {"echo": 0.0002, "sum": 0.001, "get_quote": 0.005}
"""Median service time per method; the spread is lognormal (sigma 0.5), capped at ten times the median."""

Id = str | int | float | None


class RpcError(Exception):
    """A JSON-RPC error object: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True)
class Call:
    """One well-formed call of a request; ``is_notification`` when it had no ``id`` (no reply due)."""

    method: str
    params: list[Any] | dict[str, Any] | None
    id: Id = None
    is_notification: bool = False


def error_response(error: RpcError, id: Id) -> dict[str, Any]:
    """The response object for a failed call (``id`` is ``None`` when the request's id is unknown)."""
    return {"jsonrpc": "2.0", "error": error.to_json(), "id": id}


def _call(item: Any) -> Call | dict[str, Any]:
    """One array element or object → a :class:`Call`, or the error response it earns."""
    if not isinstance(item, dict):
        return error_response(RpcError(INVALID_REQUEST, "Invalid Request", "not an object"), None)
    id = item.get("id")
    if isinstance(id, bool) or not (id is None or isinstance(id, str | int | float)):
        return error_response(
            RpcError(INVALID_REQUEST, "Invalid Request", "id: string, number or null"), None
        )
    if item.get("jsonrpc") != "2.0":
        return error_response(RpcError(INVALID_REQUEST, "Invalid Request", 'jsonrpc must be "2.0"'), id)
    method = item.get("method")
    if not isinstance(method, str):
        return error_response(RpcError(INVALID_REQUEST, "Invalid Request", "method must be a string"), id)
    params = item.get("params")
    if "params" in item and not isinstance(params, list | dict):
        return error_response(RpcError(INVALID_REQUEST, "Invalid Request", "params: array or object"), id)
    return Call(method, params, id, is_notification="id" not in item)


def parse_message(text: str) -> tuple[list[Call | dict[str, Any]], bool]:
    """Parse one text frame.

    Args:
        text: The frame as received.

    Returns:
        ``(items, batch)``: each item is a :class:`Call` to execute or an error response ready to send,
        in request order; ``batch`` says whether the answers go back as one array.
    """
    try:
        message = json.loads(text)
    except ValueError as exc:
        return [error_response(RpcError(PARSE_ERROR, "Parse error", str(exc)), None)], False
    if isinstance(message, list):
        if not message:
            return [error_response(RpcError(INVALID_REQUEST, "Invalid Request", "empty batch"), None)], False
        return [_call(item) for item in message], True
    return [_call(message)], False


def _number_list(params: Any) -> list[float]:
    if isinstance(params, list) and len(params) == 1 and isinstance(params[0], list):
        params = params[0]
    if not isinstance(params, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in params
    ):
        raise RpcError(INVALID_PARAMS, "Invalid params", "sum takes a list of numbers")
    return params


def _symbol(params: Any) -> str:
    symbol = params.get("symbol") if isinstance(params, dict) else None
    if not isinstance(symbol, str):
        raise RpcError(INVALID_PARAMS, "Invalid params", 'expected {"symbol": string}')
    if symbol not in PRICES:
        raise RpcError(UNKNOWN_SYMBOL, "Unknown symbol", symbol)
    return symbol


def price(symbol: str, now: float) -> float:
    """A deterministic wandering price for ``symbol`` at Unix time ``now``."""
    return round(PRICES[symbol] * (1 + 0.02 * math.sin(now / 7 + len(symbol))), 4)


def execute(call: Call, now: float) -> Any:
    """The result of a call of ``echo``, ``sum`` or ``get_quote``.

    ``subscribe``/``unsubscribe`` touch the connection and are executed by the shell.

    Raises:
        RpcError: The error object to answer with.
    """
    if call.method == "echo":
        return call.params
    if call.method == "sum":
        return sum(_number_list(call.params))
    if call.method == "get_quote":
        symbol = _symbol(call.params)
        return {"symbol": symbol, "price": price(symbol, now), "ts": now}
    raise RpcError(METHOD_NOT_FOUND, "Method not found", call.method)


def ticker_params(params: Any) -> tuple[str, float]:
    """``subscribe``'s params → (symbol, interval in seconds).

    Raises:
        RpcError: ``Invalid params`` or ``Unknown symbol``.
    """
    if not isinstance(params, dict) or params.get("channel") != "ticker":
        raise RpcError(INVALID_PARAMS, "Invalid params", 'expected {"channel": "ticker", ...}')
    symbol = _symbol(params)
    interval_ms = params.get("interval_ms", 500)
    if not isinstance(interval_ms, int | float) or isinstance(interval_ms, bool) or interval_ms < 10:
        raise RpcError(INVALID_PARAMS, "Invalid params", "interval_ms: a number >= 10")
    return symbol, interval_ms / 1000


def service_time(method: str, rng: random.Random, scale: float) -> float:
    """Seconds the server "works" on a call of ``method`` (0 for unknown methods or ``scale`` 0)."""
    return lognormal_service_time(SERVICE_MEDIAN_S.get(method, 0.0) * scale, rng)


# -- the aiohttp shell ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """Limits and test switches, all with defaults."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_scale: float = 1.0
    seed: int = 1
    max_message_size: int = 1 << 20
    max_subscriptions: int = 16
    misbehave: frozenset[str] = frozenset()
    misbehave_every: int = 5


@dataclass
class Stats:
    """What the server saw, for ``GET /stats``: calls received per method, notifications sent."""

    calls: dict[str, int] = field(default_factory=dict)
    notifications: int = 0


CONFIG = web.AppKey("config", ServerConfig)
STATS = web.AppKey("stats", Stats)


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    config: ServerConfig
    stats: Stats
    rng: random.Random
    calls: int = 0
    tickers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def send(self, data: Any) -> bool:
        """Send one JSON message; ``False`` if the socket was closed."""
        return await send_json(self.ws, data)

    async def answer(self, call: Call) -> dict[str, Any] | None:
        """Execute one call after its service time; ``None`` for a notification."""
        await asyncio.sleep(service_time(call.method, self.rng, self.config.latency_scale))
        try:
            if call.method == "subscribe":
                result: Any = self.subscribe(call.params)
            elif call.method == "unsubscribe":
                result = self.unsubscribe(call.params)
            else:
                result = execute(call, time.time())
        except RpcError as exc:
            response = error_response(exc, call.id)
        else:
            response = {"jsonrpc": "2.0", "result": result, "id": call.id}
        return None if call.is_notification else response

    def subscribe(self, params: Any) -> str:
        symbol, interval = ticker_params(params)
        if len(self.tickers) >= self.config.max_subscriptions:
            raise RpcError(-32002, "Too many subscriptions", self.config.max_subscriptions)
        sub_id = f"sub-{self.rng.getrandbits(48):012x}"
        self.tickers[sub_id] = asyncio.create_task(self.tick(sub_id, symbol, interval))
        return sub_id

    def unsubscribe(self, params: Any) -> bool:
        if not (isinstance(params, list) and len(params) == 1 and isinstance(params[0], str)):
            raise RpcError(INVALID_PARAMS, "Invalid params", "expected [subscription id]")
        task = self.tickers.pop(params[0], None)
        if task is not None:
            task.cancel()
        return task is not None

    async def tick(self, sub_id: str, symbol: str, interval: float) -> None:
        while not self.ws.closed:
            await asyncio.sleep(interval)
            now = time.time()
            params = {"subscription": sub_id, "symbol": symbol, "price": price(symbol, now), "ts": now}
            if await self.send({"jsonrpc": "2.0", "method": "ticker", "params": params}):
                self.stats.notifications += 1

    async def misbehave(self, items: list[Call | dict[str, Any]], batch: bool) -> bool:
        """Test only: go wrong as configured on every n-th call; ``True`` when that call is dealt with
        (the socket closed, or the call answered with an error)."""
        config = self.config
        self.calls += 1
        if not misbehave_due(config.misbehave, config.misbehave_every, self.calls):
            return False
        if await misbehave_frames(self.ws, config.misbehave):
            return True
        if "unmatched" in config.misbehave:
            await self.send({"jsonrpc": "2.0", "result": None, "id": f"nobody-{self.calls}"})
        if "error" in config.misbehave:
            error = RpcError(INTERNAL_ERROR, "Internal error", "misbehaving on purpose")
            replies = [
                error_response(error, c.id) for c in items if isinstance(c, Call) and not c.is_notification
            ]
            if replies:
                await self.send(replies if batch else replies[0])
            return True
        return False

    async def handle(self, text: str) -> None:
        items, batch = parse_message(text)
        for item in items:
            if isinstance(item, Call):
                self.stats.calls[item.method] = self.stats.calls.get(item.method, 0) + 1
        if await self.misbehave(items, batch):
            return
        responses = await asyncio.gather(
            *(self.answer(item) if isinstance(item, Call) else _ready(item) for item in items)
        )
        answers = [r for r in responses if r is not None]
        if answers:
            await self.send(answers if batch else answers[0])

    def close(self) -> None:
        for task in [*self.tickers.values(), *self.tasks]:
            task.cancel()


async def _ready(response: dict[str, Any]) -> dict[str, Any]:
    return response


async def rpc_socket(request: web.Request) -> web.StreamResponse:
    """``GET /``: one JSON-RPC connection; every text frame is handled concurrently with the others."""
    config = request.app[CONFIG]
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=config.max_message_size)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    conn = _Connection(ws, config, request.app[STATS], connection_rng(config.seed, ws))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                task = asyncio.create_task(conn.handle(msg.data))
                conn.tasks.add(task)
                task.add_done_callback(conn.tasks.discard)
            elif msg.type == WSMsgType.BINARY:
                await conn.send(error_response(RpcError(INVALID_REQUEST, "Invalid Request", "binary"), None))
    finally:
        conn.close()
    return ws


async def stats(request: web.Request) -> web.Response:
    """``GET /stats``: what the server saw (to check a load test's counts against)."""
    s = request.app[STATS]
    return web.json_response({"calls": s.calls, "notifications": s.notifications})


def create_app(config: ServerConfig) -> web.Application:
    """The aiohttp application serving JSON-RPC on ``/`` (and what it saw on ``GET /stats``)."""
    app = example_app([web.get("/", rpc_socket), web.get("/stats", stats)])
    app[CONFIG] = config
    app[STATS] = Stats()
    return app


# -- command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = server_parser(
        "python examples/jsonrpc/server.py",
        "JSON-RPC 2.0 over WebSocket example server: echo, sum, get_quote, ticker notifications.",
        port=8765,
        latency_help="multiply every service time (0: none)",
        seed_help="seed of the service times and subscription ids",
    )
    add_misbehave_arguments(p, unit="call")
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServerConfig:
    return ServerConfig(**common_config(args, parser))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    config = config_from_args(parser.parse_args(argv), parser)
    ready = "jsonrpc example server listening on ws://{host}:{port}/"
    return run_server("jsonrpc example server", serve(create_app(config), config.host, config.port, ready))


if __name__ == "__main__":
    sys.exit(main())
