"""Load-test a JSON-RPC 2.0 over WebSocket server with wsgauge's public user API.

    python examples/jsonrpc/server.py --port 8765 &
    locust -f examples/jsonrpc/locustfile.py --headless -u 20 -r 10 -t 30s --host ws://127.0.0.1:8765/ \\
        --auth none --results results/jsonrpc.sqlite3

Every call is matched to its reply by ``id`` and timed per method (``rpc:get_quote``, ``rpc:echo``,
``rpc:sum``: microsecond HdrHistograms in the run store, Locust rows under the same names); an error object
fails its call with the JSON-RPC code (``errors.rpc:get_quote.-32001``). Each user subscribes to one ticker
when it connects and every ``ticker`` notification is timed from the ``ts`` the server put in it
(``push:ticker``). With ``--open-rate R`` each user also asks ``R`` quotes a second on a fixed schedule, timed
from the scheduled send (no coordinated omission). Connection state, queue size, reconnects and bad frames
(not JSON, binary, a reply that matches no call) are tracked by the API with no code here.
"""

from __future__ import annotations

from typing import Any

from locust import task

from loadtest.user_api import JsonProtocol, ProtocolUser, install_lifecycle, push_handler

install_lifecycle()

SYMBOLS = ("ACME", "GLOBEX", "INITECH", "UMBRELLA")


def rpc(method: str, params: list[Any] | dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC 2.0 call; the API writes its ``id``."""
    return {"jsonrpc": "2.0", "method": method, "params": params}


class JsonRpcUser(ProtocolUser):
    """A trading-screen client: quotes, a little arithmetic, an echo, and one live ticker."""

    # Notifications carry "method" (their kind); replies carry the call's "id" and, on failure, "error.code".
    protocol = JsonProtocol(kind="method", request_id="id", error="error.code")
    persona = "rpc"
    think_median_s = 0.25
    ticker_interval_ms = 200
    """How often the server sends this user's ticker."""

    def on_connected(self) -> None:
        """Subscribe to one ticker on every (re)connect: the server forgets subscriptions with the socket."""
        symbol = self.rng.choice(SYMBOLS)
        params = {"channel": "ticker", "symbol": symbol, "interval_ms": self.ticker_interval_ms}
        self.call(rpc("subscribe", params), "rpc:subscribe")

    def on_start(self) -> None:
        super().on_start()
        if self.open_rate:
            self.run_on_schedule(self.open_rate, self.scheduled_quote)

    def scheduled_quote(self, scheduled: float) -> None:
        """Open model: one quote per tick of the schedule, timed from ``scheduled``."""
        self.request(
            rpc("get_quote", {"symbol": self.rng.choice(SYMBOLS)}), "rpc:get_quote", scheduled=scheduled
        )

    @push_handler("ticker", metric="push:ticker", sent_at="params.ts")
    def on_ticker(self, message: dict[str, Any]) -> None:
        """Nothing to do with the price here: the push is timed and counted before this is called."""

    @task(5)
    def get_quote(self) -> None:
        self.request(rpc("get_quote", {"symbol": self.rng.choice(SYMBOLS)}), "rpc:get_quote")

    @task(3)
    def echo(self) -> None:
        self.request(rpc("echo", ["ping", self.rng.randrange(1000)]), "rpc:echo")

    @task(2)
    def sum(self) -> None:
        self.request(rpc("sum", [self.rng.randrange(100) for _ in range(5)]), "rpc:sum")
