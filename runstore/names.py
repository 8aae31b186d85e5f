"""Names of what a run records: latency metrics, counters, gauges and connection events.

These strings are the contract between the load test that writes a run and the monitor and reports that read
it (``docs/run-store.md``). Names are stable and never carry per-user ids.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALERT_EVENTS",
    "CONNECTION_EVENTS",
    "CONNECTION_STATES",
    "COUNTER_ERRORS",
    "COUNTER_GENERATOR_GC",
    "COUNTER_MISSED",
    "COUNTER_RECEIVED",
    "COUNTER_SENT",
    "EVENT_ALERT_FIRING",
    "EVENT_ALERT_RESOLVED",
    "EVENT_KINDS",
    "GAUGE_GENERATOR_CPU",
    "GAUGE_GENERATOR_GC_MAX_PAUSE",
    "GAUGE_GENERATOR_GC_PAUSE",
    "GAUGE_GENERATOR_LOOP_LAG",
    "GAUGE_QUEUE_SIZE",
    "GENERATOR_GAUGES",
    "LATENCY_METRICS",
    "METRIC_ACK_PREFIX",
    "METRIC_CONNECT",
    "METRIC_DELIVERY_CHAT",
    "METRIC_HTTP_NOTIFICATION",
    "METRIC_PONG",
    "METRIC_PUSH_NOTIFICATION",
    "METRIC_SEND_LAG",
    "METRIC_SYNC_PROGRESS",
    "MISSED_DELIVERY_CHAT",
    "MISSED_PUSH_NOTIFICATION",
    "ack_metric",
    "error_counter",
    "frame_error_counter",
    "generator_gc_counter",
    "missed_counter",
    "received_counter",
    "request_type",
    "sent_counter",
    "state_gauge",
]

# --- latency metrics (microsecond HdrHistograms, one per second) -------------------------------------------
METRIC_CONNECT: Final = "connect"
"""WebSocket opening handshake, TCP connect to the first usable frame slot."""
METRIC_ACK_PREFIX: Final = "ack:"
"""``ack:<type>``: a client frame carrying ``requestId`` to its ``ack`` (effect durably stored)."""
METRIC_PONG: Final = "pong"
"""``ping`` to ``pong``: the seed PerformanceMonitor's ``websocketLatency``."""
METRIC_DELIVERY_CHAT: Final = "delivery:chat"
"""``chat_message`` sent by one user to ``new_message`` received by its receiver."""
METRIC_PUSH_NOTIFICATION: Final = "push:notification"
"""``POST /api/notifications`` issued to ``notification_update`` received by the user."""
METRIC_SYNC_PROGRESS: Final = "sync:progress"
"""``progress_update`` sent to ``progress_sync`` received on the same connection."""
METRIC_HTTP_NOTIFICATION: Final = "http:notification_create"
"""The back end's ``POST /api/notifications`` request, to its HTTP response."""
METRIC_SEND_LAG: Final = "send_lag"
"""Open model only: actual minus scheduled send time. A growing lag means the generator saturated."""


def ack_metric(message_type: str) -> str:
    """Return the latency metric for acks of ``message_type`` (``ack:chat_message``)."""
    return METRIC_ACK_PREFIX + message_type


LATENCY_METRICS: Final = (
    METRIC_CONNECT,
    ack_metric("chat_message"),
    ack_metric("notification_read"),
    ack_metric("progress_update"),
    ack_metric("batch"),
    METRIC_PONG,
    METRIC_DELIVERY_CHAT,
    METRIC_PUSH_NOTIFICATION,
    METRIC_SYNC_PROGRESS,
    METRIC_HTTP_NOTIFICATION,
    METRIC_SEND_LAG,
)
"""The metrics a wsgauge load test records (a run may have a subset; readers accept any name)."""

# --- counters (additive integers per second) --------------------------------------------------------------
COUNTER_SENT: Final = "sent."
COUNTER_RECEIVED: Final = "recv."
COUNTER_ERRORS: Final = "errors."


def sent_counter(message_type: str) -> str:
    """Frames of ``message_type`` sent by clients (``sent.chat_message``)."""
    return COUNTER_SENT + message_type


def received_counter(message_type: str) -> str:
    """Frames of ``message_type`` received by clients (``recv.new_message``)."""
    return COUNTER_RECEIVED + message_type


def error_counter(message_type: str, code: str) -> str:
    """Errors for ``message_type`` by ``code`` (``errors.chat_message.rate_limited``).

    ``message_type`` is the client frame the error answers, or ``connect``/``frame`` for errors that belong
    to no request (a failed handshake, a malformed server frame). ``code`` is the server's error code, or a
    client-side kind such as ``timeout``, ``connection_lost`` or ``malformed_frame``.
    """
    return f"{COUNTER_ERRORS}{message_type}.{code}"


