"""Run store back ends: SQLite against PostgreSQL in the same run, and what a 5-s probe costs per day.

Part 1 writes one run of ``--seconds`` seconds x ``--metrics`` latency metrics (plus 6 counters and 4 gauges)
the way a live writer does -- one ``write_samples`` per second -- into a fresh SQLite file and a fresh
PostgreSQL database (127.0.0.1:5432, created and dropped here), then reads it back the way the monitor and
the reports do (per-second latency, one merged histogram, counters and gauges in minute buckets). The two
sides take turns ``--repeat`` times; it prints median seconds and the PostgreSQL / SQLite ratio. Both
sides run the same Python (histogram merges, summaries): the ratio is what the database adds.

Part 2 (``--probe-hours H``) writes H hours of a probe's series through the real store code -- every 5 s
one sample of each of 5 latency metrics, 6 counters and 4 gauges (what ``wsgauge-probe`` records) -- into
SQLite, then measures the vacuumed file with all rows, without the per-second rows, and without the
per-minute rows too (``apply_retention``), and scales each to a day: the bytes a day of seconds, minutes
and hours cost, and so the bounded size and the growth per day under the default retention.

Usage::

    python bench/store_backends.py [--seconds 600] [--metrics 3] [--repeat 3] [--probe-hours 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from runstore import histogram as hdr  # noqa: E402
from runstore._postgres import close_pools  # noqa: E402
from runstore.samples import GaugeStat, SecondSample  # noqa: E402
from runstore.store import (  # noqa: E402
    DEFAULT_KEEP_MINUTES_S,
    DEFAULT_KEEP_SECONDS_S,
    RunInfo,
    RunStore,
)

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
START = 1_700_000_000 - 1_700_000_000 % 3600
PROBE_METRICS = ("pong", "ack:chat_message", "delivery:chat", "ack:progress_update", "sync:progress")
COUNTERS = tuple(f"sent.t{i}" for i in range(6))
GAUGES = ("users.connected", "users.reconnecting", "users.disconnected", "queue_size")


def _series(
    seconds: int, metrics: tuple[str, ...], every: int, per_sample: int, seed: int
) -> list[SecondSample]:
    rng = random.Random(seed)
    out = []
    for offset in range(0, seconds, every):
        sample = SecondSample(START + offset)
        for metric in metrics:
            histogram = hdr.new_histogram()
            for _ in range(per_sample):
                hdr.record_us(histogram, rng.lognormvariate(6.5, 0.5))
            sample.latency[metric] = histogram
        for name in COUNTERS:
            sample.counters[name] = 1 + rng.randrange(3)
        for name in GAUGES:
            value = float(rng.randrange(3))
            sample.gauges[name] = GaugeStat(value * 2, 2, 0.0, value)
        out.append(sample)
    return out


def _write_and_read(
    location: str, samples: list[SecondSample], metrics: tuple[str, ...]
) -> tuple[float, float]:
    t0 = time.perf_counter()
    with RunStore.open(location) as store:
        run = store.create_run(RunInfo(name="bench", target="x", started_at=float(START)))
        for sample in samples:
            store.write_samples(run, [sample])
        store.finish_run(run, "completed")
    t1 = time.perf_counter()
    with RunStore.open(location, readonly=True) as store:
        store.latency(run, list(metrics))
        store.merged_histogram(run, metrics[0])
        store.counters_bucketed(run, 60)
        store.gauges_bucketed(run, 60)
        store.time_range(run)
    return t1 - t0, time.perf_counter() - t1


def _fresh_database() -> str:
    name = f"wsgauge_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop_database(url: str) -> None:
    close_pools(url)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def backends(seconds: int, n_metrics: int, repeat: int) -> None:
    metrics = tuple(f"ack:m{i}" for i in range(n_metrics))
    samples = _series(seconds, metrics, every=1, per_sample=20, seed=1)
    times: dict[str, list[tuple[float, float]]] = {"sqlite": [], "postgresql": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            for side in ("sqlite", "postgresql") if i % 2 == 0 else ("postgresql", "sqlite"):
                if side == "sqlite":
                    times[side].append(_write_and_read(str(Path(tmp) / f"b{i}.sqlite3"), samples, metrics))
                else:
                    url = _fresh_database()
                    try:
                        times[side].append(_write_and_read(url, samples, metrics))
                    finally:
                        _drop_database(url)
    print(f"run of {seconds} s x {n_metrics} latency metrics, 6 counters, 4 gauges; one write per second")
    med = {
        s: (statistics.median(w for w, _ in t), statistics.median(r for _, r in t)) for s, t in times.items()
    }
    for side, (w, r) in med.items():
        print(
            f"  {side:10}  write {w:7.2f} s ({w / seconds * 1e3:6.2f} ms per second of run)  read {r:6.3f} s"
        )
    print(
        f"  PostgreSQL / SQLite: write {med['postgresql'][0] / med['sqlite'][0]:.2f}x, "
        f"read {med['postgresql'][1] / med['sqlite'][1]:.2f}x  (median of {repeat})"
    )


def probe_size(hours: float) -> None:
    seconds = int(hours * 3600)
    samples = _series(seconds, PROBE_METRICS, every=5, per_sample=1, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.sqlite3"
        with RunStore.open(path) as store:
            empty = _size(store, path)
            run = store.create_run(RunInfo(name="probe", target="x", kind="probe", started_at=float(START)))
            for i in range(0, len(samples), 12):  # a minute per write, as a probe's writer thread batches
                store.write_samples(run, samples[i : i + 12])
            full = _size(store, path)
            end = START + seconds + 3600  # every row older than the cut-offs below
            store.apply_retention(run, keep_seconds=0, keep_minutes=None, now=end)
            no_seconds = _size(store, path)
            store.apply_retention(run, keep_seconds=0, keep_minutes=0, now=end)
            hours_only = _size(store, path)
    day = 86_400 / seconds
    per_day = {
        "seconds": (full - no_seconds) * day,
        "minutes": (no_seconds - hours_only) * day,
        "hours": (hours_only - empty) * day,
    }
    bounded = (
        per_day["seconds"] * DEFAULT_KEEP_SECONDS_S / 86_400
        + per_day["minutes"] * DEFAULT_KEEP_MINUTES_S / 86_400
    )
    print(
        f"5-s probe, {len(PROBE_METRICS)} latency metrics, 6 counters, 4 gauges;"
        f" {hours:g} h written, scaled to a day"
    )
    for level, size in per_day.items():
        print(f"  per-{level[:-1]:6} rows: {size / 1e6:7.2f} MB per day")
    print(f"  without retention: {sum(per_day.values()) / 1e6:.2f} MB per day")
    print(
        f"  default retention (seconds {DEFAULT_KEEP_SECONDS_S / 86_400:g} d, minutes "
        f"{DEFAULT_KEEP_MINUTES_S / 86_400:g} d, hours kept): bounded part {bounded / 1e6:.1f} MB, "
        f"then {per_day['hours'] / 1e3:.1f} kB per day ({per_day['hours'] * 365 / 1e6:.1f} MB a year)"
    )


def _size(store: RunStore, path: Path) -> int:
    store.vacuum()
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # WAL mode: VACUUM's pages reach the file here
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--metrics", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--probe-hours", type=float, default=2.0, help="0: skip the probe size")
    parser.add_argument("--skip-backends", action="store_true")
    args = parser.parse_args()
    if not args.skip_backends:
        backends(args.seconds, args.metrics, args.repeat)
    if args.probe_hours > 0:
        probe_size(args.probe_hours)


if __name__ == "__main__":
    main()
