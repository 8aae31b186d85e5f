"""The public API for Locust users of any WebSocket protocol, measured as exactly as the seed's users.

Import everything from here (``from loadtest.user_api import ProtocolUser, JsonProtocol, ...``); the
``_``-modules behind it may move. A locustfile calls :func:`install_lifecycle` once, at import, so that its
run is stored (run store, live monitor, HTML report, the gate), and defines ``ProtocolUser`` subclasses::

    from locust import task
    from loadtest.user_api import JsonProtocol, ProtocolUser, install_lifecycle, push_handler

    install_lifecycle()

    class RpcUser(ProtocolUser):
        protocol = JsonProtocol(kind="method", request_id="id", error="error.code")

        @task
        def add(self) -> None:
            self.request({"jsonrpc": "2.0", "method": "add", "params": [1, 2]}, "rpc:add")

        @push_handler("tick", metric="push:tick", sent_at="params.sent_at")
        def on_tick(self, message: dict) -> None: ...

Run it with ``locust -f locustfile.py --host ws://127.0.0.1:PORT/ --auth none`` (``--auth none``: no NextAuth
session cookie for a foreign server). See ``docs/user-api.md``.

This module defines nothing itself (only re-exports, and the abstract user class) and registers no listener
at import: ``locust -f loadtest`` may load it as a locustfile and finds no user in it. :class:`ProtocolUser`,
:func:`push_handler` and :data:`TRANSITIONS` are imported on first use (PEP 562): importing Locust
monkeypatches the process, which a measured :class:`Connection` used outside Locust (a test, a bench) must
not suffer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadtest._connection import (
    REQUEST_TYPE,
    ConnectFailed,
    Connection,
    ConnectionLost,
    PendingRequest,
    RequestTimeout,
    ServerError,
)
from loadtest._protocol import (
    Expect,
    FieldPath,
    FrameError,
    JsonProtocol,
    Protocol,
    Push,
    field_getter,
    format_timestamp,
    parse_timestamp,
)
from loadtest._schedule import OpenSchedule, ThinkTime
from loadtest._strategies import Backoff, Batcher, Debouncer, OfflineCache
from loadtest._transport import ConnectOptions
from loadtest._wire import OP_BINARY, OP_TEXT

if TYPE_CHECKING:
    from loadtest._protocol_user import TRANSITIONS, ProtocolUser, push_handler

__all__ = [
    "OP_BINARY",
    "OP_TEXT",
    "REQUEST_TYPE",
    "TRANSITIONS",
    "Backoff",
    "Batcher",
    "ConnectFailed",
    "ConnectOptions",
    "Connection",
    "ConnectionLost",
    "Debouncer",
    "Expect",
    "FieldPath",
    "FrameError",
    "JsonProtocol",
    "OfflineCache",
    "OpenSchedule",
    "PendingRequest",
    "Protocol",
    "ProtocolUser",
    "Push",
    "RequestTimeout",
    "ServerError",
    "ThinkTime",
    "field_getter",
    "format_timestamp",
    "install_lifecycle",
    "parse_timestamp",
    "push_handler",
]


_LAZY = frozenset({"TRANSITIONS", "ProtocolUser", "push_handler"})


def __getattr__(name: str) -> Any:
    """:class:`ProtocolUser`, :func:`push_handler`, :data:`TRANSITIONS`: imported (with Locust) when used."""
    if name in _LAZY:
        from loadtest import _protocol_user

        return getattr(_protocol_user, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def install_lifecycle() -> None:
    """Register wsgauge's run lifecycle with Locust: its options, the run store, the live monitor in the web
    UI, the HTML report and the end-of-run summary. Call it once at the top of a locustfile (again: no-op).

    Without it the users have no run to record into (they raise ``RuntimeError`` at spawn).
    """
    import loadtest._integration  # noqa: F401  (registers the listeners once, at its first import)
