"""Scale-out cost: durable, acked, routed chat through 1 vs 2 server processes (issue 12).

Configurations (each its own server, started fresh; throughput runs interleaved ``--repeat``
times, the median kept):

* ``sqlite-1``   — the default: one process, SQLite WAL (group commit).
* ``pg-1``       — one process, PostgreSQL store, no Redis (``--redis none``): PostgreSQL vs SQLite.
* ``pg-redis-1`` — one process, PostgreSQL + Redis: every push is also published (the Redis hop's
  publishing cost; nobody else subscribes).
* ``pg-redis-2`` — ``--workers 2``: two processes on one port (SO_REUSEPORT); the kernel spreads
  the connections, so about half the messages cross processes through Redis.

The client (``bench/server_throughput.py``'s raw asyncio WebSocket client, every message with a
``requestId``: stored, acked after commit) **shares the machine's two cores with the servers,
PostgreSQL and Redis**: nothing is pinned, so compare messages per server CPU-second (robust to CPU
taken by others) rather than raw msg/s. ``server CPU`` counts the reference server's processes
(supervisor and workers); ``+services`` adds the PostgreSQL backends serving the bench's database
and the bench's own ``redis-server`` (started on a free port with ``--save ''``).

Latency: open loop at half of each configuration's own throughput: durable ack p50/p99 and
delivery p50/p99 (send → ``new_message``).

    python bench/server_scaleout.py --seconds 5 --repeat 3   # ~4 min

``--profile`` also records py-spy profiles of the ``sqlite-1`` server and of one ``pg-redis-2``
worker under the throughput load and prints where each spends its samples (innermost frame, by
package).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from server_throughput import latency, throughput  # noqa: E402

import nextauth_tokens as nextauth  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = ("sqlite-1", "pg-1", "pg-redis-1", "pg-redis-2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.ps = psutil.Process(self.proc.pid)
        time.sleep(0.5)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


class Server:
    """A reference-server configuration; the interface ``server_throughput`` drives."""

    def __init__(self, kind: str, tmp: Path, pg_url: str, redis: OwnRedis) -> None:
        self.kind = kind
        self.secret = secrets.token_urlsafe(24)
        self.pg_url = pg_url
        self.redis = redis
        self.dbname = pg_url.rsplit("/", 1)[1]
        args = ["--port", "0", f"--secret={self.secret}", "--rate-limit", "0", "--log-level", "ERROR"]
        if kind == "sqlite-1":
            args += ["--db", str(tmp / f"bench-{secrets.token_hex(3)}.db")]
        elif kind == "pg-1":
            args += ["--db", pg_url, "--redis", "none"]
        else:
            args += ["--db", pg_url, "--redis", redis.url, "--redis-prefix", f"bench{secrets.token_hex(3)}:"]
            args += ["--workers", kind.rsplit("-", 1)[1]]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reference_server", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.port = int(line.strip().rsplit(":", 1)[1].split("/")[0])
        self.ps = psutil.Process(self.proc.pid)
        #: (server CPU, services CPU) at each cpu() call: throughput()/latency() call it at the
        #: start and the end of their measured window.
        self.samples: list[tuple[float, float]] = []

    def headers_path(self, user: str) -> tuple[dict[str, str], str]:
        token = nextauth.mint_v4(self.secret, {"sub": user}, max_age=3600)
        return {"Cookie": nextauth.cookie_header(token)}, "/ws"

    def _procs(self) -> list[psutil.Process]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._procs()[1:]]

    def _services_cpu(self) -> float:
        total = 0.0
        if self.kind != "sqlite-1":
            with psycopg.connect(PG_ADMIN) as conn:
                sql = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                pids = [r[0] for r in conn.execute(sql, (self.dbname,)).fetchall()]
            for pid in pids:
                try:
                    t = psutil.Process(pid).cpu_times()
                    total += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
        if self.kind.startswith("pg-redis"):
            total += self.redis.cpu()
        return total

    def cpu(self) -> float:
        total = 0.0
        for p in self._procs():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        self.samples.append((total, self._services_cpu()))
        return total

    def services_window(self) -> float:
        """Services CPU seconds over the last measured window."""
        return self.samples[-1][1] - self.samples[-2][1]

    def thread_cpu(self) -> dict[str, float]:
        return {}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _new_db() -> str:
    name = f"wsg_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_db(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r[key])
    return ordered[len(ordered) // 2]


def _profile(pid: int, seconds: float, out: Path) -> dict[str, float]:
    """py-spy samples of ``pid`` (threads holding the CPU; idle waits are not sampled): the share
    of samples whose innermost frame is in each package (``psycopg``, ``redis``, ``aiohttp``,
    ``asyncio``, ``reference_server.pgstore``, ...)."""
    subprocess.run(
        ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    if not out.exists():
        return {}
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or not stack:
            continue
        total += int(n)
        counts[_package_of(stack.split(";")[-1])] += int(n)
    return {name: c / max(total, 1) for name, c in counts.most_common(16)}


def _package_of(frame: str) -> str:
    """``fn (path/to/pkg/mod.py:12)`` → ``pkg`` (``reference_server.<module>`` for ours)."""
    if "epoll" in frame or frame.startswith("select ("):
        return "idle (epoll wait)"
    path = frame.rpartition(" (")[2].split(":")[0]
    parts = path.split("/")
    if "reference_server" in parts:
        return "reference_server." + parts[-1].removesuffix(".py")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    return parts[0] if len(parts) > 1 else path.removesuffix(".py")  # py-spy: "asyncio/events.py"


async def _profiled(kind: str, args: argparse.Namespace, tmp: Path, redis: OwnRedis) -> dict[str, float]:
    """Profile one server process of ``kind`` (a worker, if several) under the throughput load."""
    db = _new_db()
    server = Server(kind, tmp, f"postgresql://postgres@127.0.0.1:5432/{db}", redis)
    try:
        pids = server.worker_pids() or [server.proc.pid]
        task = asyncio.create_task(throughput(server, args.pairs, args.window, args.seconds + 2))  # type: ignore[arg-type]
        await asyncio.sleep(1.5)
        prof = await asyncio.to_thread(_profile, pids[0], args.seconds, tmp / f"prof-{kind}.txt")
        await task
    finally:
        server.stop()
        _drop_db(db)
    return prof


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"pairs": args.pairs, "window": args.window, "seconds": args.seconds}
    kinds = [k for k in KINDS if k in args.kinds]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        redis = OwnRedis(Path(tmp))
        try:
            for _ in range(args.repeat):
                for kind in kinds:
                    db = _new_db()
                    server = Server(kind, Path(tmp), f"postgresql://postgres@127.0.0.1:5432/{db}", redis)
                    try:
                        r = await throughput(server, args.pairs, args.window, args.seconds)  # type: ignore[arg-type]
                        services = server.services_window() / args.seconds
                    finally:
                        server.stop()
                        _drop_db(db)
                    r["services_cpu"] = services
                    r["per_server_cpu_s"] = r["delivered_per_s"] / max(r["server_cpu"], 1e-9)
                    r["per_total_cpu_s"] = r["delivered_per_s"] / max(r["server_cpu"] + services, 1e-9)
                    r["services_cpu_us_per_msg"] = services / max(r["delivered_per_s"], 1) * 1e6
                    r.pop("server_threads", None)
                    runs[kind].append(r)
                    print(json.dumps(r), flush=True)
            for kind in kinds:
                results[f"throughput_{kind}"] = _median(runs[kind], "per_server_cpu_s")
                results[f"throughput_{kind}_runs"] = runs[kind]
            for kind in kinds:
                rate = args.latency_rate or 0.5 * _median(runs[kind], "delivered_per_s")["delivered_per_s"]
                db = _new_db()
                server = Server(kind, Path(tmp), f"postgresql://postgres@127.0.0.1:5432/{db}", redis)
                try:
                    results[f"latency_{kind}"] = await latency(server, args.pairs, rate, args.seconds)  # type: ignore[arg-type]
                finally:
                    server.stop()
                    _drop_db(db)
                print(json.dumps(results[f"latency_{kind}"]), flush=True)
            if args.profile:
                for kind in ("sqlite-1", "pg-redis-2"):
                    results[f"profile_{kind}"] = await _profiled(kind, args, Path(tmp), redis)
        finally:
            redis.stop()
    t = {k: results[f"throughput_{k}"] for k in kinds}
    for base in ("sqlite-1", "pg-redis-1", "pg-1"):
        if base in t and "pg-redis-2" in t:
            results[f"ratio_2workers_to_{base}_per_server_cpu_s"] = (
                t["pg-redis-2"]["per_server_cpu_s"] / t[base]["per_server_cpu_s"]
            )
            results[f"ratio_2workers_to_{base}_per_total_cpu_s"] = (
                t["pg-redis-2"]["per_total_cpu_s"] / t[base]["per_total_cpu_s"]
            )
    if "pg-1" in t and "pg-redis-1" in t:
        results["redis_publish_us_per_msg"] = (
            t["pg-redis-1"]["server_cpu_us_per_msg"] - t["pg-1"]["server_cpu_us_per_msg"]
        )
    results["load_average"] = os.getloadavg()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=50, help="sender/receiver connection pairs")
    p.add_argument("--window", type=int, default=40, help="messages in flight per pair")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase")
    p.add_argument("--repeat", type=int, default=3, help="interleaved throughput runs per configuration")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS, help="configurations to measure")
    p.add_argument("--latency-rate", type=float, default=None, metavar="MSG_PER_S",
                   help="offered rate of the latency phases (default: half of each configuration's "
                        "own median throughput)")  # fmt: skip
    p.add_argument(
        "--profile", action="store_true", help="py-spy sqlite-1 and one pg-redis-2 worker under load"
    )
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "server_scaleout.json")
    args = p.parse_args()
    results = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print()
    cols = ("msg/s", "srv CPU", "srv us/msg", "+svc us/msg", "msg/srv-CPU-s", "msg/all-CPU-s")
    print(f"{'config':<11} " + " ".join(f"{c:>13}" for c in cols) + "  ack p50/p99, deliver p99 (ms)")
    for kind in [k for k in KINDS if f"throughput_{k}" in results]:
        r, lat = results[f"throughput_{kind}"], results.get(f"latency_{kind}", {})
        values = (
            f"{r['delivered_per_s']:.0f}",
            f"{r['server_cpu']:.0%}",
            f"{r['server_cpu_us_per_msg']:.1f}",
            f"{r['services_cpu_us_per_msg']:.1f}",
            f"{r['per_server_cpu_s']:.0f}",
            f"{r['per_total_cpu_s']:.0f}",
        )
        nan = float("nan")
        ack = f"{lat.get('ack_p50_ms', nan):.2f}/{lat.get('ack_p99_ms', nan):.2f}"
        print(
            f"{kind:<11} "
            + " ".join(f"{v:>13}" for v in values)
            + f"  {ack}, {lat.get('deliver_p99_ms', nan):.2f}"
        )
    for key, value in results.items():
        if key.startswith("ratio_") or key == "redis_publish_us_per_msg":
            print(f"{key}: {value:.2f}")
    for kind in ("sqlite-1", "pg-redis-2"):
        if f"profile_{kind}" in results:
            print(f"py-spy, {kind} (one process), innermost frame by package:")
            for name, share in results[f"profile_{kind}"].items():
                print(f"  {share:6.1%}  {name}")
    print(f"load average: {results['load_average']}")


if __name__ == "__main__":
    main()
