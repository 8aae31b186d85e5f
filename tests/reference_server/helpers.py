"""Helpers for end-to-end tests: read JSON frames from websocket-client sockets."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

import websocket

__all__ = ["chat", "drain", "expect_close", "expect_silence", "recv_json", "recv_until", "uid"]


def uid(prefix: str = "u") -> str:
    """A fresh user id, so tests sharing a server never see each other's traffic."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def chat(receiver: str, content: str = "hello", **extra: Any) -> str:
    """A seed ``chat_message`` frame (plus any extra top-level fields)."""
    frame = {
        "type": "chat_message",
        "receiverId": receiver,
        "message": {"content": content, "timestamp": "2026-11-25T12:00:00.000Z"},
    }
    frame.update(extra)
    return json.dumps(frame)


def recv_json(ws: websocket.WebSocket, timeout: float = 5.0) -> dict[str, Any]:
    """The next data frame, decoded. Pings are answered by websocket-client meanwhile."""
    ws.settimeout(timeout)
    data = ws.recv()
    assert isinstance(data, str), f"expected a text frame, got {data!r}"
    return json.loads(data)


def recv_until(ws: websocket.WebSocket, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
    """Skip frames until one satisfies ``pred``."""
    deadline = time.monotonic() + timeout
    while True:
        frame = recv_json(ws, max(0.05, deadline - time.monotonic()))
        if pred(frame):
            return frame


def expect_silence(ws: websocket.WebSocket, wait: float = 0.3) -> None:
    """Assert no data frame arrives within ``wait`` seconds (pings are answered)."""
    ws.settimeout(wait)
    try:
        data = ws.recv()
    except websocket.WebSocketTimeoutException:
        return
    raise AssertionError(f"unexpected frame {data!r}")


def drain(ws: websocket.WebSocket, wait: float = 0.3) -> list[dict[str, Any]]:
    """Every data frame until ``wait`` seconds pass with none (confirms delivery via pongs)."""
    frames: list[dict[str, Any]] = []
    ws.settimeout(wait)
    while True:
        try:
            data = ws.recv()
        except websocket.WebSocketTimeoutException:
            return frames
        frames.append(json.loads(data))


def expect_close(
    ws: websocket.WebSocket, timeout: float = 5.0, frames: list[dict[str, Any]] | None = None
) -> tuple[int, str]:
    """Read until the server's close frame; return ``(code, reason)``.

    Data frames read on the way are appended to ``frames`` if given; pings are answered.
    """
    ws.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = ws.recv_frame()  # raw: no automatic close reply (the server may be gone)
        if frame.opcode == websocket.ABNF.OPCODE_PING:
            ws.pong(frame.data)
        elif frame.opcode == websocket.ABNF.OPCODE_TEXT and frames is not None:
            frames.append(json.loads(frame.data))
        elif frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            with contextlib.suppress(Exception):  # answer, as a browser would
                ws.send_close()
            return code, data[2:].decode(errors="replace")
    raise AssertionError("no close frame")
