"""``python -m reference_server`` (also the ``wsgauge-server`` console script).

Prints exactly one line, ``wsgauge reference server listening on ws://HOST:PORT/ws``, to stdout
once it accepts connections. SIGTERM or SIGINT: stop accepting, close every socket with 1001,
flush the store, exit 0. With ``--workers N`` (N > 1) this process is the supervisor of N
workers on one port (:mod:`reference_server.supervisor`); bad combinations of ``--workers``,
``--db`` and ``--redis`` exit 2 with a message naming the fix.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import sys
from collections.abc import Sequence

import psycopg
from aiohttp import web
from redis.exceptions import RedisError

from .app import create_app
from .config import EVENT_LOOPS, ServerConfig, secrets_from_env
from .supervisor import supervise
from .test_faults import TailDelay

__all__ = ["build_parser", "config_from_args", "main", "serve"]

log = logging.getLogger("reference_server")

_DEFAULTS = ServerConfig()


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface; ``--help`` documents every option."""
    p = argparse.ArgumentParser(
        prog="python -m reference_server",
        description=(
            "wsgauge reference server: the seed WebSocket protocol on ws://HOST:PORT/ws, "
            "authenticated with NextAuth session cookies (v4 and v5) and stored in SQLite, or, "
            "scaled out over several processes and servers, in PostgreSQL with Redis between them. "
            "Also serves GET /healthz, GET /metrics (Prometheus) and POST /api/notifications."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a("--host", default=_DEFAULTS.host, help="interface to bind")
    a("--port", type=int, default=_DEFAULTS.port, help="TCP port (0: pick a free one)")
    a("--db", default=os.environ.get("WSGAUGE_DB", _DEFAULTS.db),
      help="SQLite database file (WAL mode), ':memory:' for a volatile in-RAM store, or "
           "postgresql://USER@HOST/DBNAME, shared by several processes and servers (needs "
           "--redis) [env WSGAUGE_DB]")  # fmt: skip
    a("--workers", type=int, default=_DEFAULTS.workers,
      help="server processes sharing the port (SO_REUSEPORT) under a supervisor that restarts "
           "a dead one; more than 1 needs a PostgreSQL --db and --redis")  # fmt: skip
    a("--redis", default=os.environ.get("WSGAUGE_REDIS"),
      help="redis://HOST:PORT: carries pushes between processes and servers of one deployment "
           "(needed with a PostgreSQL --db; 'none': this process is the database's only server) "
           "[env WSGAUGE_REDIS]")  # fmt: skip
    a("--redis-prefix", default=_DEFAULTS.redis_prefix,
      help="prefix of the Redis channels: servers with the same --db and prefix form one "
           "deployment")  # fmt: skip
    a("--gap-wait", type=float, default=_DEFAULTS.gap_wait,
      help="seconds a connection waits for a missing inbox item (racing through Redis from "
           "another process) before re-reading the store")  # fmt: skip
    a("--worker", action="store_true", help=argparse.SUPPRESS)  # set by the --workers supervisor
    a("--secret", action="append", default=None, metavar="SECRET",
      help="NextAuth secret for session tokens; repeat to accept old secrets during rotation "
           "(first = current). Default: env AUTH_SECRET, AUTH_SECRET_1..9, NEXTAUTH_SECRET; "
           "with none, a random secret is generated for this run and printed to stderr")  # fmt: skip
    a("--admin-token", default=os.environ.get("WSGAUGE_ADMIN_TOKEN"),
      help="bearer token required by POST /api/notifications; unset disables that route "
           "[env WSGAUGE_ADMIN_TOKEN]")  # fmt: skip
    a("--max-message-size", type=int, default=_DEFAULTS.max_message_size,
      help="largest inbound WebSocket message in bytes; larger ones close with 1009")  # fmt: skip
    a("--max-header-size", type=int, default=_DEFAULTS.max_header_size,
      help="largest HTTP header line in bytes (chunked session cookies are large)")  # fmt: skip
    a("--max-content-length", type=int, default=_DEFAULTS.max_content_length,
      help="longest chat_message content in characters (content_too_long error)")  # fmt: skip
    a("--max-batch", type=int, default=_DEFAULTS.max_batch,
      help="most inner messages in one batch frame (batch_too_large error)")  # fmt: skip
    a("--rate-limit", type=float, default=_DEFAULTS.rate_limit,
      help="inbound messages per second per connection, batch items counted singly "
           "(rate_limited error); 0 disables")  # fmt: skip
    a("--rate-burst", type=float, default=None,
      help="rate-limit bucket size (default: max(rate-limit, max-batch))")  # fmt: skip
    a("--outbound-limit", type=int, default=_DEFAULTS.outbound_limit,
      help="bytes buffered for one client before it is closed as a slow consumer (4002)")  # fmt: skip
    a("--max-inflight", type=int, default=_DEFAULTS.max_inflight,
      help="requests per connection awaiting the store before reading from it pauses")  # fmt: skip
    a("--heartbeat", type=float, default=_DEFAULTS.heartbeat,
      help="seconds between WebSocket pings; a peer silent for 1.5x this is dropped")  # fmt: skip
    a("--confirm-interval", type=float, default=_DEFAULTS.confirm_interval,
      help="seconds between delivery-confirmation pings on a connection with unconfirmed "
           "frames (a pong advances the user's delivery cursor)")  # fmt: skip
    a("--clock-tolerance", type=float, default=_DEFAULTS.clock_tolerance,
      help="seconds of clock skew allowed on token exp/nbf")  # fmt: skip
    a("--batch-max", type=int, default=_DEFAULTS.batch_max,
      help="most store jobs in one group commit")  # fmt: skip
    a("--sync", dest="synchronous", choices=("NORMAL", "FULL"), type=str.upper,
      default=_DEFAULTS.synchronous,
      help="SQLite synchronous mode: NORMAL survives a process crash, FULL also power loss "
           "(an fsync per group commit)")  # fmt: skip
    a("--shutdown-timeout", type=float, default=_DEFAULTS.shutdown_timeout,
      help="seconds to wait for clients to answer the close handshake")  # fmt: skip
    a("--compress", action="store_true",
      help="accept permessage-deflate (RFC 7692) from clients that offer it: fewer bytes on "
           "the wire for more server CPU per frame; off, every client gets uncompressed "
           "frames")  # fmt: skip
    a("--loop", choices=EVENT_LOOPS, default=_DEFAULTS.loop,
      help="event loop: the standard library's asyncio, or uvloop (libuv; less CPU per "
           "message; needs the optional uvloop package: pip install 'wsgauge[fast]')")  # fmt: skip
    a("--test-delay-ms", type=float, default=0.0, metavar="FLOAT",
      help="TEST ONLY: delay the handling (and so the ack/push) of every inbound frame by "
           "this many milliseconds, per connection and in order, without blocking other "
           "connections; used by load-test and gate benchmarks to simulate a slower build")  # fmt: skip
    a("--test-tail-delay", type=_tail_delay, metavar="SHARE:MS",
      default=os.environ.get("WSGAUGE_TEST_TAIL_DELAY") or None,
      help="TEST ONLY: delay a random SHARE of inbound frames by MS milliseconds each (e.g. "
           "0.03:2.5), per connection and in order: a build with a slower tail and the same "
           "median, for p99 gate benchmarks [env WSGAUGE_TEST_TAIL_DELAY]")  # fmt: skip
    a("--log-level", default=os.environ.get("WSGAUGE_LOG_LEVEL", "WARNING"),
      help="logging level (stderr) [env WSGAUGE_LOG_LEVEL]")  # fmt: skip
    return p


def _tail_delay(text: str) -> TailDelay:
    try:
        return TailDelay.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Turn parsed arguments into a :class:`ServerConfig`."""
    secrets = tuple(args.secret) if args.secret else secrets_from_env()
    return ServerConfig(
        host=args.host,
        port=args.port,
        db=args.db,
        secrets=secrets,
        admin_token=args.admin_token or None,
        max_message_size=args.max_message_size,
        max_content_length=args.max_content_length,
        max_batch=args.max_batch,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        outbound_limit=args.outbound_limit,
        max_inflight=args.max_inflight,
        heartbeat=args.heartbeat,
        confirm_interval=args.confirm_interval,
        clock_tolerance=args.clock_tolerance,
        batch_max=args.batch_max,
        synchronous=args.synchronous,
        shutdown_timeout=args.shutdown_timeout,
        compress=args.compress,
        loop=args.loop,
        max_header_size=args.max_header_size,
        test_delay_ms=args.test_delay_ms,
        workers=args.workers,
        redis=args.redis or None,
        redis_prefix=args.redis_prefix,
        gap_wait=args.gap_wait,
        test_tail_delay=args.test_tail_delay,
    )


async def serve(config: ServerConfig, *, ready_line: bool = True, reuse_port: bool = False) -> None:
    """Run the server until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    app = create_app(config)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=config.shutdown_timeout,
        # Chunked NextAuth cookies (``name.0``, ``name.1``, …) exceed aiohttp's 8 KiB default.
        max_field_size=config.max_header_size,
        max_line_size=config.max_header_size,
    )
    await runner.setup()
    site = web.TCPSite(
        runner, config.host, config.port, backlog=4096, reuse_address=True, reuse_port=reuse_port or None
    )
    await site.start()
    port = config.port
    for address in runner.addresses:
        if isinstance(address, tuple):
            port = address[1]
            break
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready_line:
        sys.stdout.write(f"wsgauge reference server listening on ws://{config.host}:{port}/ws\n")
        sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m reference_server`` and ``wsgauge-server``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    loop_factory = None
    if config.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            parser.error("--loop uvloop needs the uvloop package (pip install 'wsgauge[fast]')")
        loop_factory = uvloop.new_event_loop
    if not config.secrets:
        # Development default (the README's one-command start): a random secret for this run,
        # shown on stderr so that a developer can mint cookies; nobody else can.
        secret = secrets.token_urlsafe(32)
        config = dataclasses.replace(config, secrets=(secret,))
        print(
            "wsgauge reference server: no NextAuth secret configured (--secret, AUTH_SECRET or "
            f"NEXTAUTH_SECRET); using a random one for this run: {secret}",
            file=sys.stderr,
            flush=True,
        )
    if config.workers > 1 and not args.worker:
        return supervise(config, sys.argv[1:] if argv is None else list(argv))
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(config, reuse_port=args.worker))
    except (OSError, psycopg.Error) as exc:
        print(f"wsgauge reference server: {exc}", file=sys.stderr)
        return 1
    except RedisError as exc:
        print(f"wsgauge reference server: Redis at {config.redis}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
