"""The lifecycles of the process that owns a run: the only process (``local``) or the ``--master``.

Either one owns the target (it starts the embedded reference server, or checks that ``--host`` answers),
the run store, the run's row in it, the once-a-second housekeeping (heartbeat, ``/metrics`` scrape, a watch
on the embedded server) and the run's end (status, summary, the console table and the report). They differ
in where samples come from: a local process samples its own users; a master merges what its workers ship
and, when the run stops, asks each of them for its last samples before it computes the summary.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust.runners import (
    STATE_CLEANUP,
    STATE_INIT,
    STATE_MISSING,
    STATE_STOPPED,
    STATE_STOPPING,
    WORKER_REPORT_INTERVAL,
)

from loadtest._embedded import EmbeddedServer, EmbeddedServerError
from loadtest._lifecycle_base import (
    EXIT_BAD_OPTIONS,
    EXIT_UNREACHABLE,
    MSG_FINAL,
    MSG_FINISH,
    OPT_RUN_ID,
    OPT_TARGET,
    ActiveRun,
    Downstream,
    FinishedRun,
    RunLifecycle,
    die,
    forward_interrupts,
    log,
)
from loadtest._run_metadata import git_commit, json_safe_options, machine_info, shape_info, versions
from loadtest._scrape import MetricsScraper
from loadtest._settings import LoadSettings, SettingsError, settings_from
from loadtest._shipping import PAYLOAD_KEY, StoreSink, StoreThread, parse_payload, seconds_until_next_tick
from loadtest._summary import format_summary, missed_rows, never_connected, summarize_run
from loadtest._target import Target, TargetUnreachable, fetch_health, is_reference_server, probe
from runstore.location import redacted
from runstore.samples import SampleFormatError
from runstore.store import RunInfo, RunStore, StoreError

__all__ = ["FINAL_WAIT_S", "CoordinatorLifecycle", "LocalLifecycle", "MasterLifecycle"]

FINAL_WAIT_S = 60.0
"""The longest the master waits, beyond ``--stop-timeout``, for a live worker's last samples when a run stops.

