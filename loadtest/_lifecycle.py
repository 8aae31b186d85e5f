"""The run lifecycle: Locust event listeners that turn ``locust -f loadtest`` into a stored wsgauge run.

Every entry file's first line is ``import loadtest._run``; this module is imported once and registers its
listeners on Locust's global ``events`` at import time:

``init_command_line_parser``
    registers wsgauge's options (:func:`loadtest._settings.add_arguments`).
``init``
    validates the options (a bad one: one line on stderr, exit 2); on the master or the only process,
    starts the embedded reference server when there is no ``--host`` (or checks that ``--host`` answers:
    ``cannot reach ws://...: connection refused``, exit 1) and opens the run store.
``test_start``
    master / local: creates the run in the store and briefs the workers through ``parsed_options`` (Locust
    forwards custom options with every spawn message); every process with users installs its
    :class:`~loadtest._runtime.Runtime` and starts a 1 Hz sampler.
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

import argparse
import atexit
import contextlib
import copy
import functools
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.runners import (
    STATE_CLEANUP,
    STATE_INIT,
    STATE_MISSING,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
    WorkerRunner,
)

from loadtest._embedded import EmbeddedServer, EmbeddedServerError
from loadtest._runinfo import git_commit, json_safe_options, machine_info, versions
from loadtest._runtime import Credentials, IdentityAllocator, Runtime, install
from loadtest._scrape import MetricsScraper
from loadtest._settings import LoadSettings, SettingsError, add_arguments, settings_from
from loadtest._shipping import (
    PAYLOAD_KEY,
    Outbox,
    StoreSink,
    StoreThread,
    parse_payload,
    seconds_until_next_tick,
    tick,
)
from loadtest._summary import format_summary, summarize_run
from loadtest._target import Target, TargetUnreachable, fetch_health, is_reference_server, probe
from runstore.samples import SampleFormatError
from runstore.store import RunInfo, RunStore, StoreError

__all__ = ["FINAL_WAIT_S", "RunLifecycle", "lifecycle"]

log = logging.getLogger("wsgauge")

FINAL_WAIT_S = 5.0
"""How long the master waits for the workers' last samples when a run stops (a dead worker costs this)."""
MONITOR_PATH = "/wsgauge/"
MSG_FINISH = "wsgauge_finish"
MSG_FINAL = "wsgauge_final"
OPT_TARGET = "wsgauge_target"
OPT_RUN_ID = "wsgauge_run_id"
EXIT_UNREACHABLE = 1
EXIT_BAD_OPTIONS = 2
_ATTRIBUTE = "wsgauge_lifecycle"
_STATES: list[RunLifecycle] = []
"""The lifecycles of this process (one per Locust environment; Locust's main creates exactly one). The
``report_to_master``, ``worker_report`` and ``quit`` events carry no environment, hence this list."""


def _die(message: str, code: int, *, forked_workers: bool = False) -> None:
    """One line on stderr, no traceback, exit with ``code``.

    With ``--processes``, the forked workers are still waiting for this master to acknowledge them (Locust
    would give up on them only after a minute): they are terminated first.
    """
    sys.stderr.write(f"wsgauge: {message}\n")
    sys.stderr.flush()
    if forked_workers:
        _terminate_forked_workers()
    raise SystemExit(code)


def _forward_interrupts(loop: Callable[..., None]) -> Callable[..., None]:
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
    finished: bool = False
    store_error: bool = False


@dataclass(frozen=True)
class FinishedRun:
    run_id: int
    name: str
    status: str
    summary: dict[str, Any]


