"""Load-test a GraphQL over WebSocket server (``graphql-transport-ws``) with wsgauge's public user API.

    python examples/graphql/server.py --port 4000 &
    locust -f examples/graphql/locustfile.py --headless -u 20 -r 10 -t 30s \\
        --host ws://127.0.0.1:4000/graphql --auth none --results results/graphql.sqlite3

Each user opens the socket with the ``graphql-transport-ws`` subprotocol, sends ``connection_init`` and waits
for ``connection_ack`` (timed as ``gql:connection_init``), then holds one ``ticks`` subscription: every
``next`` of it is timed from the ``sentAt`` the server put in its payload (``push:tick``, the subscription's
delivery latency). Its tasks are queries, each a ``subscribe`` whose ``next`` is the reply, matched by the
operation ``id`` and timed per query (``gql:quote``, ``gql:echo``); an ``error`` message or a result with
``errors`` fails the query. The ``complete`` after a query's ``next`` is counted (``recv.complete``), not
mistaken for a reply. A ``ping`` from the server is answered with a ``pong``.

:class:`GraphQLTransportWS` is the whole protocol description: what kind each message is, which request it
answers, and when it is a failure. It shows how a protocol that :class:`~loadtest.user_api.JsonProtocol`'s
field paths cannot describe alone is written: a subclass overriding two or three methods.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Any

from locust import task

from loadtest.user_api import JsonProtocol, ProtocolUser, Push, install_lifecycle, push_handler

install_lifecycle()

SYMBOLS = ("ACME", "GLOBEX", "INITECH", "UMBRELLA")
SUBSCRIPTION_PREFIX = "sub-"
"""Operation ids of subscriptions start with this; queries get the API's ids ("1", "2" ...)."""
ACK = "connection_ack"

QUOTE = "query Quote($symbol: String!) { quote(symbol: $symbol) { symbol price ts } }"
ECHO = "query Echo($message: String!) { echo(message: $message) }"
TICKS = (
    "subscription Ticks($symbol: String!, $every: Int) "
    "{ ticks(symbol: $symbol, intervalMs: $every) { symbol price seq sentAt } }"
)


class GraphQLTransportWS(JsonProtocol):
    """The messages of ``graphql-transport-ws`` as wsgauge reads them.

    * ``next`` of a subscription (id ``sub-...``) is the push kind ``tick``; ``next`` / ``error`` of a query
      answer the query's ``subscribe`` (matched by ``id``);
    * ``connection_ack`` answers ``connection_init`` (sent with ``key=ACK``: it carries no id);
    * ``complete``, ``pong`` and ``ping`` answer nothing: they are pushes (counted, ``ping`` answered).
    """

    def __init__(self) -> None:
        super().__init__(kind="type", request_id="id", ids="str")

    def kind(self, message: Any) -> str | None:
        kind = super().kind(message)
        if kind == "next" and str(message.get("id", "")).startswith(SUBSCRIPTION_PREFIX):
            return "tick"
        return kind

    def reply_key(self, message: Any, kind: str | None) -> Hashable | None:
        if kind == ACK:
            return ACK
        if kind in ("next", "error"):
            return super().reply_key(message, kind)
        return None

    def error(self, message: Any, kind: str | None) -> str | None:
        if kind == "error":
            return "graphql_error"  # the document was refused: errors.gql:<query>.graphql_error
        if kind == "next" and (message.get("payload") or {}).get("errors"):
            return "field_error"  # executed, but a field failed (data null)
        return None


class GraphQLUser(ProtocolUser):
    """A dashboard: one live ``ticks`` subscription, and quotes (and an echo) asked now and then."""

    protocol = GraphQLTransportWS()
    subprotocols = ("graphql-transport-ws",)
    pushes = (Push("complete"), Push("pong"))  # counted only (recv.complete, recv.pong)
    persona = "gql"
    think_median_s = 0.25
    tick_interval_ms = 200
    """How often the server sends this user's ticks."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._subscriptions = itertools.count(1)
        self.initialised = False
        """``connection_ack`` received on the current connection: operations may be sent."""

    def on_connected(self) -> None:
        """On every (re)connect: ``connection_init``, wait for ``connection_ack``, subscribe to ticks."""
        self.initialised = False
        self.call({"type": "connection_init", "payload": {}}, "gql:connection_init", key=ACK)
        self.initialised = True
        variables = {"symbol": self.rng.choice(SYMBOLS), "every": self.tick_interval_ms}
        self.send(
            {
                "id": f"{SUBSCRIPTION_PREFIX}{next(self._subscriptions)}",
                "type": "subscribe",
                "payload": {"query": TICKS, "operationName": "Ticks", "variables": variables},
            },
            kind="gql:subscribe_ticks",
        )

    def on_disconnected(self, reason: str) -> None:
        self.initialised = False

    @push_handler("tick", metric="push:tick", sent_at="payload.data.ticks.sentAt")
    def on_tick(self, message: dict[str, Any]) -> None:
        """Nothing more to do with a tick here: it is timed and counted before this is called."""

    @push_handler("ping")
    def on_ping(self, message: dict[str, Any]) -> None:
        """The protocol asks for a ``pong`` to every ``ping``."""
        self.send({"type": "pong"}, kind="gql:pong")

    def query(self, document: str, operation: str, variables: dict[str, Any], name: str) -> None:
        """A query is a ``subscribe`` whose reply is its ``next``; the API writes the operation ``id``.

        Not before ``connection_ack``: after a reconnect the tasks run on while :meth:`on_connected` waits
        for it, and the protocol closes a socket that subscribes early (4401). Skipped, the query is not sent
        (and not counted): the dashboard has no connection to ask on yet.
        """
        if not self.initialised:
            return
        payload = {"query": document, "operationName": operation, "variables": variables}
        self.request({"type": "subscribe", "payload": payload}, name)

    @task(4)
    def quote(self) -> None:
        self.query(QUOTE, "Quote", {"symbol": self.rng.choice(SYMBOLS)}, "gql:quote")

    @task(1)
    def echo(self) -> None:
        self.query(ECHO, "Echo", {"message": f"hello {self.rng.randrange(1000)}"}, "gql:echo")
