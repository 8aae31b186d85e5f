"""The run's target: where it is, whether it answers, and whether it is wsgauge's reference server.

A :class:`Target` is resolved once per run by the master (or the only process) and forwarded to the workers
inside Locust's ``parsed_options`` (custom options travel with every spawn message), so every process talks
to the same server with the same credentials.
"""

from __future__ import annotations

import errno
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "Target",
    "TargetUnreachable",
    "fetch_health",
    "http_get",
    "is_reference_server",
    "probe",
]


class TargetUnreachable(ConnectionError):
    """The target does not accept TCP connections; ``str()`` is the one-line message to show."""


@dataclass(frozen=True)
class Target:
    """Where a run's users connect, and what they authenticate with."""

    ws_url: str
    http_base: str
    secret: str | None
    """NextAuth secret to mint cookies with (the embedded server's own, or ``--secret``)."""
    admin_token: str | None
    embedded: bool
    """``True`` for the reference server started by this Locust (no ``--host``)."""

    def to_wire(self) -> dict[str, Any]:
        """A dict that survives Locust's msgpack transport."""
        return asdict(self)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Target:
        return cls(
            ws_url=str(data["ws_url"]),
            http_base=str(data["http_base"]),
            secret=data.get("secret") or None,
            admin_token=data.get("admin_token") or None,
            embedded=bool(data.get("embedded")),
        )


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror or exc})"
    return exc.strerror or str(exc) or type(exc).__name__


def probe(ws_url: str, timeout: float = 3.0) -> None:
    """Check that the target accepts TCP connections.

    Raises:
        TargetUnreachable: ``cannot reach ws://...: connection refused`` (or timed out, unresolvable ...).
    """
    parts = urlsplit(ws_url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            pass
    except OSError as exc:
        raise TargetUnreachable(f"cannot reach {ws_url}: {_reason(exc)}") from exc


def http_get(url: str, timeout: float) -> tuple[int, str]:
    """``GET url``; returns ``(status, body)``. HTTP error statuses are returned, not raised.

    Raises:
        OSError: if the request cannot be made (refused, timed out ...).
    """
    request = urllib.request.Request(url, headers={"User-Agent": "wsgauge"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise reason if isinstance(reason, OSError) else OSError(str(reason)) from exc


def fetch_health(http_base: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The target's ``GET /healthz`` JSON, or ``None`` if it has none (or does not answer)."""
    try:
        status, body = http_get(http_base.rstrip("/") + "/healthz", timeout)
        data = json.loads(body)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and status in (200, 503) else None


_REFERENCE_KEYS = frozenset({"status", "connections", "uptime_s", "store_pending"})


def is_reference_server(health: Mapping[str, Any] | None) -> bool:
    """Whether a ``/healthz`` answer comes from wsgauge's reference server."""
    if not health:
        return False
    if health.get("server") == "wsgauge-reference":
        return True
    return set(health) >= _REFERENCE_KEYS
