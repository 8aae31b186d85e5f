"""The run lifecycle's parts, driven directly: shipping and merging, scraping, metadata, summary, target."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from loadtest._embedded import EmbeddedServer
from loadtest._run_metadata import REDACTED, json_safe_options, shape_info, versions
from loadtest._scrape import MetricsScraper, parse_metrics, sample_key
from loadtest._shipping import (
    Outbox,
    StoreSink,
    StoreThread,
    parse_payload,
    seconds_until_next_tick,
    snapshot_gauges,
    tick,
)
from loadtest._summary import format_summary, never_connected, summarize_run
from loadtest._target import Target, TargetUnreachable, fetch_health, is_reference_server, probe
from runstore.samples import SampleAggregator, SampleFormatError
from runstore.store import RunInfo, RunStore

T0 = 1_800_000_000


class FakeUser:
    def __init__(self, state: str, queue: int) -> None:
        self.connection_state = state
        self.queue_size = queue


def _runtime(aggregator: SampleAggregator, users: list[FakeUser]) -> SimpleNamespace:
    return SimpleNamespace(aggregator=aggregator, users=users)


def _worker(seed: int) -> SampleAggregator:
    agg = SampleAggregator(clock=lambda: T0 + 0.5)
    for i in range(100):
        agg.record_latency("pong", 100 + seed * 1000 + i, at=T0 + i / 100)
        agg.incr("sent.ping", at=T0 + i / 100)
    agg.incr("sent.ping", 3, at=T0 + 1.2)
    agg.event("connected", f"student-w{seed}-0", at=T0 + 0.1)
    return agg


def test_two_workers_ship_and_merge_exactly(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "s.sqlite3")
    run_id = store.create_run(RunInfo(name="t", target="ws://x/ws"))
    sink = StoreSink(store, run_id)
    users = [FakeUser("connected", 2), FakeUser("reconnecting", 5), FakeUser("connected", 0)]
    for seed in (0, 1):
        outbox = Outbox(run_id, f"w{seed}")
        state = _runtime(_worker(seed), users)
        tick(state, outbox, now=T0 + 1.5)  # drains second T0 only
        first = parse_payload(outbox.take())
        assert [s.second for s in first.samples] == [T0] and len(first.events) == 1
        sink(first.samples, first.events)
        tick(state, outbox, now=T0 + 2.5, final=True)  # everything left, with a gauge snapshot
        last = parse_payload(outbox.take(final=True))
        assert last.final and outbox.sent_final
        sink(last.samples, last.events)
    totals = store.counters(run_id).groupby("name")["value"].sum()
    assert totals["sent.ping"] == 2 * 103
    merged = store.merged_histogram(run_id, "pong")
    assert merged.get_total_count() == 200
    assert merged.get_min_value() == 100 and merged.get_max_value() >= 1199
    gauges = store.gauges(run_id, ["users.connected", "users.reconnecting", "queue_size"])
    connected = gauges[gauges["name"] == "users.connected"]
    assert set(connected["sum"]) == {4.0}  # two workers x two connected users, every snapshotted second
    queue = gauges[gauges["name"] == "queue_size"].iloc[0]
    assert (queue["max"], queue["count"]) == (5.0, 6)
    assert len(store.events(run_id)) == 2
    store.close()


def test_snapshot_gauges_counts_every_user_once() -> None:
    agg = SampleAggregator()
    users = [FakeUser("connected", 1), FakeUser("disconnected", 0), SimpleNamespace()]
    assert snapshot_gauges(agg, users, at=T0) == 3
    samples, _ = agg.drain()
    gauges = samples[0].gauges
    assert gauges["users.connected"].sum == 1 and gauges["users.disconnected"].sum == 2
    assert gauges["users.reconnecting"].sum == 0 and gauges["queue_size"].count == 3


def test_malformed_payload_is_rejected() -> None:
    with pytest.raises(SampleFormatError):
        parse_payload({"run_id": 1, "tag": "w0", "samples": [{"second": "x"}], "events": []})
    with pytest.raises(SampleFormatError):
        parse_payload({"run_id": 1})


def test_ticks_land_just_after_each_second() -> None:
    assert seconds_until_next_tick(T0 + 0.25) == pytest.approx(0.77)
    assert seconds_until_next_tick(T0 + 0.99) == pytest.approx(0.03)


PROMETHEUS_TEXT = """\
# HELP wsgauge_frames_in_total inbound frames
# TYPE wsgauge_frames_in_total counter
wsgauge_frames_in_total{type="ping"} 12.0
wsgauge_frames_in_total{type="chat_message"} 3.0
# HELP wsgauge_connections_open open
# TYPE wsgauge_connections_open gauge
wsgauge_connections_open 4.0
# HELP wsgauge_handling_seconds handling
# TYPE wsgauge_handling_seconds histogram
wsgauge_handling_seconds_bucket{le="0.001"} 10.0
wsgauge_handling_seconds_bucket{le="+Inf"} 15.0
wsgauge_handling_seconds_count 15.0
wsgauge_handling_seconds_sum 0.02
"""


def test_prometheus_text_becomes_named_samples() -> None:
    values = parse_metrics(PROMETHEUS_TEXT)
    assert values['wsgauge_frames_in_total{type="ping"}'] == 12.0
    assert values["wsgauge_connections_open"] == 4.0
    assert values['wsgauge_handling_seconds_bucket{le="+Inf"}'] == 15.0
    assert sample_key("m", {"b": "2", "a": "1"}) == 'm{a="1",b="2"}'
    with pytest.raises(ValueError):
        parse_metrics("this is { not prometheus")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scraper_gives_up_on_a_target_without_metrics() -> None:
    scraper = MetricsScraper(f"http://127.0.0.1:{_closed_port()}", timeout=0.2, give_up_after=2)
    assert scraper.scrape() is None and not scraper.gave_up
    assert scraper.scrape() is None and scraper.gave_up
    assert scraper.failures == 2


def test_options_are_json_safe_with_secrets_redacted() -> None:
    options = argparse.Namespace(
        secret="s3cret",
        admin_token="tok",
        web_login=None,
        results=Path("results/x.sqlite3"),
        tags=["a"],
        num_users=5,
        custom_key="hidden",
        wsgauge_target={"secret": "s3cret"},
        wsgauge_run_id=3,
    )
    safe = json_safe_options(options, secret_names={"custom_key"})
    assert safe["secret"] == REDACTED and safe["admin_token"] == REDACTED and safe["custom_key"] == REDACTED
    assert safe["web_login"] is None  # unset secrets stay visible as unset
    assert safe["results"] == "results/x.sqlite3" and safe["tags"] == ["a"] and safe["num_users"] == 5
    assert "wsgauge_target" not in safe and "wsgauge_run_id" not in safe
    assert "s3cret" not in repr(safe)
    assert {"python", "locust", "wsgauge"} <= set(versions())


def test_summary_table_reads_merged_histograms(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "s.sqlite3")
    run_id = store.create_run(RunInfo(name="t", target="ws://x/ws", started_at=T0))
    agg = _worker(0)
    agg.incr("errors.chat_message.rate_limited", 2, at=T0)
    agg.set_gauge("users.connected", [1, 1, 1], at=T0)
    samples, events = agg.drain()
    StoreSink(store, run_id)(samples, events)
    store.finish_run(run_id, "completed", ended_at=T0 + 2)
    summary = summarize_run(store, run_id)
    assert summary["latency"]["pong"]["count"] == 100
    assert summary["latency"]["pong"]["p50_us"] == 149
    assert summary["errors"] == {"errors.chat_message.rate_limited": 2}
    assert summary["users"]["peak_connected"] == 3 and summary["sent"] == 103
    text = format_summary(summary, run_id=run_id, run_name="t", status="completed", store_path="r.sqlite3")
    assert "pong" in text and "0.149" in text  # milliseconds with microsecond precision
    assert "chat_message.rate_limited" in text and "stored: r.sqlite3 (run id 1)" in text
    store.close()


def test_probe_says_why_in_one_line() -> None:
    url = f"ws://127.0.0.1:{_closed_port()}/ws"
    with pytest.raises(TargetUnreachable) as info:
        probe(url, timeout=1.0)
    assert str(info.value) == f"cannot reach {url}: connection refused"
    assert fetch_health(f"http://127.0.0.1:{_closed_port()}", timeout=0.5) is None
    assert not is_reference_server({"status": "ok"})
    target = Target("ws://h:1/ws", "http://h:1", "s", None, True)
    assert Target.from_wire(target.to_wire()) == target


def test_embedded_server_starts_answers_and_stops() -> None:
    server = EmbeddedServer(start_timeout=20)
    try:
        handle = server.start()
        assert handle.ws_url.startswith("ws://127.0.0.1:") and handle.http_base.startswith(
            "http://127.0.0.1:"
        )
        probe(handle.ws_url)
        assert is_reference_server(fetch_health(handle.http_base))
        assert handle.db.parent.is_dir() and server.running and not server.died
    finally:
        code = server.stop()
    assert code == 0  # SIGTERM: a clean exit
    assert not handle.db.parent.exists() and not server.running
    assert server.stop() is None  # idempotent


def test_store_thread_runs_calls_in_order_off_the_calling_greenlet(tmp_path: Path) -> None:
    import threading

    thread = StoreThread()
    try:
        assert thread.call(threading.get_ident) != threading.get_ident()
        with pytest.raises(ZeroDivisionError):
            thread.call(lambda: 1 / 0)
        store = RunStore.open(tmp_path / "s.sqlite3")
        run_id = thread.call(store.create_run, RunInfo(name="t", target="ws://x/ws"))
        outbox = Outbox(run_id, "w0", thread)
        tick(_runtime(_worker(0), [FakeUser("connected", 1)]), outbox, now=T0 + 3, final=True)
        payload = parse_payload(outbox.take(final=True))
        StoreSink(store, run_id, thread)(payload.samples, payload.events)
        assert thread.call(lambda: int(store.counters(run_id)["value"].sum())) == 103
        thread.call(store.close)
    finally:
        thread.close()


def test_ctrl_c_in_a_lifecycle_greenlet_reaches_main_without_a_traceback() -> None:
    # In a child process: importing the lifecycle imports Locust, which monkeypatches the interpreter.
    script = (
        "import gevent\n"
        "from loadtest._lifecycle_base import forward_interrupts\n"
        "@forward_interrupts\n"
        "def loop():\n"
        "    gevent.sleep(0.05)\n"
        "    raise KeyboardInterrupt\n"
        "gevent.spawn(loop)\n"
        "try:\n"
        "    gevent.sleep(5)\n"
        "    print('not interrupted')\n"
        "except KeyboardInterrupt:\n"
        "    print('main got KeyboardInterrupt')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "main got KeyboardInterrupt", done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_summary_shows_locusts_missed_rows_labelled_and_equal_to_locusts_table() -> None:
    # In a child process (Locust monkeypatches the interpreter on import): real Locust statistics with the
    # rows the client reports for backlog deliveries, beside an ordinary one.
    script = (
        "import json, locust\n"
        "from locust.stats import RequestStats\n"
        "from loadtest._summary import missed_rows, format_summary\n"
        "stats = RequestStats()\n"
        "for ms in (5, 7, 9):\n"
        "    stats.log_request('WS', 'delivery:chat', ms, 10)\n"
        "for ms in range(100, 2100, 100):\n"
        "    stats.log_request('WS', 'missed:chat', ms, 10)\n"
        "stats.log_request('WS', 'missed:notification', 3456, 10)\n"
        "entries = stats.entries.values()\n"
        "chat = stats.get('missed:chat', 'WS')\n"
        "expected = [chat.get_response_time_percentile(p) for p in (0.5, 0.95, 0.99)]\n"
        "expected.append(chat.max_response_time)\n"
        "rows = missed_rows(entries)\n"
        "text = format_summary({'missed': rows}, run_id=1, run_name='t', status='done', store_path='s')\n"
        "print(json.dumps({'rows': rows, 'expected': expected, 'text': text}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    rows = out["rows"]
    assert list(rows) == ["missed:chat", "missed:notification"]  # delivery:chat is not a missed row
    chat = rows["missed:chat"]
    assert chat["count"] == 20
    assert [chat["p50_ms"], chat["p95_ms"], chat["p99_ms"], chat["max_ms"]] == out["expected"]
    assert rows["missed:notification"] == {
        "count": 1,
        "p50_ms": 3500.0,
        "p95_ms": 3500.0,
        "p99_ms": 3500.0,
        "max_ms": 3456.0,
    }
    lines = out["text"].splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("missed while away (ms)"))
    p50, p95, p99, peak = (f"{v:.0f}" for v in out["expected"])
    assert lines[header + 1].split() == ["missed:chat", "20", p50, p95, p99, peak]
    assert lines[header + 2].split()[:2] == ["missed:notification", "1"]
    assert "Locust's" in lines[header + 3]


def test_shape_info_describes_shapes_with_and_without_a_stage_table() -> None:
    class Ramp:  # a shape computed in tick(): no table to store
        use_common_options = True

    class Steps:
        stages = ({"duration": 5, "users": 10, "spawn_rate": 2, "user_classes": [FakeUser]}, {"users": 25})

    assert shape_info(None) is None
    assert shape_info(Ramp()) == {
        "class": "Ramp",
        "stages": None,
        "planned_peak_users": None,
        "use_common_options": True,
    }
    steps = shape_info(Steps())
    assert steps is not None and steps["planned_peak_users"] == 25 and steps["class"] == "Steps"
    assert steps["stages"][0]["user_classes"] == [str(FakeUser)]  # JSON-safe
    assert json.loads(json.dumps(steps)) == steps


def test_never_connected_needs_failed_connects_and_no_successful_one() -> None:
    refused = {"latency": {}, "errors": {"errors.connect.refused": 4, "errors.connect.http_401": 2}}
    assert never_connected(refused) == "6 connects failed: http_401 2, refused 4"
    some_in = {**refused, "latency": {"connect": {"count": 1}}}
    assert never_connected(some_in) is None  # one user got in: the run measured the target
    assert never_connected({"latency": {}, "errors": {}}) is None  # nobody tried (a back end alone)
    assert never_connected({"latency": {}, "errors": {"errors.chat_message.timeout": 3}}) is None


def test_a_worker_reaches_the_embedded_target_at_its_master_host() -> None:
    # In a child process: the worker lifecycle imports Locust, which monkeypatches the interpreter.
    script = (
        "from loadtest._lifecycle_worker import reached_through\n"
        "from loadtest._target import Target\n"
        "t = Target('ws://127.0.0.1:4321/ws', 'http://127.0.0.1:4321', 's', 'a', True)\n"
        "for host in ('10.199.7.1', 'master.example', 'fd00::1', ''):\n"
        "    moved = reached_through(t, host)\n"
        "    print(moved.ws_url, moved.http_base, moved.secret, moved.admin_token, moved.embedded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ws://10.199.7.1:4321/ws http://10.199.7.1:4321 s a True",
        "ws://master.example:4321/ws http://master.example:4321 s a True",
        "ws://[fd00::1]:4321/ws http://[fd00::1]:4321 s a True",
        "ws://127.0.0.1:4321/ws http://127.0.0.1:4321 s a True",  # no --master-host: unchanged
    ]
