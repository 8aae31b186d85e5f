"""A small JSON-RPC 2.0 WebSocket server that is not the seed's, for the public user API's tests.

aiohttp in a thread of the test process (``ForeignServer``), on 127.0.0.1, optionally over TLS with a
self-signed certificate made here (``self_signed``). Methods:

* ``add`` -> ``result`` (the sum); ``fail`` -> ``error`` ``-32000``; ``slow`` -> no reply; ``late`` -> the
  reply after ``params.delay`` seconds; ``nested`` -> ``{"result": {"ref": params.id}}`` (the id lives in
  ``params.id``);
* ``notify`` -> a ``tick`` notification carrying ``params.sent_at`` (unix seconds), a ``hello`` one, then
  its reply;
* ``garbage`` -> non-JSON text, a binary frame, a reply to an id never sent, then its reply;
* ``close`` -> the server closes the connection;
* on ``/drop`` every connection is closed by the server after its third request (reconnects).

Every handshake's headers and the subprotocol picked are recorded in :attr:`ForeignServer.handshakes`.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["ForeignServer", "self_signed"]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` / 127.0.0.1: ``(cert.pem, key.pem)``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class ForeignServer:
    """The server in a thread; :meth:`url` of a path; :meth:`stop` when done."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.handshakes: list[dict[str, Any]] = []
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the foreign server did not start")

    def url(self, path: str = "/rpc") -> str:
        scheme = "wss" if self._tls else "ws"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- the server --------------------------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.get("/rpc", self._rpc),
                web.get("/plain", self._plain),
                web.get("/drop", self._drop),
            ]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        context = None
        if self._tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self._tls[0]), str(self._tls[1]))
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()

    async def _plain(self, request: web.Request) -> web.WebSocketResponse:
        return await self._session(request, web.WebSocketResponse(), drop_after=None)

    async def _rpc(self, request: web.Request) -> web.WebSocketResponse:
        return await self._session(request, web.WebSocketResponse(protocols=("jsonrpc",)), drop_after=None)

    async def _drop(self, request: web.Request) -> web.WebSocketResponse:
        return await self._session(request, web.WebSocketResponse(protocols=("jsonrpc",)), drop_after=3)

    async def _session(
        self, request: web.Request, ws: web.WebSocketResponse, drop_after: int | None
    ) -> web.WebSocketResponse:
        # Recorded before the 101 goes out: a client's connect returns when it has read the 101, and a test
        # reading handshakes[-1] right after must find its own handshake, not the one before it.
        ready = ws.can_prepare(request)
        self.handshakes.append(
            {"path": request.path, "headers": dict(request.headers), "protocol": ready.protocol}
        )
        await ws.prepare(request)
        served = 0
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            call = json.loads(msg.data)
            method, rid, params = call.get("method"), call.get("id"), call.get("params")
            served += 1
            if drop_after is not None and served >= drop_after:
                await ws.close()
                break
            if method == "add":
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "result": sum(params)}))
            elif method == "fail":
                error = {"code": -32000, "message": "it failed"}
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "error": error}))
            elif method == "late":
                await asyncio.sleep(float(params["delay"]))
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "result": "late"}))
            elif method == "nested":
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "result": {"ref": params["id"]}}))
            elif method == "notify":
                tick = {"jsonrpc": "2.0", "method": "tick", "params": {"sent_at": time.time()}}
                await ws.send_str(json.dumps(tick))
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "method": "hello", "params": {}}))
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "result": "ok"}))
            elif method == "garbage":
                await ws.send_str("this is not json")
                await ws.send_bytes(b"\x00\x01binary")
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 999_999, "result": 0}))
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "result": "ok"}))
            elif method == "close":
                await ws.close()
                break
        return ws
