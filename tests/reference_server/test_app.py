"""One thin in-process test of the aiohttp application (aiohttp's test client, no subprocess)."""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

import nextauth_tokens as nextauth
from reference_server.app import create_app
from reference_server.config import ServerConfig, secrets_from_env


def test_app_routes_in_process():
    config = ServerConfig(db=":memory:", secrets=("s3cret",), admin_token="adm", port=0)

    async def main() -> None:
        async with TestClient(TestServer(create_app(config))) as client:
            health = await (await client.get("/healthz")).json()
            assert health["status"] == "ok" and health["connections"] == 0

            resp = await client.get("/ws")
            assert resp.status == 401

            cookie = nextauth.cookie_header(nextauth.mint_v4("s3cret", {"sub": "alice"}))
            async with client.ws_connect("/ws", headers={"Cookie": cookie}) as ws:
                await ws.send_str(
                    '{"type":"chat_message","receiverId":"alice","requestId":1,'
                    '"message":{"content":"me","timestamp":"T"}}'
                )
                first, second = await ws.receive_json(), await ws.receive_json()
                assert first["type"] == "new_message" and second["type"] == "ack"
                resp = await client.post(
                    "/api/notifications",
                    json={"userId": "alice", "title": "t", "body": "b"},
                    headers={"Authorization": "Bearer adm"},
                )
                assert resp.status == 201
                assert (await ws.receive_json())["type"] == "notification_update"
                await ws.send_bytes(b"\x00")
                msg = await ws.receive()
                assert msg.type is WSMsgType.CLOSE and msg.data == 1003
            metrics = await (await client.get("/metrics")).text()
            assert 'wsgauge_frames_in_total{type="chat_message"} 1.0' in metrics

    asyncio.run(main())


def test_secrets_from_env_order():
    env = {"NEXTAUTH_SECRET": "v4", "AUTH_SECRET": "new", "AUTH_SECRET_1": "old", "AUTH_SECRET_2": ""}
    assert secrets_from_env(env) == ("new", "old", "v4")
