"""Server configuration: one frozen dataclass, filled from the command line and the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .test_faults import TailDelay

__all__ = ["EVENT_LOOPS", "ServerConfig", "secrets_from_env"]

#: The event loops the server can run on.
EVENT_LOOPS = ("asyncio", "uvloop")


def secrets_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """NextAuth secrets from the environment, newest first.

    Reads ``AUTH_SECRET``, then ``AUTH_SECRET_1``, ``AUTH_SECRET_2``, … (Auth.js rotation), then
    ``NEXTAUTH_SECRET`` (next-auth v4). Empty values are skipped; duplicates dropped.
    """
    env = os.environ if environ is None else environ
    found: list[str] = []
    names = ["AUTH_SECRET", *(f"AUTH_SECRET_{i}" for i in range(1, 10)), "NEXTAUTH_SECRET"]
    for name in names:
        value = env.get(name)
        if value and value not in found:
            found.append(value)
    return tuple(found)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything the reference server can be told.

    Attributes:
        host: Interface to bind.
        port: TCP port (``0`` picks a free one).
        db: SQLite file, or ``":memory:"``.
        secrets: NextAuth secrets accepted for session tokens (first = current).
        admin_token: Bearer token guarding ``POST /api/notifications``; ``None`` disables it.
        max_message_size: Largest inbound WebSocket message in bytes; bigger closes with 1009.
        max_header_size: Longest HTTP header in bytes (chunked NextAuth cookies).
        max_content_length: Longest ``chat_message`` content in characters.
        max_batch: Most inner messages in one ``batch``.
        rate_limit: Inbound messages per second per connection (``0``: unlimited).
        rate_burst: Rate-limit bucket size (``None``: ``max(rate_limit, max_batch)``).
        outbound_limit: Bytes buffered for one client before it counts as a slow consumer
            and is closed with 4002.
        max_inflight: Requests per connection awaiting the store before reading pauses.
        heartbeat: Seconds between WebSocket pings (dead peers are dropped after 1.5x).
        confirm_interval: Seconds between delivery-confirmation pings on a busy connection.
        clock_tolerance: Seconds of clock skew allowed on token ``exp``/``nbf``.
        backlog_page: Offline-backlog rows read per store round trip.
        batch_max: Most store jobs per group commit.
        synchronous: SQLite ``synchronous`` pragma (``NORMAL``: crash-safe; ``FULL``:
            power-loss-safe).
        shutdown_timeout: Seconds to wait for connections to close on shutdown.
        compress: Accept permessage-deflate (RFC 7692) when a client offers it; frames to
            such clients go through aiohttp's compressing writer.
        loop: The event loop: ``"asyncio"`` (the standard library's) or ``"uvloop"`` (libuv;
            the optional ``uvloop`` package).
        workers: Server processes on one port (SO_REUSEPORT); more than one needs a
            PostgreSQL ``db`` and ``redis``.
        redis: ``redis://`` URL of the bus that carries pushes between processes (and
            servers), or ``None``: one process, pushes stay local.
        redis_prefix: Prefix of the bus's channels: one deployment per prefix.
        gap_wait: Seconds a connection waits for a missing inbox item (a push racing through
            Redis) before it re-reads the store.
        test_delay_ms: TEST ONLY. Delay every inbound frame's handling by this many
            milliseconds (per connection, in order) to simulate a slower server.
        test_tail_delay: TEST ONLY. Delay a random share of inbound frames (per connection, in
            order) to simulate a build whose tail is slower but whose median is not.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    db: str = "wsgauge.db"
    secrets: tuple[str, ...] = field(default_factory=tuple)
    admin_token: str | None = None
    max_message_size: int = 64 * 1024
    max_header_size: int = 64 * 1024
    max_content_length: int = 10_000
    max_batch: int = 100
    rate_limit: float = 1000.0
    rate_burst: float | None = None
    outbound_limit: int = 4 * 1024 * 1024
    max_inflight: int = 1000
    heartbeat: float = 30.0
    confirm_interval: float = 0.1
    clock_tolerance: float = 15.0
    backlog_page: int = 1000
    batch_max: int = 2000
    synchronous: str = "NORMAL"
    shutdown_timeout: float = 5.0
    compress: bool = False
    loop: str = "asyncio"
    workers: int = 1
    redis: str | None = None
    redis_prefix: str = "wsgauge:"
    gap_wait: float = 0.1
    test_delay_ms: float = 0.0
    test_tail_delay: TailDelay | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")
        for name in ("max_message_size", "max_content_length", "max_batch", "outbound_limit"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.rate_limit < 0 or self.test_delay_ms < 0:
            raise ValueError("rate_limit and test_delay_ms must not be negative")
        if self.synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"bad synchronous mode {self.synchronous!r}")
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, not {self.workers}")
        if self.gap_wait <= 0:
            raise ValueError("--gap-wait must be positive")
        postgres = self.db.startswith(("postgresql://", "postgres://"))
        if self.workers > 1 and not postgres:
            raise ValueError(
                f"--workers {self.workers} needs a database all processes share: give --db "
                f"postgresql://USER@HOST/DBNAME (a SQLite file, here {self.db!r}, serves one process)"
            )
        if postgres and not self.redis:
            raise ValueError(
                "a PostgreSQL --db is shared by several processes or servers, which need --redis "
                "redis://HOST:PORT to deliver pushes to each other; give --redis none if this one "
                "process is the only server of this database"
            )
        if self.workers > 1 and self.redis == "none":
            raise ValueError(f"--workers {self.workers} needs --redis redis://HOST:PORT (not none)")
        if (
            self.redis
            and self.redis != "none"
            and not self.redis.startswith(("redis://", "rediss://", "unix://"))
        ):
            raise ValueError(f"--redis must be a redis://HOST:PORT URL (or none), not {self.redis!r}")
        if self.loop not in EVENT_LOOPS:
            raise ValueError(f"event loop must be one of {', '.join(EVENT_LOOPS)}, not {self.loop!r}")
