"""What every wsgauge run lifecycle shares: the run in progress, the 1 Hz sampler, stopping it, and errors.

A Locust process is exactly one of three kinds (the only process, a master, a worker) and each kind does
different work at every event; :mod:`loadtest._lifecycle` picks the matching class once, at ``init``, so no
method has to ask which kind it is. This module holds the parts two or three kinds need.
"""

from __future__ import annotations

import argparse
import copy
import functools
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gevent

from loadtest._process_state import Credentials, IdentityAllocator, Runtime, install
from loadtest._scrape import MetricsScraper
from loadtest._settings import LoadSettings
from loadtest._shipping import Outbox, seconds_until_next_tick, tick
from loadtest._target import Target

__all__ = [
    "EXIT_BAD_OPTIONS",
    "EXIT_UNREACHABLE",
    "MSG_FINAL",
    "MSG_FINISH",
    "OPT_RUN_ID",
    "OPT_TARGET",
    "ActiveRun",
    "Downstream",
    "FinishedRun",
    "RunLifecycle",
    "die",
    "forward_interrupts",
]

MSG_FINISH = "wsgauge_finish"
"""Master -> worker: the run is being finalised; stop and send the last samples."""
MSG_FINAL = "wsgauge_final"
"""Worker -> master: the last samples of a worker."""
OPT_TARGET = "wsgauge_target"
OPT_RUN_ID = "wsgauge_run_id"
"""Attributes of ``parsed_options`` that brief the workers (Locust forwards them with every spawn message)."""
log = logging.getLogger("wsgauge")

EXIT_UNREACHABLE = 1
EXIT_BAD_OPTIONS = 2


@dataclass
class Downstream:
    """What runs downstream of the run store, wired in by the entry point (:mod:`loadtest._integration`).

    The lifecycle calls these without importing ``monitor`` or ``reports``, so the load generator depends on
    the store only; a hook left ``None`` means that part is not wired in.
    """

    mount_monitor: Callable[[Any, argparse.Namespace, Path], None] | None = None
    """``(web_ui, options, results_path)``: serve the live monitor inside Locust's web UI."""
    write_report: Callable[[Path, int], Path] | None = None
    """``(results_path, run_id) -> report file``: write the run's HTML report."""


def die(message: str, code: int, *, forked_workers: bool = False) -> None:
    """One line on stderr, no traceback, exit with ``code``.

    With ``--processes``, the forked workers are still waiting for this master to acknowledge them (Locust
    would give up on them only after a minute): they are terminated first.
    """
    sys.stderr.write(f"wsgauge: {message}\n")
    sys.stderr.flush()
    if forked_workers:
        _terminate_forked_workers()
    raise SystemExit(code)


def _terminate_forked_workers() -> None:
    try:
        import psutil

        children = psutil.Process().children(recursive=False)
    except Exception:
        return
    me = psutil.Process()
    for child in children:
        try:  # Locust's forked workers run the same command line as this master
            if child.cmdline() == me.cmdline():
                child.terminate()
        except psutil.Error:
            continue


def forward_interrupts(loop: Callable[..., None]) -> Callable[..., None]:
    """Wrap a greenlet body, or a handler that runs in a greenlet of Locust's (the master's message listener
    calls the worker-report and final-samples handlers), so that a Ctrl-C landing in it reaches Locust's main
    greenlet, quietly.

    A SIGINT raises ``KeyboardInterrupt`` in whichever greenlet runs at that instant (for example one waiting
    on the store thread). gevent would print it as a crash and then rethrow it into the main greenlet, where
    Locust shuts down; this does the rethrow without the misleading traceback.
    """

    @functools.wraps(loop)
    def body(*args: Any, **kwargs: Any) -> None:
        try:
            loop(*args, **kwargs)
        except KeyboardInterrupt as exc:
            gevent.get_hub().handle_system_error(type(exc), exc)

    return body


