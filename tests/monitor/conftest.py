"""Fixtures for the monitor tests: synthetic run stores, shared per session.

Browser tests (``@pytest.mark.browser``) need Debian's ``chromium`` and ``chromium-driver`` (driven through
:mod:`tests.chromium`); they run headless from a plain ``python -m pytest`` and are skipped where Chromium is
missing.
"""

from __future__ import annotations

import os
import sqlite3
import sys

# numpy's OpenBLAS starts a thread per core for every np.dot; on a shared, loaded machine the run store's
# per-second histogram summaries then take 50 ms instead of 2 (measured), and the synthetic stores these
# tests write take minutes. Effective only where numpy is not imported yet.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.synthetic_runs import SyntheticRun, write_synthetic_run

RATE = 10
"""Samples per second per metric in the synthetic runs (tests derive expected counts from it)."""


@dataclass(frozen=True)
class Stores:
    """One store with two comparable runs, and stores that are wrong in every way the page must explain."""

    path: Path
    run: SyntheticRun
    baseline: SyntheticRun
    missing: Path
    empty: Path
    newer: Path
    corrupt: Path
    no_samples: Path


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    from runstore.store import RunInfo, RunStore

    root = tmp_path_factory.mktemp("monitor-stores")
    path = root / "runs.sqlite3"
    baseline = write_synthetic_run(
        path, name="baseline", start=1_700_000_000, seconds=600, rate=RATE, users=8, error_every=60, seed=2
    )
    run = write_synthetic_run(
        path,
        name="candidate",
        start=1_700_100_000,
        seconds=600,
        rate=RATE,
        users=8,
        error_every=7,
        outage=(300, 330),
        latency_factor=1.5,
        seed=3,
    )
    empty = root / "empty.sqlite3"
    RunStore.open(empty).close()
    newer = root / "newer.sqlite3"
    RunStore.open(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    corrupt = root / "corrupt.sqlite3"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xde\xad\xbe\xef" * 1024)
    no_samples = root / "no-samples.sqlite3"
    with RunStore.open(no_samples) as store:
        store.create_run(RunInfo(name="just-started", target="ws://127.0.0.1:1/ws", started_at=1.7e9))
    return Stores(path, run, baseline, root / "missing.sqlite3", empty, newer, corrupt, no_samples)