Generous because a loaded worker may take seconds to stop its users and encode its last second, and a live
worker is worth waiting for; a dead one does not cost this: Locust marks it missing after about 3 s without
heartbeats, and the wait ends there (the run is then marked incomplete)."""


class CoordinatorLifecycle(RunLifecycle):
    """What the local process and the master share: they own the target, the store and the run."""

    def __init__(self, environment: Any, runner: Any, web_ui: Any, downstream: Downstream) -> None:
        super().__init__(environment, runner, web_ui)
        self.downstream = downstream
        self.forked = False
        """A master with ``--processes``: its forked workers must be stopped if it exits at start."""
        self.settings: LoadSettings | None = None
        self.server: EmbeddedServer | None = None
        self.target: Target | None = None
        self.reference_target = False
        self.store: RunStore | None = None
        self.store_thread: StoreThread | None = None
        self.finished: list[FinishedRun] = []
        self.interrupted = False

    # --- init -----------------------------------------------------------------------------------------------

    def init(self) -> None:
        """Validate, start or check the target, open the store. Exits on errors."""
        try:
            self.settings = settings_from(self.options)
        except SettingsError as exc:
            die(str(exc), EXIT_BAD_OPTIONS, forked_workers=self.forked)
        settings = self.settings
        assert settings is not None
        if settings.host is None:
            self.target = self._start_embedded_server(settings)
        else:
            assert settings.http_base is not None
            try:
                probe(settings.host)
            except TargetUnreachable as exc:
                die(str(exc), EXIT_UNREACHABLE, forked_workers=self.forked)
            self.target = Target(
                settings.host, settings.http_base, settings.secret, settings.admin_token, False
            )
            self.reference_target = is_reference_server(fetch_health(settings.http_base, timeout=2.0))
        try:
            self.store = RunStore.open(settings.results)
        except StoreError as exc:
            self.stop_server()
            die(str(exc), EXIT_UNREACHABLE, forked_workers=self.forked)
        self.store_thread = StoreThread()
        self._register_messages()
        # Registered now, after the runner's own quitting listener, so it runs before it (quitting fires
        # in reverse): it sees whether a test was still running when Ctrl-C or SIGTERM arrived.
        self.environment.events.quitting.add_listener(self._on_quitting_first)
        kind = "embedded reference server" if self.target.embedded else "external"
        log.info("wsgauge target %s (%s)", self.target.ws_url, kind)
        if self.web_ui is not None and self.downstream.mount_monitor is not None:
            self.downstream.mount_monitor(self.web_ui, self.options, settings.results)
        # Opening the store and the checks above block the gevent hub (over a second on a loaded machine),
        # and the hub's clock only advances when it runs: Locust's ``-t`` timer, armed right after this, would
        # count from that stale time and end the run early by as much (seen: 8 s runs lasting 6.3 s).
        gevent.get_hub().loop.update_now()

    def _start_embedded_server(self, settings: LoadSettings) -> Target:
        bind_host = self._embedded_bind_host()
        self.server = EmbeddedServer(
            test_delay_ms=settings.server_test_delay_ms,
            bind_host=bind_host,
            workers=settings.embedded_workers,
            db=settings.embedded_db,
            redis=settings.embedded_redis,
            extra_args=("--compress",) if settings.compression else (),
        )
        atexit.register(self.server.stop)
        try:
            handle = self.server.start()
        except EmbeddedServerError as exc:
            die(self._embedded_failure(str(exc), bind_host), EXIT_UNREACHABLE, forked_workers=self.forked)
        self.reference_target = True
        self.environment.host = handle.ws_url
        return Target(handle.ws_url, handle.http_base, handle.secret, handle.admin_token, True)

    def _embedded_bind_host(self) -> str:
        """Where the embedded server listens: loopback, unless workers elsewhere must reach it."""
        return "127.0.0.1"

    def _embedded_failure(self, reason: str, bind_host: str) -> str:
        return reason

    def _register_messages(self) -> None:
        """Custom messages between master and workers (none for a local process)."""

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()

    # --- test start -----------------------------------------------------------------------------------------

    def _resolve_target(self) -> Target:
        """The target of a new run: the web UI may have changed the host since ``init``."""
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

    def _run_name(self, settings: LoadSettings, shape: dict[str, Any] | None) -> str:
        if settings.run_name:
            return settings.run_name
        classes = "+".join(sorted(u.__name__ for u in self.environment.user_classes)) or "no users"
        if shape is not None:
            planned = shape["planned_peak_users"]
            return f"{classes}, {shape['class']}" + (f" up to {planned} users" if planned else "")
        users = getattr(self.options, "num_users", None)
        return f"{classes}, {users} users" if users else classes

    def _stored_options(self, target: Target, shape: dict[str, Any] | None) -> dict[str, Any]:
        options = json_safe_options(self.options)
        if shape is not None and not shape["use_common_options"]:
            # The shape drove the users: Locust's -u / -r (often just their defaults) did not.
            options["num_users"] = options["spawn_rate"] = None
        return {
            **options,
            "shape": shape,
            "embedded": target.embedded,
            "role": self.role,
            "workers": getattr(self.runner, "worker_count", 1),
        }

    def test_start(self) -> None:
        if self.store is None:
            return
        if self.run is not None and not self.run.finished:
            self._finalize()
        started_at = time.time()  # before the store calls: Locust's -t counts from about now
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
        shape = shape_info(self.environment.shape_class)
        name = self._run_name(settings, shape)
        info = RunInfo(
            name=name,
            target=target.ws_url,
            options=self._stored_options(target, shape),
            versions=versions(),
            machine=machine_info(),
            git_commit=git_commit(),
            tag=settings.tag,
            build=settings.build,
        )
        run_id = self._store_call(self.store.create_run, info)
        setattr(self.options, OPT_TARGET, target.to_wire())
        setattr(self.options, OPT_RUN_ID, run_id)
        sink = StoreSink(self.store, run_id, self.store_thread)
        run = ActiveRun(run_id, name, started_at, target, settings, sink=sink)
        self.run = run
        self._start_sampling(run)
        if settings.scrape_metrics:
            run.scraper = MetricsScraper(target.http_base, give_up_after=0 if self.reference_target else 5)
        run.greenlets.append(gevent.spawn(self._housekeeping_loop, run))
        log.info("wsgauge run %s '%s' started: storing into %s", run_id, name, redacted(settings.results))

    def _start_sampling(self, run: ActiveRun) -> None:
        """Where this process's samples come from (its own users, or its workers)."""

    # --- while running --------------------------------------------------------------------------------------

    @forward_interrupts
    def _housekeeping_loop(self, run: ActiveRun) -> None:
        """Once a second: heartbeat, scrape ``/metrics``, watch the embedded server."""
        assert self.store is not None
        while not run.finished:
            gevent.sleep(seconds_until_next_tick(time.time(), offset=0.5))
            if run.finished:
                break
            run.peak_users = max(run.peak_users, int(getattr(self.runner, "user_count", 0) or 0))
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

    # --- stopping -------------------------------------------------------------------------------------------

    def test_stop(self) -> None:
        run = self.run
        if run is None or run.finished:
            return
        self._collect_final_samples(run)
        self._finalize()

    def _collect_final_samples(self, run: ActiveRun) -> None:
        """Before the summary: make sure every sample of the run is in the store."""

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
        """Last samples and scrape, then status and summary."""
        run = self.run
        if run is None or self.store is None:
            return
        if not run.finished:
            self._stop_sampling(run)
        with contextlib.suppress(Exception):
            self._scrape(run)
        stats = self.environment.runner.stats.total if self.environment.runner is not None else None
        try:
            summary = self._store_call(summarize_run, self.store, run.run_id)
        except Exception as exc:
            log.exception("wsgauge: cannot summarise run %s", run.run_id)
            summary = {"error": str(exc)}
        if not self.failure and (refused := never_connected(summary)):
            self.failure = f"no user ever connected to {run.target.ws_url} ({refused})"
            log.error("wsgauge: %s", self.failure)
        status = self._status(run)
        summary["peak_users"] = max(run.peak_users, int(getattr(self.runner, "user_count", 0) or 0))
        if stats is not None:
            summary["locust"] = {"requests": int(stats.num_requests), "failures": int(stats.num_failures)}
            summary["missed"] = missed_rows(self.environment.runner.stats.entries.values())
        if self.failure:
            summary["failure"] = self.failure
        if run.incomplete:
            summary["incomplete"] = run.incomplete
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

    def quitting(self) -> None:
        """Runs after Locust's own quitting listeners (a master has quit its workers by now)."""
        run = self.run
        if run is not None and not run.finished:
            self._finalize()
        self.stop_server()

    def quit(self) -> None:
        """Headless: the summary and the report come last, after Locust's tables.

        Nothing here may yield to the gevent hub: on SIGTERM, Locust's handler runs this while its main
        greenlet waits to run its own shutdown; a switch here would let both shut down (and both print).
        """
        if not self.headless:
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
        store_path = self.settings.results
        text = format_summary(
            finished.summary,
            run_id=finished.run_id,
            run_name=finished.name,
            status=finished.status,
            store_path=redacted(store_path),
        )
        print("\n" + text, flush=True)
        if self.settings.report and self.downstream.write_report is not None:
            try:
                report = self.downstream.write_report(store_path, finished.run_id)
            except Exception as exc:
                print(f"report: skipped ({type(exc).__name__}: {exc})".splitlines()[0], flush=True)
            else:
                print(f"report: {report}", flush=True)


