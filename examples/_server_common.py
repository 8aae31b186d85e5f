"""What both example servers do the same way, whatever their protocol: the command line, the socket
registry closed on shutdown, the serve-until-signal loop, seeded lognormal service times and the
test-only ``--misbehave`` frames.

Each server keeps its protocol, its ``ServerConfig`` and its ``/stats`` to itself; this module knows
nothing of JSON-RPC, GraphQL or wsgauge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import weakref
from collections.abc import Coroutine, Iterable
from typing import Any

from aiohttp import WSCloseCode, web

__all__ = [
    "MISBEHAVIOURS",
    "SOCKETS",
    "add_misbehave_arguments",
    "common_config",
    "connection_rng",
    "example_app",
    "lognormal_service_time",
    "misbehave_due",
    "misbehave_frames",
    "run_server",
    "send_json",
    "serve",
    "server_parser",
]

MISBEHAVIOURS = ("non_json", "binary", "unmatched", "error", "close")

SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")


def lognormal_service_time(median: float, rng: random.Random) -> float:
    """Seconds of "work": lognormal around ``median`` (sigma 0.5), capped at ten times it; 0 for 0."""
    return min(median * rng.lognormvariate(0.0, 0.5), 10 * median) if median else 0.0


def connection_rng(seed: int, ws: web.WebSocketResponse) -> random.Random:
    """One connection's generator: seeded by the server's seed, distinct per socket."""
    return random.Random(f"{seed}:{id(ws)}")


async def send_json(ws: web.WebSocketResponse, message: Any) -> bool:
    """Send one JSON message; ``False`` if the socket was closed."""
    if ws.closed:
        return False
    try:
        await ws.send_str(json.dumps(message))
    except ConnectionError:
        return False
    return True


def misbehave_due(misbehave: frozenset[str], every: int, count: int) -> bool:
    """Test only: whether the ``count``-th call of a connection is one to go wrong on."""
    return bool(misbehave) and count % every == 0


async def misbehave_frames(ws: web.WebSocketResponse, misbehave: frozenset[str]) -> bool:
    """Test only: the protocol-blind part of going wrong; ``True`` when it closed the socket (1011).

    Otherwise it sends the bad frames asked for (``non_json`` first, then ``binary``) and leaves
    ``unmatched`` and ``error`` to the server, which knows what those look like in its protocol.
    """
    if "close" in misbehave:
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"misbehaving on purpose")
        return True
    if "non_json" in misbehave:
        await ws.send_str("<html>502 Bad Gateway</html>")
    if "binary" in misbehave:
        await ws.send_bytes(b"\x00\x01 not text")
    return False


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def example_app(routes: Iterable[web.AbstractRouteDef]) -> web.Application:
    """An application serving ``routes`` that keeps ``app[SOCKETS]`` (each socket handler adds its socket)
    and closes them all (1001) on shutdown."""
    app = web.Application()
    app[SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(_close_sockets)
    app.add_routes(routes)
    return app


# -- command line --------------------------------------------------------------------------------


def server_parser(
    prog: str, description: str, *, port: int, latency_help: str, seed_help: str
) -> argparse.ArgumentParser:
    """A parser (defaults shown in ``--help``) with --host, --port, --latency-scale and --seed."""
    p = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind")
    p.add_argument("--port", type=int, default=port, help="TCP port (0: pick a free one)")
    p.add_argument("--latency-scale", type=float, default=1.0, help=latency_help)
    p.add_argument("--seed", type=int, default=1, help=seed_help)
    return p


def add_misbehave_arguments(p: argparse.ArgumentParser, *, unit: str) -> None:
    """``--misbehave`` and ``--misbehave-every`` (test only); ``unit``: what every n-th one counts."""
    p.add_argument(
        "--misbehave",
        default="",
        help=f"TEST ONLY: comma list of {','.join(MISBEHAVIOURS)}: go wrong on every n-th {unit}",
    )
    p.add_argument("--misbehave-every", type=int, default=5, help="TEST ONLY: n of --misbehave")


def common_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The checked values of the common arguments, as ``ServerConfig`` keywords (bad ones: exit 2)."""
    misbehave = frozenset(filter(None, args.misbehave.split(",")))
    if unknown := misbehave - set(MISBEHAVIOURS):
        parser.error(
            f"--misbehave: unknown {', '.join(sorted(unknown))} (choose from {', '.join(MISBEHAVIOURS)})"
        )
    if args.misbehave_every < 1:
        parser.error("--misbehave-every must be >= 1")
    if args.latency_scale < 0:
        parser.error("--latency-scale must be >= 0")
    return {
        "host": args.host,
        "port": args.port,
        "latency_scale": args.latency_scale,
        "seed": args.seed,
        "misbehave": misbehave,
        "misbehave_every": args.misbehave_every,
    }


async def serve(app: web.Application, host: str, port: int, ready: str) -> None:
    """Run ``app`` until SIGTERM or SIGINT; once it accepts, print ``ready`` first, its ``{host}`` and
    ``{port}`` filled in (the port bound, for ``--port 0``)."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(ready.format(host=host, port=bound), flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run_server(name: str, server: Coroutine[Any, Any, None]) -> int:
    """Run ``server`` to its end: exit code 0, or 1 with ``NAME: error`` when it cannot bind."""
    try:
        asyncio.run(server)
    except OSError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    return 0
