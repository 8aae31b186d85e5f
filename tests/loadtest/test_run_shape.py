"""A run driven by a user-supplied ``LoadTestShape`` is named and described by the shape, not by -u / -r."""

from __future__ import annotations

from pathlib import Path

from tests.loadtest.locust_runs import LOCUSTFILES, run_locust

SHAPE_FILE = Path(__file__).parent / "shapes" / "two_steps.py"


def test_shape_run_stores_the_shape_its_stages_and_the_peak_users(tmp_path: Path) -> None:
    # Locust's -f takes a list: the wsgauge users plus a file holding only the shape.
    run = run_locust(
        tmp_path / "wsgauge.sqlite3",
        *("-f", f"{LOCUSTFILES},{SHAPE_FILE}", "--report", "false"),
        timeout=90,
    )
    assert run.returncode == 0, run.output
    record = run.record()
    assert record.status == "completed", run.output
    assert record.name == "ChurnUser+StudentUser, TwoSteps up to 4 users"
    assert record.options["shape"] == {
        "class": "TwoSteps",
        "stages": [
            {"duration": 3, "users": 2, "spawn_rate": 10},
            {"duration": 8, "users": 4, "spawn_rate": 10},
        ],
        "planned_peak_users": 4,
        "use_common_options": False,
    }
    assert record.options["num_users"] is None and record.options["spawn_rate"] is None
    assert record.summary is not None and record.summary["peak_users"] == 4


def test_a_run_without_a_shape_records_none_and_its_users(tmp_path: Path) -> None:
    run = run_locust(tmp_path / "wsgauge.sqlite3", "-u", "3", "-r", "10", "-t", "3s", "--report", "false")
    assert run.returncode == 0, run.output
    record = run.record()
    assert record.options["shape"] is None and record.options["num_users"] == 3
    assert record.name == "ChurnUser+StudentUser, 3 users"
    assert record.summary is not None and record.summary["peak_users"] == 3