def frame_error_counter(code: str) -> str:
    """A server frame that answers no request, by ``code`` (``errors.frame.malformed_frame``).

    Client-side codes: ``malformed_frame`` (not JSON, not an object, a mistyped field), ``unexpected_frame``
    (unknown ``type``, binary frame), ``late_reply`` (after its timeout), ``handler_failed``; otherwise the
    server's ``error`` code when the frame carries no known ``requestId``.
    """
    return error_counter("frame", code)


COUNTER_MISSED: Final = "missed."
"""``missed.<push type>``: pushes sent while the receiver was away, delivered from its backlog on return."""


def missed_counter(push_type: str) -> str:
    """Backlog deliveries of ``push_type`` (``missed.new_message``), kept out of the live latencies."""
    return COUNTER_MISSED + push_type


MISSED_DELIVERY_CHAT: Final = "missed:chat"
"""Locust request name of a backlog ``new_message`` (its "latency" is the time away; not in the store)."""
MISSED_PUSH_NOTIFICATION: Final = "missed:notification"
"""Locust request name of a backlog ``notification_update``."""

# --- gauges (per-user observations, one snapshot per worker per second) ----------------------------------
GAUGE_QUEUE_SIZE: Final = "queue_size"
"""Client-side outbound queue per user (debounced, batched, offline-cached): mean = sum / count."""

CONNECTION_STATES: Final = ("connected", "reconnecting", "disconnected")
"""The seed's ``connectionStatus``. Each user observes 1 for its state and 0 for the others, so ``sum`` is the
number of users in that state."""


def state_gauge(state: str) -> str:
    """Gauge name of a connection state (``users.connected``)."""
    return f"users.{state}"


# --- the load generator's own health (one observation per generating process and second) ---------------
# Workers merge as gauges do: ``max`` is the worst process, ``sum / count`` the mean process, ``count`` the
# processes reporting. ``runstore.health.generator_bound`` says which seconds the generator limited.
GAUGE_GENERATOR_LOOP_LAG: Final = "generator.loop_lag_ms"
"""Worst event-loop (gevent hub) lag of the second, ms: how late a timer due in it woke (idle: 0-1 ms)."""
GAUGE_GENERATOR_GC_PAUSE: Final = "generator.gc_pause_ms"
"""Total time the process spent in garbage collections during the second, ms."""
GAUGE_GENERATOR_GC_MAX_PAUSE: Final = "generator.gc_max_pause_ms"
"""Longest single garbage collection of the second, ms."""
GAUGE_GENERATOR_CPU: Final = "generator.cpu"
"""Process CPU time (all threads) over wall time: 1.0 is one full core."""
GENERATOR_GAUGES: Final = (
    GAUGE_GENERATOR_LOOP_LAG,
    GAUGE_GENERATOR_GC_PAUSE,
    GAUGE_GENERATOR_GC_MAX_PAUSE,
    GAUGE_GENERATOR_CPU,
)
COUNTER_GENERATOR_GC: Final = "generator.gc."


def generator_gc_counter(generation: int) -> str:
    """Garbage collections of ``generation`` (0-2) in the generating processes (``generator.gc.gen2``)."""
    return f"{COUNTER_GENERATOR_GC}gen{generation}"


# --- connection events (one row per transition) ------------------------------------------------------------
CONNECTION_EVENTS: Final = ("connected", "disconnected", "reconnecting", "connect_failed", "gave_up")
# A probe's alerts (user = the rule's name, detail = JSON {rule, value, threshold, window_s}).
EVENT_ALERT_FIRING: Final = "alert_firing"
EVENT_ALERT_RESOLVED: Final = "alert_resolved"
ALERT_EVENTS: Final = (EVENT_ALERT_FIRING, EVENT_ALERT_RESOLVED)
EVENT_KINDS: Final = CONNECTION_EVENTS + ALERT_EVENTS
"""Every ``events.kind`` the store takes."""


# --- which request a latency metric answers (one mapping for the monitor, the reports and the gate) -------
_REQUEST_OF_METRIC: Final = {
    METRIC_PONG: "ping",
    METRIC_CONNECT: "connect",
    METRIC_SYNC_PROGRESS: "progress_update",
}


def request_type(metric: str) -> str | None:
    """The client frame whose ``sent.<type>`` and ``errors.<type>.*`` counters belong to ``metric``.

    ``ack:batch`` -> ``batch``, ``pong`` -> ``ping``, ``sync:progress`` -> ``progress_update``, ``connect`` ->
    ``connect``; metrics that answer no request of their own (``delivery:chat``, ``push:notification``,
    ``send_lag`` ...) give ``None``.
    """
    if metric.startswith(METRIC_ACK_PREFIX):
        return metric[len(METRIC_ACK_PREFIX) :]
    return _REQUEST_OF_METRIC.get(metric)
