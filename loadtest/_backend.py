"""The back end of the target's system: notifications for the students, at ``--notification-rate`` in total.

The back end is part of the system under test (the app server that creates notifications), not one of its
users, so it is no Locust ``User``: ``-u N`` (or a ``LoadTestShape``) counts students only, and ``-u 1``
spawns one student who gets notifications.

Every Locust process that runs students runs one :class:`NotificationBackend` greenlet for its own live
students: it POSTs to the target's ``/api/notifications`` for a random one of them, so its notification
latency (``push:notification``) and ``notification_read`` traffic come from every process. The rate is split
in proportion to the students each process has (:func:`rate_shares`), so the total is what the user asked
for however many workers there are:

- the only process (no ``--processes``/``--master``) runs at the whole rate;
- a master counts each worker's students (from the user counts the workers report to it) every
  :data:`COORDINATE_INTERVAL_S` and sends each worker its share (:data:`MSG_RATE`); a worker posts nothing
  until it is told.

The listeners are registered once, at import (``loadtest/backend.py`` imports this module). They rely on the
run lifecycle's ``test_start`` listener (``loadtest._lifecycle``, imported first) having installed the
process's :class:`~loadtest._process_state.Runtime`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gevent
import gevent.event
import orjson
from geventhttpclient import HTTPClient
from locust import events
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner

from loadtest._client import notification_body
from loadtest._process_state import Runtime, runtime
from loadtest._schedule import rate_shares, students_per_worker
from loadtest._users import WsUser
from loadtest.user_api import OpenSchedule
from runstore.names import METRIC_HTTP_NOTIFICATION, error_counter, sent_counter

__all__ = [
    "COORDINATE_INTERVAL_S",
    "MSG_RATE",
    "NotificationBackend",
    "student_class_names",
]

log = logging.getLogger("wsgauge")

MSG_RATE = "wsgauge_notification_rate"
"""Master -> worker: ``{"rate": notifications per second}`` this worker posts for its students."""
COORDINATE_INTERVAL_S = 0.5
"""How often a master recomputes the workers' shares (and sends the ones that changed)."""
RESEND_INTERVAL_S = 5.0
"""A master also resends unchanged shares this often (a worker that joined late or lost one catches up)."""
_ATTRIBUTE = "wsgauge_backend"


def student_class_names(user_classes: Iterable[type]) -> frozenset[str]:
    """Names of the user classes that are students (:class:`~loadtest._users.WsUser`: they get notified)."""
    return frozenset(c.__name__ for c in user_classes if isinstance(c, type) and issubclass(c, WsUser))


