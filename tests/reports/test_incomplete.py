"""A run missing a worker's last samples says so: console summary, report banner, gate notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest._summary import format_summary, summarize_run
from reports.__main__ import main
from reports.build import build_report
from runstore.store import RunStore
from tests.health_runs import HealthRun, write_health_run

REASON = "no last samples from 1 worker(s) (w-2; dead, gone or silent for 62 s)"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, HealthRun]]:
    path = tmp_path_factory.mktemp("incomplete") / "runs.sqlite3"
    runs = {
        "base": write_health_run(path, name="base", seconds=60, seed=1),
        "short": write_health_run(path, name="short", seconds=60, seed=2, incomplete=REASON),
        "whole": write_health_run(path, name="whole", seconds=60, seed=2),
    }
    return path, runs


def test_the_console_summary_names_the_missing_worker(store) -> None:
    path, runs = store
    for name, expected in (("short", [f"incomplete run: {REASON}"]), ("whole", [])):
        with RunStore.open(path, readonly=True) as runstore:
            summary = summarize_run(runstore, runs[name].run_id)
            summary |= runstore.get_run(runs[name].run_id).summary or {}
        text = format_summary(summary, run_id=1, run_name=name, status="completed", store_path=str(path))
        assert [line for line in text.splitlines() if line.startswith("incomplete")] == expected


def test_the_report_warns_of_an_incomplete_run_only(store, tmp_path: Path) -> None:
    path, runs = store
    short = build_report(path, runs["short"].run_id, tmp_path / "short.html").read_text()
    banner = '<p class="incomplete" role="alert"><b>Incomplete run:</b> no last samples from 1 worker(s)'
    assert banner in short
    whole = build_report(path, runs["whole"].run_id, tmp_path / "whole.html").read_text()
    assert 'class="incomplete"' not in whole


def test_the_gate_notes_an_incomplete_side_and_keeps_its_verdict(store, tmp_path: Path, capsys) -> None:
    path, runs = store
    verdicts = {}
    for candidate in ("short", "whole"):
        out = tmp_path / f"{candidate}.json"
        ids = [str(runs["base"].run_id), str(runs[candidate].run_id)]
        code = main(["compare", *ids, "--results", str(path), "--json", str(out)])
        verdicts[candidate] = (code, json.loads(out.read_text()), capsys.readouterr().out)
    code, verdict, printed = verdicts["short"]
    notes = [n for n in verdict["notes"] if "incomplete" in n]
    assert notes == [
        f"candidate: 1 of 1 runs incomplete (run {runs['short'].run_id} (short): {REASON}); their counts"
        " and throughput undercount (the verdict is unchanged; rerun to be sure)"
    ]
    assert f"note: {notes[0]}" in printed
    whole_code, whole, _ = verdicts["whole"]
    assert not [n for n in whole["notes"] if "incomplete" in n]
    assert (code, verdict["verdict"]) == (whole_code, whole["verdict"])  # the same samples, the same verdict
