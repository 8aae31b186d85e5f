"""Schema v2: migrations from a real v1 file, run kind/host/tag/build, continuing a probe run, roll-ups of
counters and gauges chosen by the readers, and retention that keeps the roll-ups exact."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from runstore import histogram as hdr
from runstore.names import EVENT_ALERT_FIRING, GAUGE_QUEUE_SIZE, METRIC_PONG, state_gauge
from runstore.samples import ConnectionEvent, SampleAggregator
from runstore.schema import SCHEMA_VERSION, migrations
from runstore.store import RunInfo, RunStore, cover

V1_FILE = Path(__file__).parent / "data" / "store_v1.sqlite3"
"""Written by the schema-v1 store code (``data/make_store_v1.py``): a 2 h 10 min run from mid-hour, and a
run left ``running``."""


def _v1_copy(tmp_path: Path) -> Path:
    path = tmp_path / "v1.sqlite3"
    shutil.copyfile(V1_FILE, path)
    return path


def _probe_samples(start: int, seconds: int, seed: int, every: int = 5):
    """A probe-like series: a ping every ``every`` seconds, gauges each second, a counter per ping."""
    rng = random.Random(seed)
    agg = SampleAggregator()
    for s in range(start, start + seconds):
        at = s + 0.5
        if s % every == 0:
            agg.record_latency(METRIC_PONG, rng.lognormvariate(6, 0.4), at=at)
            agg.incr("sent.ping", 1, at=at)
        agg.set_gauge(state_gauge("connected"), [1.0, 1.0], at=at)
        agg.set_gauge(GAUGE_QUEUE_SIZE, [float(rng.randint(0, 4)), 0.0], at=at)
    return agg.drain()[0]


def _frames_equal(a, b) -> None:
    assert a["name"].tolist() == b["name"].tolist()
    assert a["t"].tolist() == b["t"].tolist()
    for column in a.columns[2:]:
        np.testing.assert_allclose(a[column].to_numpy(float), b[column].to_numpy(float))


def test_migrations_are_numbered_without_gaps() -> None:
    for dialect in ("sqlite",):
        versions = [m.version for m in migrations(dialect)]
        assert versions == list(range(1, SCHEMA_VERSION + 1)), dialect


def test_a_v1_file_reads_read_only_as_it_is(tmp_path: Path) -> None:
    path = _v1_copy(tmp_path)
    before = path.read_bytes()
    with RunStore.open(path, readonly=True) as store:
        assert store.schema_version == 1
        run, _live = sorted(store.list_runs(), key=lambda r: r.id)
        assert (run.kind, run.host, run.tag, run.build) == ("load", "oldbox", None, "abc1234")
        assert store.list_runs(kind="probe") == []
        seconds = store.counters(run.id)
        assert store.counters_bucketed(run.id, 3600)["value"].sum() == seconds["value"].sum()
        assert not store.gauges_bucketed(run.id, 60).empty
        assert store.merged_histogram(run.id, METRIC_PONG).get_total_count() == len(
            store.latency(run.id, [METRIC_PONG])
        )
    assert path.read_bytes() == before  # nothing written


def test_a_v1_file_upgrades_in_place_and_reads_the_same(tmp_path: Path) -> None:
    path = _v1_copy(tmp_path)
    with RunStore.open(path, readonly=True) as old:
        run = min(r.id for r in old.list_runs())
        expected = {
            "range": old.time_range(run),
            "latency": old.latency(run, with_hist=True),
            "minutes": old.latency(run, resolution=60),
            "counters": old.counters_bucketed(run, 60),
            "gauges": old.gauges_bucketed(run, 60),
            "gauges_s": old.gauges(run),
            "events": old.events(run),
            "pong": hdr.counts_view(
                old.merged_histogram(run, METRIC_PONG, 1_700_001_500, 1_700_008_000)
            ).copy(),
        }
    with RunStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    with RunStore.open(path, readonly=True) as new:
        assert new.schema_version == SCHEMA_VERSION
        record = new.get_run(run)
        assert (record.kind, record.host, record.build) == ("load", "oldbox", "abc1234")
        assert new.time_range(run) == expected["range"]
        assert new.latency(run, with_hist=True).equals(expected["latency"])
        assert new.latency(run, resolution=60).equals(expected["minutes"])
        _frames_equal(new.counters_bucketed(run, 60), expected["counters"])
        _frames_equal(new.gauges_bucketed(run, 60), expected["gauges"])
        assert new.gauges(run).equals(expected["gauges_s"])
        assert new.events(run).equals(expected["events"])
        pong = new.merged_histogram(run, METRIC_PONG, 1_700_001_500, 1_700_008_000)
        assert np.array_equal(hdr.counts_view(pong), expected["pong"])
        # The migration computed the hour roll-ups: an exact merge of the minutes.
        hours = new.latency(run, [METRIC_PONG], resolution=3600)
        assert (
            len(hours) == 3
            and hours["count"].sum() == expected["minutes"].query("metric == 'pong'")["count"].sum()
        )
        counters = new.counters_bucketed(run, 3600)
        assert counters["value"].sum() == expected["counters"]["value"].sum()
    with RunStore.open(path) as again:  # a second open finds nothing to do
        assert again.schema_version == SCHEMA_VERSION


def test_an_upgraded_v1_file_takes_new_writes(tmp_path: Path) -> None:
    path = _v1_copy(tmp_path)
    with RunStore.open(path) as store:
        run = store.create_run(RunInfo(name="after", target="x", kind="probe", tag="nightly"))
        store.write_samples(run, _probe_samples(1_700_100_000, 120, seed=1))
        assert store.get_run(run).tag == "nightly"
        assert store.counters_bucketed(run, 60)["value"].sum() == 24


def test_kind_host_tag_build(tmp_path: Path) -> None:
    with RunStore.open(tmp_path / "r.sqlite3") as store:
        a = store.create_run(RunInfo(name="a", target="x", machine={"hostname": "ci-1"}, git_commit="c0ffee"))
        b = store.create_run(
            RunInfo(name="b", target="x", kind="probe", host="edge-2", tag="prod", build="v7")
        )
        c = store.create_run(RunInfo(name="c", target="x", tag="prod"))
        ra, rb, rc = store.get_run(a), store.get_run(b), store.get_run(c)
        assert (ra.kind, ra.host, ra.tag, ra.build) == ("load", "ci-1", None, "c0ffee")
        assert (rb.kind, rb.host, rb.tag, rb.build) == ("probe", "edge-2", "prod", "v7")
        assert rc.host  # this machine's name
        assert [r.id for r in store.list_runs(kind="probe")] == [b]
        assert [r.id for r in store.list_runs(tag="prod")] == [c, b]
        assert [r.id for r in store.list_runs(tag="prod", kind="load")] == [c]
        assert [r.id for r in store.list_runs(host="ci-1", build="c0ffee")] == [a]
        with pytest.raises(ValueError, match="run kind"):
            store.create_run(RunInfo(name="d", target="x", kind="soak"))
        with pytest.raises(sqlite3.IntegrityError):  # the schema refuses it too
            store._db.execute("UPDATE runs SET kind = 'soak' WHERE id = ?", (a,))


def test_open_run_continues_the_same_probe_series(tmp_path: Path) -> None:
    path = tmp_path / "probe.sqlite3"
    info = RunInfo(name="edge", target="ws://prod/ws", kind="probe", build="v1")
    with RunStore.open(path) as store:
        first = store.open_run(info)
        store.write_samples(first, _probe_samples(1_700_000_000, 30, seed=1))
        store.finish_run(first, "stopped")
        other = store.open_run(RunInfo(name="edge", target="x"))  # a load run of that name is another run
        assert other != first
    with RunStore.open(path) as store:  # the probe restarts
        again = store.open_run(RunInfo(name="edge", target="ws://prod/ws", kind="probe", build="v2"))
        assert again == first
        record = store.get_run(again)
        assert record.status == "running" and record.ended_at is None and record.build == "v2"
        store.write_samples(again, _probe_samples(1_700_000_030, 30, seed=2))
        assert store.counters_bucketed(again, 60)["value"].sum() == 12
        assert store.find_run("probe", "edge").id == first
        assert store.find_run("probe", "nope") is None


def test_alert_events_are_stored() -> None:
    event = ConnectionEvent(1.0, "p99 ack:chat_message < 50ms over 5m", EVENT_ALERT_FIRING, '{"value": 61}')
    assert event.kind == "alert_firing"


@pytest.mark.parametrize(
    ("width", "start", "end", "expected"),
    [
        (1, 10, 20, [(1, 10, 20)]),
        (60, 30, 200, [(60, 60, 180), (1, 30, 60), (1, 180, 200)]),
        (3600, None, None, [(3600, None, None)]),
        (120, 3590, 7300, [(60, 3600, 7260), (1, 3590, 3600), (1, 7260, 7300)]),
        (None, 3590, 7300.5, [(3600, 3600, 7200), (60, 7200, 7260), (1, 3590, 3600), (1, 7260, 7301)]),
        (7, 0, 100, [(1, 0, 100)]),
        (60, 10, 50, [(1, 10, 50)]),
    ],
)
def test_cover_picks_the_coarsest_exact_rows(width, start, end, expected) -> None:
    assert sorted(cover((3600, 60, 1), width, start, end), key=str) == sorted(expected, key=str)


def test_rollups_match_the_seconds_for_any_bucket_and_range(tmp_path: Path) -> None:
    start = 1_700_000_000 - 1_700_000_000 % 3600 - 1234  # crosses hour boundaries
    with RunStore.open(tmp_path / "r.sqlite3") as store:
        run = store.create_run(RunInfo(name="r", target="x"))
        samples = _probe_samples(start, 2 * 3600, seed=3, every=10)
        store.write_samples(run, samples[:4000])
        store.write_samples(run, samples[4000:])
        store.write_samples(run, samples[100:103])  # late duplicates merge (counts add, seconds do not)
        raw = store.counters(run)
        gauges = store.gauges(run)
        for width, lo, hi in (
            (60, None, None),
            (3600, None, None),
            (120, start + 7, start + 9000),
            (7, start, None),
        ):
            got = store.counters_bucketed(run, width, start=lo, end=hi)
            part = raw[(raw["t"] >= (lo or 0)) & (raw["t"] < (hi or 2**40))].copy()
            part["b"] = part["t"] // width * width
            want = part.groupby(["name", "b"], as_index=False)["value"].sum()
            assert got["t"].tolist() == want["b"].tolist() and got["value"].tolist() == want["value"].tolist()
            g = store.gauges_bucketed(run, width, start=lo, end=hi)
            part = gauges[(gauges["t"] >= (lo or 0)) & (gauges["t"] < (hi or 2**40))].copy()
            part["b"] = part["t"] // width * width
            agg = part.groupby(["name", "b"], as_index=False).agg(
                sum=("sum", "sum"),
                count=("count", "sum"),
                min=("min", "min"),
                max=("max", "max"),
                seconds=("t", "size"),
            )
            assert g["t"].tolist() == agg["b"].tolist()
            for column in ("sum", "count", "min", "max", "seconds"):
                np.testing.assert_allclose(g[column], agg[column])
            lat = store.latency_bucketed(run, width, [METRIC_PONG], lo, hi)
            seconds = store.latency(run, [METRIC_PONG], lo, hi, with_hist=True)
            seconds["b"] = seconds["t"] // width * width
            for (b, group), row in zip(seconds.groupby("b"), lat.itertuples(), strict=True):
                merged = hdr.merge_encoded(group["hist"])
                assert row.t == b and row.count == merged.get_total_count()
                assert row.p99_us == merged.get_value_at_percentile(99)
        # The writer kept roll-ups at both resolutions for every table.
        for resolution in (60, 3600):
            assert not store.latency(run, resolution=resolution).empty
            assert store._db.execute(
                "SELECT COUNT(*) FROM counters WHERE run_id = ? AND resolution = ?", (run, resolution)
            ).fetchone()[0]


def test_retention_drops_seconds_and_keeps_buckets_exact(tmp_path: Path) -> None:
    hour = 1_700_000_000 - 1_700_000_000 % 3600
    start = hour - 2 * 3600
    with RunStore.open(tmp_path / "r.sqlite3") as store:
        run = store.create_run(RunInfo(name="probe", target="x", kind="probe", started_at=start))
        store.write_samples(run, _probe_samples(start, 4 * 3600, seed=4, every=60))
        store.write_server_metrics(run, start + 10, {"m": 1.0})
        before = {w: store.counters_bucketed(run, w) for w in (60, 3600)}
        gauges_before = store.gauges_bucketed(run, 3600)
        pong_before = store.merged_histogram(run, METRIC_PONG, start, start + 4 * 3600).get_total_count()
        now = start + 4 * 3600
        deleted = store.apply_retention(run, keep_seconds=3600 + 30, keep_minutes=2 * 3600 + 1, now=now)
        assert (
            deleted["latency"]
            and deleted["counters"]
            and deleted["gauges"]
            and deleted["server_metrics"] == 1
        )
        # Seconds older than the cut-off (aligned down to a minute) are gone; minutes older than 3 h too.
        assert store.counters(run)["t"].min() == now - 3600 - 60
        assert store.latency(run, resolution=60)["t"].min() == now - 3 * 3600
        for width in (60, 3600):
            got = store.counters_bucketed(run, width, start=now - 3 * 3600 if width == 60 else None)
            want = before[width]
            if width == 60:
                want = want[want["t"] >= now - 3 * 3600].reset_index(drop=True)
            _frames_equal(got, want)
        _frames_equal(store.gauges_bucketed(run, 3600), gauges_before)
        assert (
            store.merged_histogram(run, METRIC_PONG, start, start + 4 * 3600).get_total_count() == pong_before
        )
        assert store.time_range(run)[0] == start
        with pytest.raises(ValueError, match="keep_minutes"):
            store.apply_retention(run, keep_seconds=7200, keep_minutes=3600)
