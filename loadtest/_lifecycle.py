"""The run lifecycle: Locust event listeners that turn ``locust -f loadtest`` into a stored wsgauge run.

Imported once (through :mod:`loadtest._integration`, the entry files' first import); it registers its
listeners on Locust's global ``events`` at import time and, at ``init``, picks the lifecycle of this kind of
process once: :class:`~loadtest._lifecycle_coordinator.LocalLifecycle` (the only process),
:class:`~loadtest._lifecycle_coordinator.MasterLifecycle` or
:class:`~loadtest._lifecycle_worker.WorkerLifecycle`.

``init_command_line_parser``
    registers wsgauge's options (:func:`loadtest._settings.add_arguments`).
``init``
    validates the options (a bad one: one line on stderr, exit 2); on the master or the only process,
    starts the embedded reference server when there is no ``--host`` (or checks that ``--host`` answers:
    ``cannot reach ws://...: connection refused``, exit 1) and opens the run store.
``test_start``
    master / local: creates the run in the store and briefs the workers through ``parsed_options`` (Locust
    forwards custom options with every spawn message); every process with users installs its
    :class:`~loadtest._process_state.Runtime` and starts a 1 Hz sampler.
``report_to_master`` / ``worker_report``
    workers ship closed seconds as wire dicts; the master merges and writes them as they arrive.
``test_stop``
    the master asks every worker to stop and send its last samples (``wsgauge_finish`` /
    ``wsgauge_final`` messages), then finalises the run: status, JSON summary.
``quitting`` / ``quit``
    Ctrl-C or SIGTERM during a run: the run is finalised as ``interrupted``; the embedded server is stopped;
    the summary table and the HTML report come last.

Exit codes follow Locust: 0, or ``--exit-code-on-error`` (default 1) if any request failed; 1 if the target
is unreachable or a run failed; 2 for unusable options.
"""

from __future__ import annotations

from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtest._lifecycle_base import Downstream, RunLifecycle, forward_interrupts
from loadtest._lifecycle_coordinator import FINAL_WAIT_S, LocalLifecycle, MasterLifecycle
from loadtest._lifecycle_worker import WorkerLifecycle
from loadtest._settings import add_arguments

__all__ = ["DOWNSTREAM", "FINAL_WAIT_S", "RunLifecycle", "choose_lifecycle", "lifecycle"]

DOWNSTREAM = Downstream()
"""The monitor and report hooks; :mod:`loadtest._integration` fills them in at import."""

_ATTRIBUTE = "wsgauge_lifecycle"
_STATES: list[RunLifecycle] = []
"""The lifecycles of this process (one per Locust environment; Locust's main creates exactly one). The
``report_to_master``, ``worker_report`` and ``quit`` events carry no environment, hence this list."""


def choose_lifecycle(environment: Any, runner: Any, web_ui: Any) -> RunLifecycle:
    """The lifecycle for this kind of Locust process (decided by its runner, once)."""
    if isinstance(runner, WorkerRunner):
        return WorkerLifecycle(environment, runner, web_ui)
    if isinstance(runner, MasterRunner):
        return MasterLifecycle(environment, runner, web_ui, DOWNSTREAM)
    return LocalLifecycle(environment, runner, web_ui, DOWNSTREAM)


def lifecycle(environment: Any) -> RunLifecycle | None:
    """The process's lifecycle, or ``None`` if wsgauge did not initialise this environment."""
    return getattr(environment, _ATTRIBUTE, None)


# --- listeners (registered once, at import) -----------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _on_command_line_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_: Any) -> None:
    if environment.parsed_options is None or runner is None:
        return
    state = choose_lifecycle(environment, runner, web_ui)
    setattr(environment, _ATTRIBUTE, state)
    _STATES.append(state)
    state.init()


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    if (state := lifecycle(environment)) is not None:
        state.test_start()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    if (state := lifecycle(environment)) is not None:
        state.test_stop()


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    for state in _STATES:
        state.report_to_master(data)


@events.worker_report.add_listener
@forward_interrupts
def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    for state in _STATES:
        state.worker_report(client_id, data)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    if (state := lifecycle(environment)) is not None:
        state.quitting()


@events.quit.add_listener
def _on_quit(**_: Any) -> None:
    for state in _STATES:
        state.quit()