@dataclass
class ActiveRun:
    """One run between ``test_start`` and its finalisation."""

    run_id: int
    name: str
    started_at: float
    target: Target
    settings: LoadSettings
    state: Runtime | None = None
    sink: Callable[..., None] | None = None
    outbox: Outbox | None = None
    greenlets: list[gevent.Greenlet] = field(default_factory=list)
    scraper: MetricsScraper | None = None
    pending_workers: set[str] = field(default_factory=set)
    """Workers the master has asked for their last samples and still waits for."""
    shipping_workers: set[str] = field(default_factory=set)
    """Workers that shipped samples of this run (the master's view)."""
    final_workers: set[str] = field(default_factory=set)
    """Workers whose last samples of this run have arrived (the master's view)."""
    incomplete: str | None = None
    """Why samples of some worker are missing from the run (stored in the summary), or ``None``."""
    peak_users: int = 0
    """The most Locust users running at once (all personas, on all workers), seen once a second."""
    finished: bool = False
    store_error: bool = False


@dataclass(frozen=True)
class FinishedRun:
    run_id: int
    name: str
    status: str
    summary: dict[str, Any]


class RunLifecycle:
    """wsgauge's state in one Locust process; the subclass says which kind of process it is.

    Every event handler is a no-op here, so each kind overrides only the events it takes part in.
    """

    role: ClassVar[str]
    """``local``, ``master`` or ``worker``: stored with the run."""

    def __init__(self, environment: Any, runner: Any, web_ui: Any) -> None:
        self.environment = environment
        self.runner = runner
        self.web_ui = web_ui
        self.options: argparse.Namespace = environment.parsed_options
        self.headless = bool(getattr(self.options, "headless", False))
        self.run: ActiveRun | None = None
        self.failure: str | None = None

    def init(self) -> None:
        """Locust's ``init``: validate and prepare; may exit the process."""

    def test_start(self) -> None:
        """Locust's ``test_start``."""

    def test_stop(self) -> None:
        """Locust's ``test_stop``."""

    def report_to_master(self, data: dict[str, Any]) -> None:
        """Locust's ``report_to_master`` (workers only)."""

    def worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        """Locust's ``worker_report`` (masters only)."""

    def quitting(self) -> None:
        """Locust's ``quitting``, after Locust's own listeners."""

    def quit(self) -> None:
        """Locust's ``quit``: the process is about to exit."""

    # --- shared by the kinds of process that run users (local, worker) -------------------------------------

    def _options_for(self, target: Target) -> argparse.Namespace:
        """The options as the users of this process see them: the run's target and its credentials."""
        options = copy.copy(self.options)
        options.host = None if target.embedded else target.ws_url
        if target.secret:
            options.secret = target.secret
        if target.admin_token:
            options.admin_token = target.admin_token
        return options

    def _install_runtime(self, settings: LoadSettings, target: Target, tag: str) -> Runtime:
        credentials = Credentials(settings, target.secret)
        state = Runtime(
            settings=settings,
            ws_url=target.ws_url,
            http_base=target.http_base,
            admin_token=target.admin_token,
            identities=IdentityAllocator(credentials, tag, settings.peers + 1),
        )
        state.extra["process_tag"] = tag
        install(self.environment, state)
        return state

    @forward_interrupts
    def _sampler_loop(self, run: ActiveRun) -> None:
        assert run.state is not None and run.sink is not None
        failures = 0
        while not run.finished:
            gevent.sleep(seconds_until_next_tick(time.time()))
            if run.finished:
                break
            try:
                tick(run.state, run.sink)
            except Exception as exc:  # keep sampling; a broken store is reported once and fails the run
                failures += 1
                if failures == 1:
                    log.exception("wsgauge: cannot record samples: %s", exc)
                self.failure = self.failure or f"cannot record samples: {exc}"

    def _stop_sampling(self, run: ActiveRun) -> None:
        """Stop the sampler and drain everything (including the current second) into the sink."""
        if run.finished:
            return
        run.finished = True
        current = gevent.getcurrent()
        for greenlet in run.greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)
        if run.state is not None and run.sink is not None:
            try:
                tick(run.state, run.sink, final=True)
            except Exception as exc:
                log.exception("wsgauge: cannot record the last samples")
                self.failure = self.failure or f"cannot record samples: {exc}"
