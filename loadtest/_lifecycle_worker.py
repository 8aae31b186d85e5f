"""A worker's lifecycle (``locust --worker``, or a process forked by ``--processes``).

A worker has no store and no target of its own: the master briefs it at each spawn (the target and the run
id ride in ``parsed_options``), it runs its users, samples them at 1 Hz into an :class:`Outbox` and ships
closed seconds with Locust's periodic report. When its users stop (the master's ``stop``, its
``wsgauge_finish``, or the worker quitting on its own) it sends everything left in one ``wsgauge_final``
message, so that the master can write the run's last second before it computes the summary.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import urllib.parse
from typing import Any

import gevent
from locust.runners import STATE_INIT, STATE_STOPPED

from loadtest._lifecycle_base import MSG_FINAL, MSG_FINISH, OPT_RUN_ID, OPT_TARGET, ActiveRun, RunLifecycle
from loadtest._settings import SettingsError, settings_from
from loadtest._shipping import PAYLOAD_KEY, Outbox, StoreThread
from loadtest._target import Target

__all__ = ["WorkerLifecycle", "reached_through"]

log = logging.getLogger("wsgauge")


def reached_through(target: Target, master_host: str) -> Target:
    """The embedded target as this worker reaches it: on the master's machine, at ``--master-host``.

    The master only knows the addresses it listens on, not which of them a worker on another machine can
    use; the worker knows one that works, since it reached the master there. Locust's default
    ``--master-host`` is loopback, which is right for workers on the master's own machine.
    """
    if not master_host:
        return target
    host = f"[{master_host}]" if ":" in master_host else master_host

    def moved(url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        return parts._replace(netloc=f"{host}:{parts.port}").geturl()

    return dataclasses.replace(target, ws_url=moved(target.ws_url), http_base=moved(target.http_base))


class WorkerLifecycle(RunLifecycle):
    """Runs users for the master's run and ships their samples to it."""

    role = "worker"

    def __init__(self, environment: Any, runner: Any, web_ui: Any) -> None:
        super().__init__(environment, runner, web_ui)
        self.store_thread: StoreThread | None = None
        """Encodes histograms off the gevent hub (created at the first run)."""

    def init(self) -> None:
        self.runner.register_message(MSG_FINISH, self._on_finish_request)
        self.environment.events.quitting.add_listener(self._on_quitting_first)

    def test_start(self) -> None:
        wire = getattr(self.options, OPT_TARGET, None)
        run_id = getattr(self.options, OPT_RUN_ID, None)
        if wire is None or run_id is None:
            log.error("wsgauge: the master sent no target; is it running `locust -f loadtest`?")
            return
        target = Target.from_wire(wire)
        if target.embedded:
            target = reached_through(target, str(getattr(self.options, "master_host", "") or ""))
        try:
            settings = settings_from(self._options_for(target))
        except SettingsError as exc:
            log.error("wsgauge: %s", exc)
            return
        tag = f"w{max(0, int(getattr(self.runner, 'worker_index', 0)))}"
        run = ActiveRun(int(run_id), "", time.time(), target, settings)
        if self.store_thread is None:
            self.store_thread = StoreThread()
        run.outbox = Outbox(int(run_id), tag, self.store_thread)
        run.sink = run.outbox
        run.state = self._install_runtime(settings, target, tag)
        self.run = run
        run.greenlets.append(gevent.spawn(self._sampler_loop, run))

    def test_stop(self) -> None:
        """Drain and ship the last samples at once: before Locust tells the master that this worker stopped
        (``client_stopped``) or quits, so that the master has them whatever way the run ends."""
        run = self.run
        if run is not None and not run.finished:
            self._stop_sampling(run)
            self._ship_final(run)

    def report_to_master(self, data: dict[str, Any]) -> None:
        """Attach the closed seconds to Locust's periodic report."""
        run = self.run
        if run is not None and run.outbox is not None and len(run.outbox):
            data[PAYLOAD_KEY] = run.outbox.take()

    def _on_finish_request(self, environment: Any, msg: Any, **_: Any) -> None:
        """The master is finalising; stop the users and send everything left."""
        self._finish(int((msg.data or {}).get("run_id", -1)))

    def _finish(self, run_id: int) -> None:
        if self.runner.state not in (STATE_STOPPED, STATE_INIT):
            self.runner.stop()  # fires test_stop here: the last samples are drained and shipped
        run = self.run
        if run is None or run.outbox is None or run.run_id != run_id:
            self._send(Outbox(run_id, "").take(final=True))  # nothing of that run here: do not wait for it
        elif not run.outbox.sent_final:
            self._stop_sampling(run)
            self._ship_final(run)

    def _ship_final(self, run: ActiveRun) -> None:
        if run.outbox is not None and not run.outbox.sent_final:
            self._send(run.outbox.take(final=True))

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            self.runner.send_message(MSG_FINAL, payload)
        except Exception as exc:  # the master is gone: nothing more can be saved
            log.warning("wsgauge: cannot send the last samples to the master: %s", exc)

    def _on_quitting_first(self, environment: Any, **_: Any) -> None:
        """Quitting on its own (Ctrl-C, SIGTERM): ship the rest before Locust tells the master."""
        run = self.run
        if run is not None and run.outbox is not None and not run.outbox.sent_final:
            self._finish(run.run_id)
