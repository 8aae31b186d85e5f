"""A real headless run of every persona on the embedded default stores every kind of measurement.

The run itself is the session fixture ``real_run_store`` (``tests/conftest.py``): ``locust -f loadtest
--headless -u 8 -r 8 -t 8s`` with no ``--host``, so the reference server is started, scraped and stopped by
the run lifecycle.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runstore.names import CONNECTION_STATES, GAUGE_QUEUE_SIZE, state_gauge
from runstore.store import RunStore
from tests.loadtest.locust_runs import run_locust

EXPECTED_LATENCY = {
    "connect",
    "ack:chat_message",
    "ack:notification_read",
    "ack:progress_update",
    "pong",
    "delivery:chat",
    "push:notification",
    "sync:progress",
    "http:notification_create",
}


@pytest.fixture(scope="module")
def store(real_run_store: tuple[Path, int]):
    store_path, _ = real_run_store
    with RunStore.open(store_path, readonly=True) as opened:
        yield opened


def test_run_is_completed_with_metadata(store: RunStore, real_run_store: tuple[Path, int]) -> None:
    _, run_id = real_run_store
    run = store.get_run(run_id)
    assert run.status == "completed"
    assert run.name == "real-run-fixture"
    assert run.ended_at is not None and 7.0 <= run.ended_at - run.started_at <= 20.0
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/ws", run.target)
    assert run.options["embedded"] is True
    assert run.options["num_users"] == 8 and run.options["seed"] == 7
    assert run.options["secret"] is None  # the embedded server's secret never reaches parsed options
    assert "wsgauge_target" not in run.options  # nor the workers' briefing
    assert {"python", "locust", "gevent", "hdrhistogram", "wsgauge"} <= set(run.versions)
    assert run.machine["cpus"] >= 1 and run.machine["hostname"]
    assert run.git_commit is None or re.fullmatch(r"[0-9a-f]{40}", run.git_commit)


def test_every_latency_metric_is_stored(store: RunStore, real_run_store: tuple[Path, int]) -> None:
    _, run_id = real_run_store
    metrics = set(store.latency_metrics(run_id))
    assert metrics >= EXPECTED_LATENCY, EXPECTED_LATENCY - metrics
    for metric in EXPECTED_LATENCY:
        merged = store.merged_histogram(run_id, metric)
        assert merged.get_total_count() > 0, metric
        # microsecond resolution: loopback round trips are well under a second and not whole milliseconds
        assert 1 <= merged.get_value_at_percentile(50) < 1_000_000, metric
    per_second = store.latency(run_id, ["ack:chat_message"])
    assert per_second["t"].is_monotonic_increasing and len(per_second) >= 3


def test_counters_gauges_events_and_server_metrics(store: RunStore, real_run_store: tuple[Path, int]) -> None:
    _, run_id = real_run_store
    totals = store.counters(run_id).groupby("name")["value"].sum()
    for name in (
        "sent.chat_message",
        "sent.progress_update",
        "sent.notification_read",
        "sent.ping",
        "sent.notification_create",
        "recv.new_message",
        "recv.notification_update",
        "recv.progress_sync",
        "recv.pong",
        "recv.ack",
    ):
        assert totals.get(name, 0) > 0, name
    errors = totals[totals.index.str.startswith("errors.")]
    assert errors.empty, errors

    names = [GAUGE_QUEUE_SIZE, *(state_gauge(s) for s in CONNECTION_STATES)]
    gauges = store.gauges(run_id, names)
    assert set(gauges["name"]) == set(names)
    connected = gauges[gauges["name"] == state_gauge("connected")]
    assert connected["sum"].max() >= 6  # 7 WebSocket users (8 minus the back end), all connected at once
    per_second = gauges.groupby("t")["name"].nunique()
    assert (per_second == len(names)).all()  # every second has a full snapshot

    events = store.events(run_id)
    assert (events["kind"] == "connected").sum() >= 7
    assert events["user"].str.contains("-w0-").all()

    server = store.server_metrics(run_id)
    assert server["t"].nunique() >= 5  # scraped about once a second
    frames_in = server[server["name"].str.startswith("wsgauge_frames_in_total")]
    assert frames_in["value"].max() > 0


def test_summary_is_stored_and_printed(store: RunStore, real_run_store: tuple[Path, int]) -> None:
    store_path, run_id = real_run_store
    summary = store.get_run(run_id).summary
    assert summary is not None
    assert summary["sent"] > 0 and summary["errors"] == {}
    assert set(summary["latency"]) >= EXPECTED_LATENCY
    pong = summary["latency"]["pong"]
    assert pong["count"] > 0 and pong["p50_us"] <= pong["p95_us"] <= pong["p99_us"] <= pong["max_us"]
    output = (store_path.parent / "locust.out").read_text()
    assert f"wsgauge run {run_id} 'real-run-fixture': completed" in output
    assert re.search(r"^pong\s+\d+\s+\d+\.\d{3}\s+\d+\.\d{3}", output, re.MULTILINE)
    assert f"stored: {store_path} (run id {run_id})" in output


def test_batching_and_debouncing_are_measured_and_reported(tmp_path: Path) -> None:
    run = run_locust(
        tmp_path / "wsgauge.sqlite3",
        *("-u", "4", "-r", "4", "-t", "5s", "--think-scale", "0.3", "StudentUser"),
        *("--batch-size", "4", "--batch-ms", "50", "--debounce-ms", "100", "--report", "true"),
    )
    assert run.returncode == 0, run.output
    # the HTML report is the reports package's: written next to the store, or skipped with one line
    report = tmp_path / f"report-{run.run_id}.html"
    assert f"report: {report}" in run.stdout or "report: skipped" in run.stdout, run.output
    assert report.is_file() or "report: skipped" in run.stdout
    with RunStore.open(run.store_path, readonly=True) as store:
        assert "ack:batch" in store.latency_metrics(run.run_id)
        totals = store.counters(run.run_id).groupby("name")["value"].sum()
        assert totals["sent.batch"] > 0
        assert store.get_run(run.run_id).status == "completed"