class NotificationBackend:
    """Creates notifications for this process's live students through the target's HTTP API.

    Each POST goes to ``{http_base}/api/notifications`` with the admin bearer token, with the send time in
    the body (``sent_at=``) so the receiving student measures create -> push. Sends follow a fixed-rate
    schedule (:class:`~loadtest._schedule.OpenSchedule`), not think times, so the rate holds whatever the
    server's latency; :meth:`set_rate` changes it (a new schedule from now).

    Args:
        environment: the Locust environment (its ``request`` event shows the POSTs in Locust's stats).
        state: the process's runtime: target, admin token, live users, aggregator.
        rate: notifications per second posted by this process.
        tag: names the process in the seed of its random choices (``w0``, ``w1`` ...).
    """

    titles: ClassVar[tuple[str, ...]] = (
        "Assignment graded",
        "New course material",
        "Reminder: quiz tomorrow",
    )
    """Notification titles, picked at random."""
    http_timeout_s: ClassVar[float] = 10.0
    """Connect and network timeout of the HTTP client."""
    stop_wait_s: ClassVar[float] = 2.0
    """At stop, how long a POST in flight may finish before the greenlet is killed."""
    recipients_max_age_s: ClassVar[float] = 1.0
    """The list of live students is rebuilt at least this often (a user replaced by another)."""

    def __init__(self, environment: Any, state: Runtime, rate: float = 0.0, tag: str = "w0") -> None:
        self.environment = environment
        self.runtime = state
        self.aggregator = state.aggregator
        self.rng = random.Random(f"{state.settings.seed}:backend-{tag}")
        self.rate = max(0.0, rate)
        self.schedule: OpenSchedule | None = None
        self.created = 0
        """Notifications posted (whatever the answer)."""
        self._http: HTTPClient | None = None
        self._headers = {"Content-Type": "application/json"}
        if state.admin_token:
            self._headers["Authorization"] = f"Bearer {state.admin_token}"
        self._recipients: list[str] = []
        self._recipients_at = 0.0
        self._changed = gevent.event.Event()
        self._running = False
        self._greenlet: gevent.Greenlet | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        """Stop sending; a POST in flight may finish (at most :attr:`stop_wait_s`)."""
        self._running = False
        self._changed.set()
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.join(self.stop_wait_s)
            greenlet.kill(block=False)
        if self._http is not None:
            self._http.close()
            self._http = None

    def set_rate(self, rate: float) -> None:
        """Post ``rate`` notifications per second from now on (0: none)."""
        rate = max(0.0, float(rate)) if math.isfinite(rate) else 0.0
        if not math.isclose(rate, self.rate, rel_tol=1e-9, abs_tol=1e-12):
            self.rate = rate
            self._changed.set()

    def _loop(self) -> None:
        while self._running:
            rate = self.rate
            if rate <= 0:
                self.schedule = None
                self._changed.wait(1.0)
                self._changed.clear()
                continue
            if self.schedule is None or self.schedule.rate != rate:
                self.schedule = OpenSchedule(rate, time.time(), self.rng)
            delay = self.schedule.peek() - time.time()
            if delay > 0 and self._changed.wait(delay):
                self._changed.clear()  # a new rate, or stopping: look again
                continue
            self.schedule.next_send_at()
            self.create_notification()

    # -- sending ---------------------------------------------------------------------------------------------

    def recipients(self) -> list[str]:
        """User ids of this process's live students, in a stable order (the seeded choice repeats).

        Sorting thousands of ids for every notification would cost more than the POST, so the list is
        rebuilt only when the number of users changes, or after :attr:`recipients_max_age_s`.
        """
        users = self.runtime.users
        now = time.monotonic()
        if len(users) != len(self._recipients) or now - self._recipients_at > self.recipients_max_age_s:
            self._recipients = sorted(user.user_id for user in list(users))
            self._recipients_at = now
        return self._recipients

    def create_notification(self, user_id: str | None = None) -> None:
        """POST a notification for ``user_id``, or a random live student (``http:notification_create``)."""
        if user_id is None:
            recipients = self.recipients()
            if not recipients:
                return
            user_id = self.rng.choice(recipients)
        if self._http is None:
            self._http = HTTPClient.from_url(
                self.runtime.http_base,
                connection_timeout=self.http_timeout_s,
                network_timeout=self.http_timeout_s,
                concurrency=1,
            )
        sent_at = time.time()
        body = orjson.dumps(
            {
                "userId": user_id,
                "title": self.rng.choice(self.titles),
                "body": notification_body("Open the app for details.", sent_at),
            }
        )
        self.aggregator.incr(sent_counter("notification_create"))
        self.created += 1
        start = time.perf_counter()
        exception: Exception | None = None
        length = 0
        try:
            response = self._http.post("/api/notifications", body=body, headers=self._headers)
            payload = response.read()
            length = len(payload)
            if response.status_code != 201:
                code = f"http_{response.status_code}"
                exception = RuntimeError(f"{code}: {payload[:200]!r}")
        except Exception as exc:  # network errors: counted, never fatal
            code = "network"
            exception = exc
            self._http.close()
            self._http = None
        elapsed = time.perf_counter() - start
        if exception is None:
            self.aggregator.record_latency(METRIC_HTTP_NOTIFICATION, elapsed * 1e6)
        else:
            self.aggregator.incr(error_counter("notification_create", code))
        self.environment.events.request.fire(
            request_type="HTTP",
            name=METRIC_HTTP_NOTIFICATION,
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=exception,
            context={},
        )


# --- per process: who posts, at what rate ----------------------------------------------------------------


@dataclass
class _ProcessBackend:
    """This process's part in the back end during one run (or between runs)."""

    rate: float = 0.0
    """Worker: the share the master last sent (kept if it arrives before the run's ``test_start``)."""
    backend: NotificationBackend | None = None
    coordinator: gevent.Greenlet | None = None
    sent: dict[str, float] = field(default_factory=dict)


def _process(environment: Any) -> _ProcessBackend:
    state = getattr(environment, _ATTRIBUTE, None)
    if state is None:
        state = _ProcessBackend()
        setattr(environment, _ATTRIBUTE, state)
    return state


