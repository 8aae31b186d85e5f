"""Baseline for the server benchmark: a bare JSON router on the same stack (aiohttp + orjson).

Parse, look up the receiver, send: no auth, no validation, no store, no acks. The user id is the
``user`` query parameter. Prints ``listening on ws://HOST:PORT/ws`` when ready.

    python bench/server_bare_router.py --port 8766
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import orjson
from aiohttp import WSMsgType, web

loads, dumps = orjson.loads, orjson.dumps


async def handler(request: web.Request) -> web.WebSocketResponse:
    conns: dict[str, web.WebSocketResponse] = request.app["conns"]
    user = request.query.get("user", "")
    ws = web.WebSocketResponse(compress=False, max_msg_size=65536)
    await ws.prepare(request)
    conns[user] = ws
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                d = loads(msg.data)
                peer = conns.get(d["receiverId"])
                if peer is not None:
                    m = d["message"]
                    out = {"type": "new_message", "data": {"senderId": user, "receiverId": d["receiverId"],
                                                           "content": m["content"],
                                                           "timestamp": m["timestamp"]}}  # fmt: skip
                    await peer.send_frame(dumps(out), WSMsgType.TEXT)
    finally:
        if conns.get(user) is ws:
            del conns[user]
    return ws


async def main(host: str, port: int) -> None:
    app = web.Application()
    app["conns"] = {}
    app.add_routes([web.get("/ws", handler)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    print(f"listening on ws://{host}:{port}/ws", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8766)
    a = p.parse_args()
    asyncio.run(main(a.host, a.port))
    sys.exit(0)
