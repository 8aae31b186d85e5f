"""The console summary says in one line when the load generator, not the target, set some seconds' latency."""

from __future__ import annotations

from pathlib import Path

from loadtest._summary import format_summary, summarize_run
from runstore.store import RunStore
from tests.health_runs import write_health_run


def _printed(store_path: Path, run_id: int) -> tuple[dict, str]:
    with RunStore.open(store_path, readonly=True) as store:
        summary = summarize_run(store, run_id)
    text = format_summary(summary, run_id=run_id, run_name="t", status="done", store_path=str(store_path))
    return summary, text


def test_a_generator_bound_run_says_so_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    run = write_health_run(path, gc_seconds={1, 2, 3}, cpu_seconds={3, 10}, lag_seconds={20})
    summary, text = _printed(path, run.run_id)
    assert summary["generator"] == {
        "judged_s": 39,
        "bound_s": 5,
        "reasons": {"GC": 3, "CPU": 2, "loop lag": 1},
        "sentence": "latency in 5 of 39 seconds is the load generator's, not the target's: "
        "GC 3, CPU 2, loop lag 1",
    }
    lines = [line for line in text.splitlines() if line.startswith("generator-bound:")]
    assert lines == [f"generator-bound: {summary['generator']['sentence']}"]


def test_healthy_and_older_runs_print_nothing_about_the_generator(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    healthy = write_health_run(path, name="healthy")
    old = write_health_run(path, name="old", health=False)
    summary, text = _printed(path, healthy.run_id)
    assert summary["generator"]["bound_s"] == 0 and "generator-bound" not in text
    summary, text = _printed(path, old.run_id)
    assert summary["generator"] is None and "generator-bound" not in text