def _total_rate(environment: Any) -> float:
    return _total_rate_of(environment.parsed_options)


def _total_rate_of(options: Any) -> float:
    try:
        rate = float(getattr(options, "notification_rate", 0.0) or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return rate if math.isfinite(rate) and rate > 0 else 0.0


def _no_admin_token(options: Any) -> bool:
    """An external ``--host`` without ``--admin-token``: say once that there is no back end, and why.

    Its every POST would fail (``http_401``) and fail the run; the embedded server always has a token.
    """
    if not getattr(options, "host", None) or getattr(options, "admin_token", None):
        return False
    if _total_rate_of(options) > 0:
        log.warning(
            "wsgauge: no --admin-token for --host: the back end creates no notifications (give the "
            "target's admin token, or --notification-rate 0 to say so)"
        )
    return True


def _coordinate(environment: Any, runner: MasterRunner, total_rate: float) -> None:
    """Master, during a run: send each worker its share of the rate when it changes (and now and then)."""
    state = _process(environment)
    students = student_class_names(environment.user_classes)
    last_resend = 0.0
    while True:
        workers = {
            c.id: dict(c.user_classes_count or {}) for c in runner.clients.all if c.state != STATE_MISSING
        }
        shares = rate_shares(total_rate, students_per_worker(workers, students))
        now = time.monotonic()
        resend = now - last_resend >= RESEND_INTERVAL_S
        if resend:
            last_resend = now
        for worker, rate in shares.items():
            previous = state.sent.get(worker)
            if resend or previous is None or not math.isclose(previous, rate, rel_tol=1e-9, abs_tol=1e-12):
                try:
                    runner.send_message(MSG_RATE, {"rate": rate}, client_id=worker)
                except Exception as exc:  # a worker that just left: the next round forgets it
                    log.debug("wsgauge: cannot send the notification rate to %s: %s", worker, exc)
                    continue
                state.sent[worker] = rate
        for worker in set(state.sent) - set(shares):
            del state.sent[worker]
        gevent.sleep(COORDINATE_INTERVAL_S)


def _on_rate(environment: Any, msg: Any, **_: Any) -> None:
    """Worker: the master sent this worker's share."""
    try:
        rate = float((msg.data or {}).get("rate", 0.0))
    except (TypeError, ValueError, AttributeError):
        return
    state = _process(environment)
    state.rate = rate
    if state.backend is not None:
        state.backend.set_rate(rate)


def _stop(environment: Any, *, forget_rate: bool = True) -> None:
    state = getattr(environment, _ATTRIBUTE, None)
    if state is None:
        return
    if forget_rate:
        state.rate = 0.0  # the next run's share comes from the master again
    if state.coordinator is not None:
        state.coordinator.kill(block=False)
        state.coordinator = None
        state.sent.clear()
    if state.backend is not None:
        backend, state.backend = state.backend, None
        backend.stop()


@events.init.add_listener
def _on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    if isinstance(runner, WorkerRunner):
        runner.register_message(MSG_RATE, _on_rate)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if environment.parsed_options is None or runner is None:
        return
    _stop(environment, forget_rate=False)  # a run that did not stop cleanly; keep a share already sent
    state = _process(environment)
    if isinstance(runner, MasterRunner):
        total = _total_rate(environment)
        if total > 0 and not _no_admin_token(environment.parsed_options):
            state.coordinator = gevent.spawn(_coordinate, environment, runner, total)
        return
    try:
        process_runtime = runtime(environment)
    except RuntimeError:  # the lifecycle could not set up this run (it said why)
        return
    if not process_runtime.admin_token:
        if isinstance(runner, LocalRunner):
            _no_admin_token(environment.parsed_options)
        return
    if isinstance(runner, WorkerRunner):
        rate, tag = state.rate, f"w{max(0, int(getattr(runner, 'worker_index', 0)))}"
    elif isinstance(runner, LocalRunner):
        rate, tag = process_runtime.settings.notification_rate, "w0"
    else:
        return
    state.backend = NotificationBackend(environment, process_runtime, rate, tag)
    state.backend.start()


@events.test_stopping.add_listener
def _on_test_stopping(environment: Any, **_: Any) -> None:
    """Before the users stop: no notification is created for a student who is leaving."""
    _stop(environment)


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    _stop(environment)