class LocalLifecycle(CoordinatorLifecycle):
    """The only process: it runs the users itself and samples them straight into the store."""

    role = "local"

    def _start_sampling(self, run: ActiveRun) -> None:
        run.state = self._install_runtime(run.settings, run.target, "w0")
        run.greenlets.append(gevent.spawn(self._sampler_loop, run))

    def _on_quitting_first(self, environment: Any, **_: Any) -> None:
        run = self.run
        super()._on_quitting_first(environment)
        if run is not None and not run.finished:
            self.runner.stop()  # fires test_stop: finalised before the embedded server goes away


class MasterLifecycle(CoordinatorLifecycle):
    """``--master``: its workers run the users; it merges and stores what they ship."""

    role = "master"

    def __init__(self, environment: Any, runner: Any, web_ui: Any, downstream: Downstream) -> None:
        super().__init__(environment, runner, web_ui, downstream)
        self.forked = bool(getattr(self.options, "processes", None))

    def _embedded_bind_host(self) -> str:
        """``--processes``: loopback (the workers are forked here). ``--master``: ``--master-bind-host``.

        Workers on other machines must reach the embedded server, and they reach this machine where they
        reach the master: a worker puts its own ``--master-host`` into the embedded target's URLs, so the
        server listens where the master does (``*``, Locust's default: every interface).
        """
        if self.forked:
            return "127.0.0.1"
        bind = str(getattr(self.options, "master_bind_host", "*") or "*")
        return "0.0.0.0" if bind == "*" else bind

    def _embedded_failure(self, reason: str, bind_host: str) -> str:
        if self.forked:
            return reason
        return (
            f"{reason} (with --master it listens on --master-bind-host {bind_host}, where the workers reach"
            " this machine; give an address of this machine there, or --host ws://HOST:PORT/ws of a server"
            " that the workers can reach)"
        )

    def _register_messages(self) -> None:
        self.runner.register_message(MSG_FINAL, self._on_final)

    def worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        """Write a worker's shipped seconds now (a worker that dies later loses nothing shipped)."""
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
        run.shipping_workers.add(client_id)
        if payload.final:
            run.final_workers.add(client_id)
            run.pending_workers.discard(client_id)

    @forward_interrupts
    def _on_final(self, environment: Any, msg: Any, **_: Any) -> None:
        self._accept(msg.node_id, msg.data)

    def _collect_final_samples(self, run: ActiveRun) -> None:
        """Have the last samples of every worker of the run, or mark the run incomplete.

        A worker ships its last samples when it stops, before it tells Locust it has (so after a ``stop``
        they are usually in already). The ones still missing are asked for (``wsgauge_finish``: after
        ``-t``, Locust's master stops without stopping its workers first) and waited for while their worker
        is alive, up to ``--stop-timeout`` + :data:`FINAL_WAIT_S`. A worker that is gone by then (it quit:
        it would have shipped first; it went missing: it died) loses what it had not shipped: the run says
        so in its summary (``incomplete``) and in the log.
        """
        clients = {c.id: c for c in self.runner.clients.all}
        participants = run.shipping_workers | clients.keys()
        run.pending_workers = {
            client_id
            for client_id in participants - run.final_workers
            if client_id in clients and clients[client_id].state != STATE_MISSING
        }
        for client_id in sorted(run.pending_workers):
            try:
                self.runner.send_message(MSG_FINISH, {"run_id": run.run_id}, client_id=client_id)
            except Exception as exc:
                log.warning("wsgauge: cannot reach worker %s: %s", client_id, exc)
                run.pending_workers.discard(client_id)
        stop_timeout = float(getattr(self.environment, "stop_timeout", 0.0) or 0.0)
        deadline = time.monotonic() + stop_timeout + FINAL_WAIT_S
        while run.pending_workers and time.monotonic() < deadline:
            gevent.sleep(0.05)
            run.pending_workers &= {c.id for c in self.runner.clients.all if c.state != STATE_MISSING}
        missing = sorted(participants - run.final_workers)
        if missing:
            run.incomplete = (
                f"no last samples from {len(missing)} worker(s) ({', '.join(missing)}; dead, gone or"
                f" silent for {stop_timeout + FINAL_WAIT_S:g} s): what they had not shipped yet (up to"
                f" {WORKER_REPORT_INTERVAL:g} s each) is missing from the run"
            )
            log.warning("wsgauge: run %s is incomplete: %s", run.run_id, run.incomplete)
