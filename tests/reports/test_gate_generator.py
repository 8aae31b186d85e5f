"""The gate notes a side whose load generator set over a share of its seconds' latency, and only notes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.__main__ import main
from reports.build import build_report
from reports.data import load_run
from reports.gate.generator import run_health
from tests.health_runs import HealthRun, write_health_run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, HealthRun]]:
    path = tmp_path_factory.mktemp("gate-health") / "runs.sqlite3"
    bound = {15, 16, 22, 30}  # 4 of the ~30 seconds after the warm-up: over 5 %
    runs = {
        "base": write_health_run(path, name="base", seconds=60, seed=1),
        "bound": write_health_run(path, name="bound", seconds=60, seed=2, gc_seconds=bound, cpu_seconds={30}),
        "quiet": write_health_run(path, name="quiet", seconds=60, seed=2),
        "once": write_health_run(path, name="once", seconds=60, seed=2, gc_seconds={20}),
        "old": write_health_run(path, name="old", seconds=60, seed=2, health=False),
    }
    return path, runs


def _compare(store, baseline: str, candidate: str, tmp_path: Path, capsys) -> tuple[int, dict, str, str]:
    path, runs = store
    out_json, out_html = tmp_path / f"{candidate}.json", tmp_path / f"{candidate}.html"
    args = [str(runs[baseline].run_id), str(runs[candidate].run_id), "--results", str(path)]
    code = main(["compare", *args, "-o", str(out_html), "--json", str(out_json)])
    printed = capsys.readouterr().out
    return code, json.loads(out_json.read_text()), printed, out_html.read_text()


def test_a_generator_bound_candidate_is_noted_printed_in_json_and_on_the_diff_page(
    store, tmp_path: Path, capsys
) -> None:
    code, verdict, printed, page = _compare(store, "base", "bound", tmp_path, capsys)
    notes = [n for n in verdict["notes"] if "load generator" in n]
    assert len(notes) == 1 and notes[0].startswith("candidate: latency in 4 of ")
    assert "GC 4, CPU 1" in notes[0] and "the verdict is unchanged" in notes[0]
    assert f"note: {notes[0]}" in printed
    assert (
        "candidate: latency in 4 of " in page and "the load generator&#x27;s, not the target&#x27;s" in page
    )
    # A note, not a change of verdict: the same latencies without the stalls give the same verdict.
    quiet_code, quiet, _, _ = _compare(store, "base", "quiet", tmp_path, capsys)
    assert (code, verdict["verdict"]) == (quiet_code, quiet["verdict"])
    assert [r["status"] for r in verdict["rules"]] == [r["status"] for r in quiet["rules"]]
    assert not [n for n in quiet["notes"] if "load generator" in n]


def test_a_side_under_the_share_or_without_health_gauges_gets_no_note(store, tmp_path: Path, capsys) -> None:
    for candidate in ("once", "old"):
        _, verdict, printed, _ = _compare(store, "base", candidate, tmp_path, capsys)
        assert not [n for n in verdict["notes"] if "load generator" in n], candidate
        assert "load generator's" not in printed


def test_reports_carry_the_health_to_the_gate(store, tmp_path: Path, capsys) -> None:
    path, runs = store
    files = [build_report(path, runs[n].run_id, tmp_path / f"{n}.html") for n in ("base", "bound")]
    assert main(["compare", *map(str, files)]) == 0
    assert "note: candidate: latency in 4 of " in capsys.readouterr().out


def test_windows_are_counted_as_windows(store) -> None:
    path, runs = store
    data = load_run(path, runs["bound"].run_id)
    seconds, windows = run_health(data), run_health(data.coarsened(10))
    # the last second is not judged (partial, the run's stopping); windows keep all their seconds
    assert seconds is not None and (seconds.bound, seconds.judged, seconds.unit_s) == (4, 59, 1)
    assert windows is not None and (windows.bound, windows.judged, windows.unit_s) == (3, 6, 10)
    assert "in 3 of 6 10-s windows" in windows.sentence
