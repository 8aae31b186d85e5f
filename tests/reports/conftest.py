"""Fixtures for the report and gate tests: synthetic runs with known shifts, built once per module."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from reports.build import build_report
from runstore.names import METRIC_CONNECT, METRIC_SEND_LAG, ack_metric
from runstore.samples import SampleAggregator
from runstore.store import RunStore
from tests.synthetic_runs import DEFAULT_METRICS, SyntheticRun, write_synthetic_run

REPORT_METRICS = (*DEFAULT_METRICS, METRIC_SEND_LAG)


@dataclass(frozen=True)
class Runs:
    """One store with a baseline and candidates of known shifts, plus the baseline's report."""

    store: Path
    base: SyntheticRun
    same: SyntheticRun
    shift2: SyntheticRun
    shift20: SyntheticRun
    report: Path


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """60 s runs, 100 samples per second per metric (p99 has 60 samples above it per run), median 2 ms,
    1,000 handshakes each (10 users, 990 more ``connect`` samples: enough for the gate to judge its p99).

    ``base`` has errors every 7th second and a 5-second outage; ``same`` is another seed of the same build;
    ``shift2`` / ``shift20`` are 2 % / 20 % slower everywhere.
    """
    directory = tmp_path_factory.mktemp("reports")
    store = directory / "runs.sqlite3"
    common = {"seconds": 60, "rate": 100, "median_us": 2000.0, "metrics": REPORT_METRICS, "error_every": 7}
    base = write_synthetic_run(store, name="base", seed=1, outage=(20, 25), **common)
    same = write_synthetic_run(store, name="same", seed=2, outage=(20, 25), **common)
    shift2 = write_synthetic_run(store, name="shift2", seed=3, latency_factor=1.02, outage=(20, 25), **common)
    shift20 = write_synthetic_run(
        store, name="shift20", seed=4, latency_factor=1.2, outage=(20, 25), **common
    )
    for run in (base, same, shift2, shift20):
        add_handshakes(store, run, 990, median_us=2000.0, seed=run.run_id)
    report = build_report(store, base.run_id, directory / "base.html")
    return Runs(store, base, same, shift2, shift20, report)


def add_handshakes(store: Path, run: SyntheticRun, count: int, *, median_us: float, seed: int) -> None:
    """``count`` more ``connect`` samples in the run's first second (the gate judges p99 from 1,000)."""
    rng = random.Random(seed)
    aggregator = SampleAggregator()
    for _ in range(count):
        aggregator.record_latency(
            METRIC_CONNECT, rng.lognormvariate(math.log(median_us), 0.5), at=run.start + 0.5
        )
    samples, _ = aggregator.drain()
    with RunStore.open(store) as writer:
        writer.write_samples(run.run_id, samples)


CHAT = ack_metric("chat_message")
