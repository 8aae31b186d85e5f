"""The Live view's data functions (monitor/live.py) and the runs list's host/tag/build facets."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from monitor import data, live
from runstore.store import RunStore
from tests.monitor.synthetic_probe import DISCONNECTED_RULE, store_has_kinds, write_synthetic_probe

needs_kinds = pytest.mark.skipif(not store_has_kinds(), reason="the run store has no run kinds (schema v1)")


def test_live_range_ends_now_while_writing_and_never_starts_before_the_first_sample() -> None:
    span = (1_000_000, 1_000_000 + 3 * 86_400)
    end = span[1] + 1
    assert live.live_range(span, "15m", live=False, now=end + 500) == (end - 900, end)
    assert live.live_range(span, "24h", live=True, now=end + 60.7) == (end + 60 - 86_400, end + 60)
    assert live.live_range(span, "7d", live=False, now=0) == (span[0], end)  # only 3 days recorded
    assert live.live_range(span, "bogus", live=False, now=0) == (end - 86_400, end)  # the default, 24 h
    assert live.parse_window("7d") == "7d" and live.parse_window(None) == live.DEFAULT_WINDOW


def _gauges(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["name", "t", "sum"])


def test_connection_status_is_the_newest_second_and_its_worst_state() -> None:
    frame = _gauges(
        [
            ("users.connected", 10, 3),
            ("users.disconnected", 10, 0),
            ("users.connected", 11, 2),
            ("users.reconnecting", 11, 1),
            ("users.disconnected", 11, 0),
        ]
    )
    status = live.connection_status(frame)
    assert status.t == 11 and status.state == "reconnecting"
    assert status.text == "reconnecting 1 · connected 2"
    assert live.connection_status(_gauges([("users.disconnected", 5, 1)])).state == "disconnected"
    assert live.connection_status(_gauges([("users.connected", 5, 3)])).state == "connected"
    empty = live.connection_status(_gauges([("queue_size", 5, 3)]))
    assert empty.state == "unknown" and empty.t is None


def test_alert_intervals_pair_firing_with_resolved_per_rule() -> None:
    events = [
        {"ts": 5.0, "user": "b", "kind": "alert_resolved", "detail": ""},  # began before what was read
        {"ts": 10.0, "user": "a", "kind": "alert_firing", "detail": '{"value_ms": 61}'},
        {"ts": 12.0, "user": "b", "kind": "alert_firing", "detail": "not json"},
        {"ts": 15.0, "user": "a", "kind": "alert_firing", "detail": "{}"},  # repeated: keeps the first
        {"ts": 20.0, "user": "a", "kind": "alert_resolved", "detail": ""},
        {"ts": 30.0, "user": "a", "kind": "alert_firing", "detail": ""},
    ]
    alerts = live.alert_intervals(events)
    assert [(a.rule, a.start, a.end) for a in alerts] == [
        ("a", 10.0, 20.0),
        ("b", 12.0, None),
        ("a", 30.0, None),
    ]
    assert alerts[0].detail == {"value_ms": 61} and alerts[1].detail == {"detail": "not json"}
    assert [a.firing for a in alerts] == [False, True, True]


@needs_kinds
def test_read_status_of_a_probe_in_an_outage_and_after_it(tmp_path: Path) -> None:
    path = tmp_path / "probe.sqlite3"
    start = int(time.time()) - 3600
    probe = write_synthetic_probe(
        path, start=start, seconds=3600, outage=(3000, 3600), resolved=False, live=True
    )
    with RunStore.open(path, readonly=True) as store:
        run = store.get_run(probe.run_id)
        assert live.is_probe(run)
        span = store.time_range(probe.run_id)
        assert span is not None
        status = live.read_status(store, run, float(span[1]), now=run.heartbeat_at + 1)
        # ... and then it recovered: read the status as it was just after the outage of a second probe.
        path2 = tmp_path / "probe2.sqlite3"
        write_synthetic_probe(path2, start=start, seconds=3600, outage=(1000, 1200))
    assert status.writing and status.connection.state == "disconnected"
    assert status.connection.users == {"connected": 0.0, "reconnecting": 0.0, "disconnected": 3.0}
    assert [(a.rule, a.start, a.end) for a in status.alerts] == [(DISCONNECTED_RULE, start + 3030.5, None)]
    assert status.firing == list(status.alerts)
    with RunStore.open(path2, readonly=True) as store:
        run2 = store.get_run(1)
        span2 = store.time_range(1)
        assert span2 is not None
        after = live.read_status(store, run2, float(span2[1]), now=run2.heartbeat_at + 3600)
    assert after.connection.state == "connected" and not after.firing and not after.writing
    assert [(a.start, a.end) for a in after.alerts] == [(start + 1030.5, start + 1201.5)]


@needs_kinds
def test_runs_list_shows_and_filters_host_tag_and_build(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    write_synthetic_probe(path, name="eu", seconds=60, host="h1", tag="production", build="2.4.1")
    write_synthetic_probe(path, name="us", seconds=60, host="h2", tag="production", build="2.5.0")
    write_synthetic_probe(path, name="staging", seconds=60, host="h2", tag="staging", build="2.5.0")
    with RunStore.open(path, readonly=True) as store:
        rows = data.list_runs(store)
    assert {r.kind for r in rows} == {"probe"}
    assert data.facet_options(rows) == {
        "host": ["h1", "h2"],
        "tag": ["production", "staging"],
        "build": ["2.4.1", "2.5.0"],
    }
    names = lambda chosen: sorted(r.name for r in data.filter_runs(rows, chosen))  # noqa: E731
    assert names({"host": "h2"}) == ["staging", "us"]
    assert names({"host": "h2", "tag": "production"}) == ["us"]
    assert names({"build": "2.4.1", "tag": None}) == ["eu"]
    assert names({"host": "nowhere"}) == []
    assert names({}) == ["eu", "staging", "us"]
