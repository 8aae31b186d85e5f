"""The probe's checks, sans I/O: what each round sends, which reply answers what, and what is recorded.

:class:`ProbeChecks` is driven by the asyncio shell (``probe._runner``) and by tests directly. The shell
tells it about connections (:meth:`connection_up` / :meth:`connection_down`), hands it every received frame
(:meth:`receive`) and the outcome of each notification POST (:meth:`http_done`), and asks it for each round's
frames (:meth:`start_round`) and for timeouts (:meth:`expire`). Everything measured goes into a
:class:`runstore.samples.SampleAggregator` under the load test's names (``runstore/names.py``), and each
finished check is reported to an optional observer (the alert evaluator).

Two probe users, ``a`` and ``b``. Every round:

* each connected user: ``ping`` -> ``pong`` (``pong``);
* ``a`` -> ``b``: ``chat_message`` -> ``ack`` (``ack:chat_message``) and ``new_message`` on ``b``
  (``delivery:chat``);
* ``a``: ``progress_update`` -> ``progress_sync`` (``sync:progress``) and ``ack`` (``ack:progress_update``);
* with a back-end key: ``POST /api/notifications`` for ``b`` -> ``notification_update`` on ``b``
  (``push:notification``; the POST itself: ``http:notification_create``).

Latencies count from the round's scheduled time (open model). A check whose user is not connected fails
with ``not_connected``; a reply that does not come within ``timeout`` fails with ``timeout``
(``sync_timeout``,
``delivery_timeout``, ``push_timeout`` for the pushes); a connection lost with replies outstanding fails them
with ``connection_lost``.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runstore.names import (
    METRIC_CONNECT,
    METRIC_DELIVERY_CHAT,
    METRIC_HTTP_NOTIFICATION,
    METRIC_PONG,
    METRIC_PUSH_NOTIFICATION,
    METRIC_SEND_LAG,
    METRIC_SYNC_PROGRESS,
    ack_metric,
    error_counter,
    frame_error_counter,
    missed_counter,
    received_counter,
    sent_counter,
    state_gauge,
)
from runstore.samples import SampleAggregator

__all__ = [
    "PROBE_METRICS",
    "PROBE_REQUEST_TYPES",
    "CheckDone",
    "Notify",
    "ProbeChecks",
    "Send",
]

PROBE_METRICS = (
    METRIC_PONG,
    ack_metric("chat_message"),
    METRIC_DELIVERY_CHAT,
    ack_metric("progress_update"),
    METRIC_SYNC_PROGRESS,
    METRIC_PUSH_NOTIFICATION,
    METRIC_HTTP_NOTIFICATION,
    METRIC_CONNECT,
    METRIC_SEND_LAG,
)
"""The latency metrics a probe records (the load test's names)."""
PROBE_REQUEST_TYPES = ("ping", "chat_message", "progress_update", "notification_create", "connect")
"""The checks whose failures count in error-rate rules (``notification_create``: the POST and its push)."""

_SUBJECT = "wsgauge-probe"


@dataclass(frozen=True)
class Send:
    """Send ``frame`` (JSON) on probe user ``user``'s connection."""

    user: int
    frame: dict[str, Any]
    scheduled: float = 0.0
    """The round's scheduled time; report the actual send with :meth:`ProbeChecks.frame_sent`."""


@dataclass(frozen=True)
class Notify:
    """``POST /api/notifications`` with ``body``; report the outcome with :meth:`ProbeChecks.http_done`."""

    token: str
    body: dict[str, Any]


@dataclass(frozen=True)
class CheckDone:
    """A finished check, for the alert evaluator."""

    request_type: str
    ok: bool
    at: float


@dataclass
class _Check:
    request_type: str
    scheduled: float
    outstanding: int
    failed: bool = False


@dataclass
class _Pending:
    check: _Check
    metric: str
    user: int
    deadline: float
    error_type: str
    timeout_code: str
    scheduled: float


@dataclass
class ProbeUser:
    user_id: str
    state: str = "disconnected"
    ever_connected: bool = False


Observer = Callable[[CheckDone], None]
LatencyObserver = Callable[[str, float, float], None]
"""``(metric, value_us, at)``."""


@dataclass
class _Counters:
    rounds: int = 0
    skipped_rounds: int = 0
    checks: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


class ProbeChecks:
    """The probe's check logic for two users.

    Args:
        user_ids: the two probe users' ids (as the credentials name them): ``a`` then ``b``.
        aggregator: where samples go (the shell drains it to the store once a second).
        timeout: seconds a reply may take before the check fails.
        notify: whether to check notifications (the back-end key was given).
        observer: called with every finished check (the alert evaluator's ``observe_check``).
        latency_observer: called with every latency recorded (alerts, Prometheus).
        label: text in every chat message, so an operator can recognise probe traffic.
    """

    def __init__(
        self,
        user_ids: Sequence[str],
        aggregator: SampleAggregator,
        *,
        timeout: float = 5.0,
        notify: bool = False,
        observer: Observer | None = None,
        latency_observer: LatencyObserver | None = None,
        label: str = "probe",
    ) -> None:
        if len(user_ids) != 2:
            raise ValueError("the probe needs exactly two users")
        self.users = [ProbeUser(u) for u in user_ids]
        self.agg = aggregator
        self.timeout = timeout
        self.notify = notify
        self._observer = observer
        self._latency_observer = latency_observer
        self._label = label
        self._ids = itertools.count(1)
        self._nonce = secrets.token_hex(3)
        self._pending: dict[tuple[Any, ...], _Pending] = {}
        self.counters = _Counters()
        self.closing = False

    # --- connections -------------------------------------------------------------------------------------

    def connection_up(self, user: int, at: float, connect_us: float) -> None:
        """``user``'s WebSocket handshake finished at ``at`` after ``connect_us`` µs."""
        probe_user = self.users[user]
        probe_user.state = "connected"
        probe_user.ever_connected = True
        self._record(METRIC_CONNECT, connect_us, at)
        self.agg.incr(sent_counter("connect"), at=at)
        self.agg.event("connected", probe_user.user_id, at=at)
        self._done(_Check("connect", at, 0), at)

    def connect_failed(self, user: int, at: float, code: str, detail: str) -> None:
        """An attempt to connect ``user`` failed (``code``: ``refused``, ``http_401``, ``timeout`` ...)."""
        probe_user = self.users[user]
        self.agg.incr(sent_counter("connect"), at=at)
        self.agg.incr(error_counter("connect", code), at=at)
        self.agg.event("connect_failed", probe_user.user_id, detail, at=at)
        self._done(_Check("connect", at, 0, failed=True), at)
        if probe_user.state == "connected":
            probe_user.state = "reconnecting"

    def connection_down(self, user: int, at: float, reason: str) -> None:
        """``user``'s connection was lost; its outstanding replies fail with ``connection_lost``.

        The user is ``reconnecting`` from now on (the shell keeps trying).
        """
        if self.closing:
            return
        probe_user = self.users[user]
        if probe_user.state == "connected":
            self.agg.event("disconnected", probe_user.user_id, reason, at=at)
        self.agg.event("reconnecting", probe_user.user_id, reason, at=at)
        probe_user.state = "reconnecting"
        for key, pending in list(self._pending.items()):
            if pending.user == user:
                del self._pending[key]
                self._fail(pending, "connection_lost", at)

    def close(self, at: float) -> None:
        """The probe stops: connected users become ``disconnected``; checks still outstanding are dropped
        unjudged (the probe, not the target, cut them short). Call before closing the connections."""
        self.closing = True
        for probe_user in self.users:
            if probe_user.state != "disconnected":
                self.agg.event("disconnected", probe_user.user_id, "probe stopped", at=at)
            probe_user.state = "disconnected"
        self._pending.clear()

    def connected(self, user: int) -> bool:
        return self.users[user].state == "connected"

    def states(self) -> list[str]:
        """Each user's connection state (``connected``, ``reconnecting``, ``disconnected``)."""
        return [u.state for u in self.users]

    def snapshot(self, at: float, queue_sizes: Sequence[int]) -> None:
        """Record the second's gauges: connection states (one observation per user) and queue sizes."""
        for state in ("connected", "reconnecting", "disconnected"):
            self.agg.set_gauge(
                state_gauge(state), [1.0 if u.state == state else 0.0 for u in self.users], at=at
            )
        self.agg.set_gauge("queue_size", [float(q) for q in queue_sizes], at=at)

    # --- rounds --------------------------------------------------------------------------------------------

    def start_round(self, scheduled: float, skipped: int = 0) -> list[Send | Notify]:
        """The frames (and POST) of the round due at ``scheduled``; call as soon as it is due.

        After calling this, send every :class:`Send` and make every :class:`Notify` POST.
        """
        self.counters.rounds += 1
        self.counters.skipped_rounds += skipped
        out: list[Send | Notify] = []
        a, b = 0, 1
        for user in (a, b):
            request_id = self._request_id()
            if self._require((user,), "ping", scheduled):
                self._expect(
                    ("reply", user, request_id), _Check("ping", scheduled, 1), METRIC_PONG, user, scheduled
                )
                frame = {"type": "ping", "ts": int(scheduled * 1000), "requestId": request_id}
                out.append(Send(user, frame, scheduled))
        if self._require((a, b), "chat_message", scheduled):
            request_id, token = self._request_id(), self._token()
            check = _Check("chat_message", scheduled, 2)
            self._expect(("reply", a, request_id), check, ack_metric("chat_message"), a, scheduled)
            self._expect(("chat", token), check, METRIC_DELIVERY_CHAT, b, scheduled, "delivery_timeout")
            out.append(
                Send(
                    a,
                    {
                        "type": "chat_message",
                        "receiverId": self.users[b].user_id,
                        "message": {"content": f"{_SUBJECT} {self._label} {token}", "timestamp": scheduled},
                        "requestId": request_id,
                    },
                    scheduled,
                )
            )
        if self._require((a,), "progress_update", scheduled):
            request_id = self._request_id()
            completion = (next(self._ids) % 10_000) / 100.0
            check = _Check("progress_update", scheduled, 2)
            self._expect(("reply", a, request_id), check, ack_metric("progress_update"), a, scheduled)
            self._expect(("sync", a, completion), check, METRIC_SYNC_PROGRESS, a, scheduled, "sync_timeout")
            out.append(
                Send(
                    a,
                    {
                        "type": "progress_update",
                        "progress": {"subject": _SUBJECT, "topic": self._label, "completion": completion},
                        "requestId": request_id,
                    },
                    scheduled,
                )
            )
        if self.notify and self._require((b,), "notification_create", scheduled):
            token = self._token()
            check = _Check("notification_create", scheduled, 2)
            self._expect(("http", token), check, METRIC_HTTP_NOTIFICATION, b, scheduled, "http_timeout")
            self._expect(("push", token), check, METRIC_PUSH_NOTIFICATION, b, scheduled, "push_timeout")
            body = {"userId": self.users[b].user_id, "title": f"{_SUBJECT} {token}", "body": self._label}
            out.append(Notify(token, body))
        return out

    def _require(self, users: Sequence[int], request_type: str, at: float) -> bool:
        """Whether ``users`` are connected; counts the check as sent, or as failed with ``not_connected``."""
        if all(self.connected(user) for user in users):
            self.agg.incr(sent_counter(request_type), at=at)
            return True
        self.agg.incr(error_counter(request_type, "not_connected"), at=at)
        self._done(_Check(request_type, at, 0, failed=True), at)
        return False

    def _request_id(self) -> str:
        return f"probe-{self._nonce}-{next(self._ids)}"

    def _token(self) -> str:
        return f"{self._nonce}-{next(self._ids)}"

    def _expect(
        self,
        key: tuple[Any, ...],
        check: _Check,
        metric: str,
        user: int,
        scheduled: float,
        timeout_code: str = "timeout",
    ) -> None:
        self._pending[key] = _Pending(
            check, metric, user, scheduled + self.timeout, check.request_type, timeout_code, scheduled
        )

    # --- replies -------------------------------------------------------------------------------------------

    def receive(self, user: int, frame: Mapping[str, Any], at: float) -> None:
        """A JSON frame (already parsed) received on ``user``'s connection at ``at``."""
        kind = frame.get("type")
        if not isinstance(kind, str):
            self.agg.incr(frame_error_counter("malformed_frame"), at=at)
            return
        self.agg.incr(received_counter(kind), at=at)
        data = frame.get("data")
        if kind in ("pong", "ack", "error"):
            request_id = frame.get("requestId")
            pending = self._pending.pop(("reply", user, request_id), None)
            if pending is None:
                code = str(frame.get("code", "late_reply")) if kind == "error" else "late_reply"
                self.agg.incr(frame_error_counter(code), at=at)
            elif kind == "error":
                self._fail(pending, str(frame.get("code") or "error"), at)
            else:
                self._resolve(pending, at)
        elif kind == "new_message" and isinstance(data, Mapping):
            content = data.get("content")
            token = content.rsplit(" ", 1)[-1] if isinstance(content, str) else None
            self._push(("chat", token), "new_message", at)
        elif kind == "progress_sync" and isinstance(data, Mapping):
            self._push(("sync", user, data.get("completion")), "progress_sync", at)
        elif kind == "notification_update" and isinstance(data, Mapping):
            title = data.get("title")
            token = title.rsplit(" ", 1)[-1] if isinstance(title, str) else None
            self._push(("push", token), "notification_update", at)
        else:
            self.agg.incr(frame_error_counter("unexpected_frame"), at=at)

    def _push(self, key: tuple[Any, ...], push_type: str, at: float) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            # A push of an earlier check: redelivered from the backlog after a reconnect, or after a timeout.
            self.agg.incr(missed_counter(push_type), at=at)
        else:
            self._resolve(pending, at)

    def http_done(self, token: str, status: int | None, at: float, code: str = "") -> None:
        """The notification POST of ``token`` answered ``status`` (``None``: failed with ``code``)."""
        pending = self._pending.pop(("http", token), None)
        if pending is None:
            return
        if status is not None and 200 <= status < 300:
            self._resolve(pending, at)
            return
        self._fail(pending, f"http_{status}" if status is not None else code or "network", at)
        push = self._pending.pop(("push", token), None)
        if push is not None:
            self._close(push.check, at)  # no push can come: the check already failed

    def frame_sent(self, scheduled: float, at: float) -> None:
        """A round's frame was written to the socket at ``at``: its lateness is ``send_lag``.

        The probe's own stalls show here (as in the load test's open model), apart from the target's latency.
        """
        if scheduled:
            self.agg.record_latency(METRIC_SEND_LAG, max(0.0, (at - scheduled) * 1e6), at=at)

    def expire(self, now: float) -> None:
        """Fail every expectation whose deadline has passed; call about every 100 ms."""
        for key, pending in list(self._pending.items()):
            if pending.deadline <= now:
                del self._pending[key]
                self._fail(pending, pending.timeout_code, now)

    @property
    def outstanding(self) -> int:
        """Replies and pushes still awaited."""
        return len(self._pending)

    # --- outcomes ------------------------------------------------------------------------------------------

    def _resolve(self, pending: _Pending, at: float) -> None:
        self._record(pending.metric, max(0.0, (at - pending.scheduled) * 1e6), at)
        self._close(pending.check, at)

    def _record(self, metric: str, value_us: float, at: float) -> None:
        self.agg.record_latency(metric, value_us, at=at)
        if self._latency_observer is not None:
            self._latency_observer(metric, value_us, at)

    def _fail(self, pending: _Pending, code: str, at: float) -> None:
        self.agg.incr(error_counter(pending.error_type, code), at=at)
        pending.check.failed = True
        self._close(pending.check, at)

    def _close(self, check: _Check, at: float) -> None:
        check.outstanding -= 1
        if check.outstanding <= 0:
            self._done(check, at)

    def _done(self, check: _Check, at: float) -> None:
        counters = self.counters
        counters.checks[check.request_type] = counters.checks.get(check.request_type, 0) + 1
        if check.failed:
            counters.failures[check.request_type] = counters.failures.get(check.request_type, 0) + 1
        if self._observer is not None:
            self._observer(CheckDone(check.request_type, not check.failed, at))
