"""Fixtures for the report and gate tests: synthetic runs with known shifts, built once per module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reports.build import build_report
from runstore.names import METRIC_SEND_LAG, ack_metric
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
    """60 s runs, 100 samples per second per metric (p99 has 60 samples above it per run), median 2 ms.

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
    report = build_report(store, base.run_id, directory / "base.html")
    return Runs(store, base, same, shift2, shift20, report)


CHAT = ack_metric("chat_message")
