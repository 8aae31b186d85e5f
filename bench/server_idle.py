"""10,000 idle authenticated connections: time to open them and server RSS per connection.

The reference server runs pinned to core 0 with a file database; this client pins itself to core
1, mints one NextAuth v4 cookie per user (not timed), then opens the connections with bounded
concurrency. RSS per connection = (RSS with N open - RSS with one open) / N. Target ≤ 30 KB.
Raises the open-file limit (soft → hard) for itself and the server it starts.

``--one-frame``: every connection then sends one ``ping`` and gets its ``pong`` before RSS is
read. ``--compress``: the server runs with ``--compress`` and every client negotiates
permessage-deflate (implies ``--one-frame``: the deflate context is made for the first frame).

    python bench/server_idle.py --connections 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

from server_throughput import CLIENT_CORE, REPO, Server, WsConn, client_frame, open_ws


async def run(n: int, concurrency: int, *, compress: bool, one_frame: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server("ref-deflate" if compress else "ref", Path(tmp))
        try:
            users = [f"idle{i}" for i in range(n)]
            auth = [server.headers_path(u) for u in users]  # minting is not timed
            first = await open_ws("127.0.0.1", server.port, auth[0][1], auth[0][0])
            await asyncio.sleep(1.0)
            base = server.ps.memory_info().rss
            conns: list[WsConn] = [first]
            sem = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with sem:
                    headers, path = auth[i]
                    conns.append(await open_ws("127.0.0.1", server.port, path, headers))

            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(1, n)))
            open_s = time.perf_counter() - t0
            if one_frame or compress:
                ping = client_frame(b'{"type":"ping","ts":1}')
                for c in conns:
                    if c.transport is not None:
                        c.transport.write(ping)
            await asyncio.sleep(2.0)  # backlogs (empty) loaded, pongs sent, timers settled
            rss = server.ps.memory_info().rss
            url = f"http://127.0.0.1:{server.port}/healthz"
            health = json.loads(await asyncio.to_thread(lambda: urlopen(url, timeout=10).read()))
            for c in conns:
                if c.transport is not None:
                    c.transport.close()
        finally:
            server.stop()
    return {
        "connections": n,
        "compress": compress,
        "one_frame": one_frame or compress,
        "open_seconds": open_s,
        "connections_per_second": (n - 1) / open_s,
        "server_rss_base_mb": base / 2**20,
        "server_rss_mb": rss / 2**20,
        "rss_per_connection_kb": (rss - base) / (n - 1) / 1024,
        "healthz_connections": health["connections"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    p.add_argument("--one-frame", action="store_true", help="each connection sends one ping first")
    p.add_argument("--compress", action="store_true", help="server --compress, clients negotiate deflate")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "server_idle.json")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        sys.exit(f"open-file limit {hard} is below the {need} this needs")
    os.sched_setaffinity(0, {CLIENT_CORE})
    result = asyncio.run(
        run(args.connections, args.concurrency, compress=args.compress, one_frame=args.one_frame)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(
        f"{result['connections']} idle authenticated connections opened in "
        f"{result['open_seconds']:.1f} s ({result['connections_per_second']:.0f}/s); server RSS "
        f"{result['rss_per_connection_kb']:.1f} KB per connection (target <= 30 KB)"
    )


if __name__ == "__main__":
    main()
