"""PostgreSQL specifics: several writer processes into one database at once, migration once under a lock,
read-only sessions, and the pooled open/close the monitor does per request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runstore.schema import SCHEMA_VERSION
from runstore.store import RunInfo, RunStore, StoreError, StoreNotFound

REPO_ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from runstore.samples import SampleAggregator
from runstore.store import RunInfo, RunStore

url, who = sys.argv[1], sys.argv[2]
with RunStore.open(url) as store:  # both processes may find an empty database and migrate it: one does
    runs = []
    for i in range(3):
        run = store.create_run(RunInfo(name=f"{who}-{i}", target="x", host=who))
        runs.append(run)
        for chunk in range(5):
            agg = SampleAggregator()
            for s in range(chunk * 20, chunk * 20 + 20):
                agg.record_latency("pong", 500 + s, at=1_700_000_000 + s + 0.5)
                agg.incr("sent.ping", 1, at=1_700_000_000 + s + 0.5)
                agg.set_gauge("users.connected", [1.0], at=1_700_000_000 + s + 0.5)
            store.write_samples(run, agg.drain()[0])
        store.finish_run(run, "completed")
print(" ".join(map(str, runs)))
"""


def test_two_writer_processes_at_once(postgres_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, postgres_url, who],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        )
        for who in ("machine-a", "machine-b")
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        ids += [int(x) for x in out.split()]
    assert len(set(ids)) == 6
    with RunStore.open(postgres_url, readonly=True) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert {r.host for r in store.list_runs()} == {"machine-a", "machine-b"}
        assert len(store.list_runs(host="machine-a")) == 3
        for run in ids:
            assert store.counters_bucketed(run, 3600)["value"].tolist() == [100]
            assert store.merged_histogram(run, "pong").get_total_count() == 100
            assert store.gauges_bucketed(run, 60)["seconds"].sum() == 100


def test_read_only_sessions_and_an_empty_database(postgres_url: str) -> None:
    with pytest.raises(StoreNotFound, match="no run store in"):
        RunStore.open(postgres_url, readonly=True)
    with RunStore.open(postgres_url) as store:
        run = store.create_run(RunInfo(name="r", target="x"))
    for _ in range(20):  # the monitor's open-per-request: pooled, no new session each time
        with RunStore.open(postgres_url, readonly=True) as reader:
            assert reader.get_run(run).name == "r"
    with RunStore.open(postgres_url, readonly=True) as reader, pytest.raises(reader._backend.database_errors):
        reader.create_run(RunInfo(name="w", target="x"))


def test_a_missing_database_is_a_clear_error(postgres_url: str) -> None:
    with pytest.raises(StoreError, match=r"cannot connect to the run store .*does not exist"):
        RunStore.open(postgres_url + "_absent")


def test_monitor_and_reports_take_the_url(postgres_url: str) -> None:
    from monitor.__main__ import results_problem
    from reports.build import default_output
    from reports.data import load_run
    from tests.synthetic_runs import write_synthetic_run

    assert results_problem(postgres_url) is None  # reachable, no store yet: the monitor waits for one
    run = write_synthetic_run(postgres_url, seconds=90, rate=3)
    assert results_problem(postgres_url) is None
    assert "cannot connect" in (results_problem(postgres_url + "_absent") or "")
    data = load_run(postgres_url, run.run_id)
    assert int(data.run["id"]) == run.run_id
    assert default_output(postgres_url, run.run_id) == Path("results") / f"report-{run.run_id}.html"