class RunLifecycle:
    """wsgauge's state in one Locust process (master, worker or the only one)."""

    def __init__(self, environment: Any, runner: Any, web_ui: Any) -> None:
        self.environment = environment
        self.runner = runner
        self.web_ui = web_ui
        self.options: argparse.Namespace = environment.parsed_options
        if isinstance(runner, WorkerRunner):
            self.role = "worker"
        elif isinstance(runner, MasterRunner):
            self.role = "master"
        else:
            self.role = "local"
        self.headless = bool(getattr(self.options, "headless", False))
        self.forked = self.role == "master" and bool(getattr(self.options, "processes", None))
        self.settings: LoadSettings | None = None
        self.server: EmbeddedServer | None = None
        self.target: Target | None = None
        self.reference_target = False
        self.store: RunStore | None = None
        self.store_thread: StoreThread | None = None
        self.run: ActiveRun | None = None
        self.finished: list[FinishedRun] = []
        self.interrupted = False
        self.failure: str | None = None

    # --- init -----------------------------------------------------------------------------------------------

    def init(self) -> None:
        """Validate, start or check the target, open the store (master / local). Exits on errors."""
        if self.role == "worker":
            self.runner.register_message(MSG_FINISH, self._on_finish_request)
            self.environment.events.quitting.add_listener(self._on_worker_quitting_first)
            return
        try:
            self.settings = settings_from(self.options)
        except SettingsError as exc:
            _die(str(exc), EXIT_BAD_OPTIONS, forked_workers=self.forked)
        settings = self.settings
        assert settings is not None
        if settings.host is None:
            self.server = EmbeddedServer(test_delay_ms=settings.server_test_delay_ms)
            atexit.register(self.server.stop)
            try:
                handle = self.server.start()
            except EmbeddedServerError as exc:
                _die(str(exc), EXIT_UNREACHABLE, forked_workers=self.forked)
            self.target = Target(handle.ws_url, handle.http_base, handle.secret, handle.admin_token, True)
            self.reference_target = True
            self.environment.host = handle.ws_url
        else:
            assert settings.http_base is not None
            try:
                probe(settings.host)
            except TargetUnreachable as exc:
                _die(str(exc), EXIT_UNREACHABLE, forked_workers=self.forked)
            self.target = Target(
                settings.host, settings.http_base, settings.secret, settings.admin_token, False
            )
            self.reference_target = is_reference_server(fetch_health(settings.http_base, timeout=2.0))
        try:
            self.store = RunStore.open(settings.results)
        except StoreError as exc:
            self.stop_server()
            _die(str(exc), EXIT_UNREACHABLE, forked_workers=self.forked)
        self.store_thread = StoreThread()
        if self.role == "master":
            self.runner.register_message(MSG_FINAL, self._on_final)
        # Registered now, after the runner's own quitting listener, so it runs before it (quitting fires
        # in reverse): it sees whether a test was still running when Ctrl-C or SIGTERM arrived.
        self.environment.events.quitting.add_listener(self._on_quitting_first)
        kind = "embedded reference server" if self.target.embedded else "external"
        log.info("wsgauge target %s (%s)", self.target.ws_url, kind)
        if self.web_ui is not None:
            self._mount_monitor()

    def _mount_monitor(self) -> None:
        """Serve the live monitor inside Locust's web UI, at ``/wsgauge/`` (best effort)."""
        assert self.settings is not None
        if getattr(self.options, "web_login", False):
            # Locust's login protects its own views only; the monitor's routes would be open.
            log.info("wsgauge: monitor not mounted with --web-login (run `wsgauge-monitor` separately)")
            return
        try:
            from monitor.app import create_app

            create_app(self.settings.results, server=self.web_ui.app, url_base_pathname=MONITOR_PATH)
        except Exception as exc:
            log.warning("wsgauge: monitor not mounted in the web UI (%s: %s)", type(exc).__name__, exc)
            return
        base = getattr(self.options, "web_base_path", "") or ""
        log.info("wsgauge monitor: %s%s on the web UI's host and port", base, MONITOR_PATH)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()

    # --- test start -----------------------------------------------------------------------------------------

    def _options_for(self, target: Target) -> argparse.Namespace:
        options = copy.copy(self.options)
        options.host = None if target.embedded else target.ws_url
        if target.secret:
            options.secret = target.secret
        if target.admin_token:
            options.admin_token = target.admin_token
        return options

    def _resolve_target(self) -> Target:
        """The target of a new run on the master: the web UI may have changed the host since ``init``."""
        assert self.target is not None
        host = self.environment.host or self.target.ws_url
        if host == self.target.ws_url:
            return self.target
        options = copy.copy(self.options)
        options.host = host
        settings = settings_from(options)
        assert settings.host is not None and settings.http_base is not None
        probe(settings.host)
        self.reference_target = is_reference_server(fetch_health(settings.http_base, timeout=2.0))
        self.target = Target(settings.host, settings.http_base, settings.secret, settings.admin_token, False)
        return self.target

    def _run_name(self, settings: LoadSettings) -> str:
        if settings.run_name:
            return settings.run_name
        classes = "+".join(sorted(u.__name__ for u in self.environment.user_classes)) or "no users"
        users = getattr(self.options, "num_users", None)
        return f"{classes}, {users} users" if users else classes

    def test_start(self) -> None:
        if self.role == "worker":
            self._worker_test_start()
            return
        if self.store is None:
            return
        if self.run is not None and not self.run.finished:
            self._finalize()
        try:
            target = self._resolve_target()
            settings = settings_from(self._options_for(target))
        except (SettingsError, TargetUnreachable) as exc:
            log.error("wsgauge: %s", exc)
            self.failure = str(exc)
            gevent.spawn(self.runner.stop)
            return
        self.failure = None
        self.interrupted = False
        name = self._run_name(settings)
        info = RunInfo(
            name=name,
            target=target.ws_url,
            options={
                **json_safe_options(self.options),
                "embedded": target.embedded,
                "role": self.role,
                "workers": getattr(self.runner, "worker_count", 1),
            },
            versions=versions(),
            machine=machine_info(),
            git_commit=git_commit(),
        )
        run_id = self._store_call(self.store.create_run, info)
        setattr(self.options, OPT_TARGET, target.to_wire())
        setattr(self.options, OPT_RUN_ID, run_id)
        sink = StoreSink(self.store, run_id, self.store_thread)
        run = ActiveRun(run_id, name, time.time(), target, settings, sink=sink)
        self.run = run
        if self.role == "local":
            run.state = self._install_runtime(settings, target, "w0")
            run.greenlets.append(gevent.spawn(self._sampler_loop, run))
        if settings.scrape_metrics:
            run.scraper = MetricsScraper(target.http_base, give_up_after=0 if self.reference_target else 5)
        run.greenlets.append(gevent.spawn(self._housekeeping_loop, run))
        log.info("wsgauge run %s '%s' started: storing into %s", run_id, name, settings.results)

    def _worker_test_start(self) -> None:
        wire = getattr(self.options, OPT_TARGET, None)
        run_id = getattr(self.options, OPT_RUN_ID, None)
        if wire is None or run_id is None:
            log.error("wsgauge: the master sent no target; is it running `locust -f loadtest`?")
            return
        target = Target.from_wire(wire)
        try:
            settings = settings_from(self._options_for(target))
        except SettingsError as exc:
            log.error("wsgauge: %s", exc)
            return
        tag = f"w{max(0, int(getattr(self.runner, 'worker_index', 0)))}"
        run = ActiveRun(int(run_id), "", time.time(), target, settings)
        if self.store_thread is None:
            self.store_thread = StoreThread()  # a worker's: encodes histograms off the hub
        run.outbox = Outbox(int(run_id), tag, self.store_thread)
        run.sink = run.outbox
        run.state = self._install_runtime(settings, target, tag)
        self.run = run
        run.greenlets.append(gevent.spawn(self._sampler_loop, run))

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

    # --- while running --------------------------------------------------------------------------------------

    @_forward_interrupts
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

    @_forward_interrupts
    def _housekeeping_loop(self, run: ActiveRun) -> None:
        """Master / local, once a second: heartbeat, scrape ``/metrics``, watch the embedded server."""
        assert self.store is not None
        while not run.finished:
            gevent.sleep(seconds_until_next_tick(time.time(), offset=0.5))
            if run.finished:
                break
            try:
                self._store_call(self.store.heartbeat, run.run_id)
                self._scrape(run)
            except Exception as exc:  # a locked or full disk: keep the run going, say so once
                if not run.store_error:
                    log.error("wsgauge: cannot write the run store: %s", exc)
                run.store_error = True
            else:
                run.store_error = False
            if self.server is not None and run.target.embedded and self.server.died:
                self.failure = (
                    f"the embedded reference server exited unexpectedly (code {self.server.returncode}):"
                    f" {self.server.last_output()}"
                )
                log.error("wsgauge: %s", self.failure)
                gevent.spawn(self.runner.quit if self.headless else self.runner.stop)
                return

    def _scrape(self, run: ActiveRun) -> None:
        if run.scraper is None or self.store is None:
            return
        now = time.time()
        values = run.scraper.scrape()
        if values:
            self._store_call(self.store.write_server_metrics, run.run_id, now, values)

    def _store_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a store call on the store thread (so SQLite never stalls the users' greenlets)."""
        if self.store_thread is None:
            return fn(*args, **kwargs)
        return self.store_thread.call(fn, *args, **kwargs)

    def report_to_master(self, data: dict[str, Any]) -> None:
        """Worker: attach the closed seconds to Locust's periodic report."""
        run = self.run
        if run is not None and run.outbox is not None and len(run.outbox):
            data[PAYLOAD_KEY] = run.outbox.take()

    def worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        """Master: write a worker's shipped seconds now (a worker that dies later loses nothing shipped)."""
        payload = data.get(PAYLOAD_KEY)
        if payload is not None:
            self._accept(client_id, payload)

    def _accept(self, client_id: str, raw: Any) -> None:
        run = self.run
        try:
            payload = parse_payload(raw)
        except SampleFormatError as exc:
            log.error("wsgauge: discarding samples from worker %s: %s", client_id, exc)
            return
        if run is None or payload.run_id != run.run_id or run.sink is None:
            log.warning(
                "wsgauge: discarding %d late seconds of run %s from worker %s",
                len(payload.samples),
                payload.run_id,
                client_id,
            )
            return
        try:
            run.sink(payload.samples, payload.events)
        except Exception as exc:
            log.exception("wsgauge: cannot store samples from worker %s", client_id)
            self.failure = self.failure or f"cannot store samples: {exc}"
        if payload.final:
            run.pending_workers.discard(client_id)

    @_forward_interrupts
    def _on_final(self, environment: Any, msg: Any, **_: Any) -> None:
        self._accept(msg.node_id, msg.data)

    def _on_finish_request(self, environment: Any, msg: Any, **_: Any) -> None:
        """Worker: the master is finalising; stop the users and send everything left."""
        self._send_final((msg.data or {}).get("run_id", -1))

    def _send_final(self, run_id: int) -> None:
        if self.runner.state not in (STATE_STOPPED, STATE_INIT):
            self.runner.stop()  # fires test_stop here: the final drain into the outbox
        run = self.run
        if run is None or run.outbox is None or run.run_id != run_id:
            payload = Outbox(int(run_id), "").take(final=True)
        else:
            self._stop_sampling(run)
            payload = run.outbox.take(final=True)
        try:
            self.runner.send_message(MSG_FINAL, payload)
        except Exception as exc:  # the master is gone: nothing more can be saved
            log.warning("wsgauge: cannot send the last samples to the master: %s", exc)

    def _on_worker_quitting_first(self, environment: Any, **_: Any) -> None:
        """Worker quitting on its own (Ctrl-C, SIGTERM): ship the rest before Locust tells the master."""
        run = self.run
        if run is not None and run.outbox is not None and not run.outbox.sent_final:
            self._send_final(run.run_id)

    # --- stopping -------------------------------------------------------------------------------------------

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

    def test_stop(self) -> None:
        run = self.run
        if run is None or run.finished:
            return
        if self.role == "worker":
            self._stop_sampling(run)
            return
        if self.role == "master":
            self._collect_final_samples(run)
        self._finalize()

    def _collect_final_samples(self, run: ActiveRun) -> None:
        """Master: ask every live worker for its last samples and wait for them (at most FINAL_WAIT_S)."""
        workers = [c.id for c in self.runner.clients.all if c.state != STATE_MISSING]
        run.pending_workers = set(workers)
        for client_id in workers:
            try:
                self.runner.send_message(MSG_FINISH, {"run_id": run.run_id}, client_id=client_id)
            except Exception as exc:
                log.warning("wsgauge: cannot reach worker %s: %s", client_id, exc)
                run.pending_workers.discard(client_id)
        deadline = time.monotonic() + FINAL_WAIT_S
        while run.pending_workers and time.monotonic() < deadline:
            gevent.sleep(0.05)
            run.pending_workers &= {c.id for c in self.runner.clients.all}  # workers that quit are done
        if run.pending_workers:
            log.warning(
                "wsgauge: no final samples from %d worker(s) within %g s; the run keeps what they shipped",
                len(run.pending_workers),
                FINAL_WAIT_S,
            )

    def _status(self, run: ActiveRun) -> str:
        if self.interrupted:
            return "interrupted"
        if self.failure:
            return "failed"
        run_time = getattr(self.options, "run_time", None)
        if run_time and time.time() - run.started_at >= float(run_time) - 1.0:
            return "completed"
        if self.headless and self.environment.shape_class is not None:
            return "completed"
        return "stopped"

    def _finalize(self) -> None:
        """Master / local: last samples and scrape, then status and summary."""
        run = self.run
        if run is None or self.store is None:
            return
        if not run.finished:
            self._stop_sampling(run)
        with contextlib.suppress(Exception):
            self._scrape(run)
        status = self._status(run)
        stats = self.environment.runner.stats.total if self.environment.runner is not None else None
        try:
            summary = self._store_call(summarize_run, self.store, run.run_id)
        except Exception as exc:
            log.exception("wsgauge: cannot summarise run %s", run.run_id)
            summary = {"error": str(exc)}
        if stats is not None:
            summary["locust"] = {"requests": int(stats.num_requests), "failures": int(stats.num_failures)}
        if self.failure:
            summary["failure"] = self.failure
        if run.scraper is not None:
            summary["scrape_failures"] = run.scraper.failures
        try:
            self._store_call(self.store.finish_run, run.run_id, status, summary=summary)
        except StoreError as exc:
            log.error("wsgauge: cannot finalise run %s: %s", run.run_id, exc)
        if status == "failed" and self.environment.process_exit_code is None:
            self.environment.process_exit_code = 1
        finished = FinishedRun(run.run_id, run.name, status, summary)
        self.finished.append(finished)
        log.info("wsgauge run %s finalised: %s", run.run_id, status)
        if not self.headless:
            self._print_and_report(finished)

    def _on_quitting_first(self, environment: Any, **_: Any) -> None:
        """Runs before Locust's own quitting listeners: a test still running now was interrupted."""
        run = self.run
        if run is None or run.finished:
            return
        if self.runner.state not in (STATE_STOPPED, STATE_STOPPING, STATE_CLEANUP, STATE_INIT):
            self.interrupted = True
        if self.role == "local":
            self.runner.stop()  # fires test_stop: finalised before the embedded server goes away

    def quitting(self) -> None:
        """Runs after Locust's own quitting listeners (the master has quit its workers by now)."""
        if self.role == "worker":
            return
        run = self.run
        if run is not None and not run.finished:
            self._finalize()
        self.stop_server()

    def quit(self) -> None:
        """Headless: the summary and the report come last, after Locust's tables.

        Nothing here may yield to the gevent hub: on SIGTERM, Locust's handler runs this while its main
        greenlet waits to run its own shutdown; a switch here would let both shut down (and both print).
        """
        if self.role == "worker" or not self.headless:
            return
        finished, self.finished = self.finished, []
        for run in finished:
            self._print_and_report(run)
        if self.store is not None:
            self.store.close()  # all store work is done: the run was finalised at test_stop / quitting
            self.store = None

    # --- the end --------------------------------------------------------------------------------------------

    def _print_and_report(self, finished: FinishedRun) -> None:
        if self.settings is None or self.store is None:
            return
        store_path = str(self.settings.results)
        text = format_summary(
            finished.summary,
            run_id=finished.run_id,
            run_name=finished.name,
            status=finished.status,
            store_path=store_path,
        )
        print("\n" + text, flush=True)
        if self.settings.report:
            report = build_report(Path(store_path), finished.run_id)
            if report is not None:
                print(f"report: {report}", flush=True)


def build_report(store_path: Path, run_id: int) -> Path | None:
    """Write ``report-<run_id>.html`` next to the store with ``reports.build``, if that is available."""
    output = store_path.parent / f"report-{run_id}.html"
    try:
        from reports.build import build_report as build
    except ImportError:
        print("report: skipped (the reports package has no build_report yet)", flush=True)
        return None
    try:
        return Path(build(store_path, run_id, output))
    except Exception as exc:
        print(f"report: skipped ({type(exc).__name__}: {exc})".splitlines()[0], flush=True)
        return None


def lifecycle(environment: Any) -> RunLifecycle | None:
    """The process's :class:`RunLifecycle`, or ``None`` if wsgauge did not initialise this environment."""
    return getattr(environment, _ATTRIBUTE, None)


# --- listeners (registered once, at import) -----------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _on_command_line_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_: Any) -> None:
    if environment.parsed_options is None or runner is None:
        return
    state = RunLifecycle(environment, runner, web_ui)
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
@_forward_interrupts
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
