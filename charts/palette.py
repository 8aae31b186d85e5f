"""One colour per message type, used by every chart of the monitor and the reports.

A message type keeps its colour wherever it appears: the latency metric (``ack:chat_message``), its counters
(``sent.chat_message``, ``errors.chat_message.timeout``) and in both runs of a comparison (a compared run is
drawn in the same colour, dashed or fainter). Metrics that measure *another* leg of a type's journey have
their own colour: ``delivery:chat`` (``chat_message`` to the receiver's ``new_message``) is not the
``ack:chat_message`` round trip, so the two must be told apart on one chart.
"""

from __future__ import annotations

import hashlib
from typing import Final

from runstore.names import (
    COUNTER_ERRORS,
    COUNTER_RECEIVED,
    COUNTER_SENT,
    METRIC_ACK_PREFIX,
)

__all__ = [
    "ERROR_COLOURS",
    "EVENT_COLOURS",
    "FALLBACK",
    "STATE_COLOURS",
    "error_colour",
    "type_colour",
]

_BY_NAME: Final[dict[str, str]] = {
    # round trips of client frames (the ack:<type> metric, sent.<type>, errors.<type>.*)
    "chat_message": "#1f77b4",
    "ping": "#2ca02c",
    "pong": "#2ca02c",
    "notification_read": "#9467bd",
    "progress_update": "#17becf",
    "batch": "#393b79",
    "connect": "#525252",
    # other legs: delivery to another user, server pushes, the HTTP side, the generator's own lag
    "delivery:chat": "#ff7f0e",
    "new_message": "#ff7f0e",
    "push:notification": "#8c564b",
    "notification_update": "#8c564b",
    "http:notification_create": "#e377c2",
    "notification_create": "#e377c2",
    "sync:progress": "#bcbd22",
    "progress_sync": "#bcbd22",
    "send_lag": "#969696",
}
FALLBACK: Final = ("#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363")
"""Colours for names the table does not know, chosen by a hash of the name (stable across runs)."""
STATE_COLOURS: Final[dict[str, str]] = {
    "connected": "#16a34a",
    "reconnecting": "#f59e0b",
    "disconnected": "#dc2626",
}
EVENT_COLOURS: Final[dict[str, str]] = {
    "connected": "#16a34a",
    "reconnecting": "#f59e0b",
    "disconnected": "#dc2626",
    "connect_failed": "#b91c1c",
    "gave_up": "#111827",
}
ERROR_COLOURS: Final = ("#dc2626", "#f97316", "#7f1d1d", "#fb7185", "#9a3412", "#e11d48", "#f59e0b")


def _key(name: str) -> str:
    """The message type a metric or counter name belongs to (``sent.chat_message`` -> ``chat_message``)."""
    if name.startswith(COUNTER_ERRORS):
        return name[len(COUNTER_ERRORS) :].rsplit(".", 1)[0]
    for prefix in (COUNTER_SENT, COUNTER_RECEIVED, METRIC_ACK_PREFIX):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _hashed(name: str, colours: tuple[str, ...]) -> str:
    return colours[hashlib.sha1(name.encode()).digest()[0] % len(colours)]


def type_colour(name: str) -> str:
    """The colour of a latency metric, counter or message type (``ack:chat_message`` = ``sent.chat_message``).

    Unknown names get a stable colour from :data:`FALLBACK`.
    """
    for candidate in (name, _key(name)):
        if candidate in _BY_NAME:
            return _BY_NAME[candidate]
    return _hashed(_key(name), FALLBACK)


def error_colour(code: str) -> str:
    """A red-to-orange colour per error code (``rate_limited``, ``timeout``), stable across runs."""
    return _hashed(code, ERROR_COLOURS)
