"""How exactly the reference server's ``--test-delay-ms`` knob adds its delay.

The release-gate benchmark (``bench/gate_aa_ab.py``) simulates a "20 % slower build" with this knob,
so its A/B detection rate is only as honest as the knob is exact. For each delay this starts a
server (``--db :memory:``, pinned to core 0 as in ``server_throughput.py``), sends 1,500 sequential
application pings from one websocket-client connection, 2 ms apart, and prints the round-trip p50/p95
against a server without the delay started in the same run.

    python bench/server_test_delay.py --delays 0.1 0.3 1 5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import websocket
from server_throughput import Server  # bench/ is the script's directory: the same server start-up


def round_trips(delay_ms: float, count: int) -> list[float]:
    """Sorted ping round trips (ms) against a fresh server with ``--test-delay-ms delay_ms``."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server("ref-memory", Path(tmp), "--test-delay-ms", str(delay_ms))
        try:
            headers, path = server.headers_path("bench")
            ws = websocket.create_connection(
                f"ws://127.0.0.1:{server.port}{path}",
                header=[f"{k}: {v}" for k, v in headers.items()],
                timeout=10,
            )
            out = []
            for i in range(count):
                t0 = time.perf_counter()
                ws.send(json.dumps({"type": "ping", "ts": i}))
                ws.recv()
                out.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.002)
            ws.close()
            return sorted(out)
        finally:
            server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delays", type=float, nargs="+", default=[0.1, 0.3, 1.0, 5.0], help="ms")
    p.add_argument("--count", type=int, default=1500, help="pings per server")
    args = p.parse_args()
    base = round_trips(0.0, args.count)
    b50, b95 = base[len(base) // 2], base[int(len(base) * 0.95)]
    print(f"no delay:      p50 {b50:.3f} ms  p95 {b95:.3f} ms")
    for delay in args.delays:
        r = round_trips(delay, args.count)
        p50, p95 = r[len(r) // 2], r[int(len(r) * 0.95)]
        shift = f"+{p50 - b50:.3f}, {p50 / b50:.2f} x"
        print(f"delay {delay:5.2f} ms: p50 {p50:.3f} ms ({shift})  p95 {p95:.3f} ms")


if __name__ == "__main__":
    main()
