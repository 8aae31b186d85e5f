"""Client CPU per round trip: the public user API's path against the seed client it replaced, and the client
and server CPU per message with permessage-deflate and without.

One process (pinned to core 1) drives ``--pairs`` sender/receiver pairs of seed clients against one
reference server (pinned to core 0, ``--compress``, so it accepts deflate from clients that offer it): every
sender sends ``chat_message`` frames with ``requestId`` to its receiver, ``--window`` in flight, until
``--messages`` have been acked. Each message is one measured round trip (``ack:chat_message``) plus one
measured delivery (``delivery:chat``) at the receiver: the seed's main path through send, match, record.

Variants, interleaved round by round (``--rounds``), the same server for all:

* ``baseline``: ``loadtest/_client.py`` as it was before the user API (read from git, commit ``--baseline``),
  the hand-wired seed client;
* ``public``: today's ``WsClient``, the seed client built on :mod:`loadtest.user_api`;
* ``public+deflate``: the same, offering permessage-deflate (the server accepts it).

CPU is ``time.process_time()`` of this process (the client) and the server's ``psutil`` CPU times over the
same interval, divided by the messages. The connections stay open; the variants run in short blocks, in a
rotating order, so that a shared machine's changing load hits all of them alike; the ratio is the median of
each round's ratio against ``baseline`` of the same round.

    python bench/user_api_overhead.py                 # 30 rounds of 3,000 messages, ~2-4 min
    python bench/user_api_overhead.py --rounds 10 --messages 10000
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import gevent
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nextauth_tokens import cookie_header, mint_v4  # noqa: E402
from runstore.samples import SampleAggregator  # noqa: E402

SERVER_CORE = 0
CLIENT_CORE = 1
READY = "listening on "
BASELINE_COMMIT = "664ba66"
"""The last commit before the user API (the seed client wired to the seed's frames by hand)."""


class _Events:
    """Stands in for Locust's ``environment``: counts ``request`` events, as a listener would."""

    def __init__(self) -> None:
        self.count = 0

    @property
    def events(self) -> _Events:
        return self

    @property
    def request(self) -> _Events:
        return self

    def fire(self, **_: Any) -> None:
        self.count += 1


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSGAUGE_", "LOCUST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class Server:
    """The reference server on core 0 with a file database, accepting permessage-deflate."""

    def __init__(self, tmp: Path) -> None:
        self.secret = "s" + secrets.token_hex(16)
        command = [
            "taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "reference_server", "--port", "0",
            "--db", str(tmp / "server.db"), "--rate-limit", "0", "--compress", f"--secret={self.secret}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if READY not in line:
            raise RuntimeError(f"reference server did not start: {line!r}")
        self.ws_url = line.split(READY, 1)[1].strip()
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def cookie(self, user: str) -> str:
        token = mint_v4(self.secret, {"sub": user, "name": user}, now=time.time(), max_age=86400)
        return cookie_header(token)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def baseline_module(commit: str) -> ModuleType:
    """``loadtest/_client.py`` at ``commit``, imported as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:loadtest/_client.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="wsgauge-baseline-")) / "_client_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("_client_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Variant:
    """``pairs`` sender/receiver pairs of one client kind, connected once and measured block by block."""

    def __init__(self, server: Server, make: Any, pairs: int, tag: str) -> None:
        self.server = server
        self.env = _Events()
        self.agg = SampleAggregator()
        self.clients: list[tuple[Any, Any, str]] = []
        for i in range(pairs):
            sender, receiver = f"{tag}-s{i}", f"{tag}-r{i}"
            s = make(self.env, self.agg, server.ws_url, sender, server.cookie(sender))
            r = make(self.env, self.agg, server.ws_url, receiver, server.cookie(receiver))
            s.connect()
            r.connect()
            self.clients.append((s, r, receiver))
        self.compressed = all(getattr(s, "compressed", False) for s, _, _ in self.clients)

    def run(self, messages: int, window: int) -> dict[str, float]:
        """Send ``messages`` acked chat messages (all pairs at once); CPU per message on both ends."""
        per_pair = messages // len(self.clients)

        def drive(sender: Any, receiver_id: str) -> None:
            # bursts of ``window`` messages, then wait for their acks (polling at 1 ms costs next to no CPU)
            sent = 0
            deadline = time.monotonic() + 120
            while sent < per_pair:
                for _ in range(min(window, per_pair - sent)):
                    chat = {"type": "chat_message", "receiverId": receiver_id, "message": {"content": "hi"}}
                    sender.send(chat)
                    sent += 1
                while sender.pending and time.monotonic() < deadline:
                    gevent.sleep(0.001)

        self.agg.drain()
        server_cpu0 = self.server.cpu()
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        gevent.joinall([gevent.spawn(drive, s, rid) for s, _, rid in self.clients])
        gevent.sleep(0.02)  # the last deliveries
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        server_cpu = self.server.cpu() - server_cpu0
        samples, _ = self.agg.drain()
        counts: dict[str, int] = {}
        for sample in samples:
            for n, h in sample.latency.items():
                counts[n] = counts.get(n, 0) + h.get_total_count()
        done = per_pair * len(self.clients)
        return {
            "messages": done,
            "acks": counts.get("ack:chat_message", 0),
            "deliveries": counts.get("delivery:chat", 0),
            "compressed": self.compressed,
            "client_us_per_msg": cpu / done * 1e6,
            "server_us_per_msg": server_cpu / done * 1e6,
            "msg_per_s": done / wall,
        }

    def close(self) -> None:
        for s, r, _ in self.clients:
            s.close()
            r.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="short blocks per variant, interleaved")
    parser.add_argument("--messages", type=int, default=3000, help="acked messages per variant and block")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--window", type=int, default=10, help="messages in flight per sender")
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="git commit of the baseline client")
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {CLIENT_CORE})
    old = baseline_module(args.baseline)
    from loadtest._client import WsClient
    from loadtest.user_api import ConnectOptions

    def make_baseline(env: Any, agg: Any, url: str, user: str, cookie: str) -> Any:
        return old.WsClient(env, agg, url, user_id=user, cookie=cookie, request_timeout=30.0)

    def make_public(env: Any, agg: Any, url: str, user: str, cookie: str) -> Any:
        return WsClient(env, agg, url, user_id=user, cookie=cookie, request_timeout=30.0)

    def make_deflate(env: Any, agg: Any, url: str, user: str, cookie: str) -> Any:
        options = ConnectOptions(cookie=cookie, compression=True)
        return WsClient(env, agg, url, user_id=user, request_timeout=30.0, options=options)

    variants = {"baseline": make_baseline, "public": make_public, "public+deflate": make_deflate}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        try:
            open_ = {name: Variant(server, make, args.pairs, name) for name, make in variants.items()}
            for variant in open_.values():  # one untimed warm-up block each
                variant.run(args.messages, args.window)
            names = list(variants)
            for round_ in range(args.rounds):
                order = names[round_ % len(names) :] + names[: round_ % len(names)]  # no variant always first
                for name in order:
                    row = open_[name].run(args.messages, args.window)
                    row["round"] = round_
                    rows[name].append(row)
                    print(json.dumps({"variant": name, **row}), flush=True)
            for variant in open_.values():
                variant.close()
        finally:
            server.stop()
    print()
    base_client = [r["client_us_per_msg"] for r in rows["baseline"]]
    base_server = [r["server_us_per_msg"] for r in rows["baseline"]]
    print(f"{'variant':16} {'client µs/msg':>14} {'ratio':>7} {'server µs/msg':>14} {'ratio':>7}  (medians)")
    for name, results in rows.items():
        client = [r["client_us_per_msg"] for r in results]
        server_cpu = [r["server_us_per_msg"] for r in results]
        client_ratio = statistics.median(c / b for c, b in zip(client, base_client, strict=True))
        server_ratio = statistics.median(s / b for s, b in zip(server_cpu, base_server, strict=True))
        print(
            f"{name:16} {statistics.median(client):14.1f} {client_ratio:7.3f} "
            f"{statistics.median(server_cpu):14.1f} {server_ratio:7.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
