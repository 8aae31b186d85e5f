"""``python -m reports``: exit 0 pass, 1 regression, 2 unusable input (one line, never a traceback)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reports.__main__ import main
from reports.build import build_report
from reports.embed import BLOCK_ID, read_block
from runstore.store import RunInfo, RunStore
from tests.reports.conftest import Runs
from tests.synthetic_runs import write_synthetic_run

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reports(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("cli")
    return {
        "base": runs.report,
        "same": build_report(runs.store, runs.same.run_id, directory / "same.html"),
        "shift20": build_report(runs.store, runs.shift20.run_id, directory / "shift20.html"),
    }


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_prints_the_path(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "build", str(runs.same.run_id), "--results", str(runs.store), "-o", str(tmp_path / "r.html")
    )
    assert code == 0 and out.strip() == str(tmp_path / "r.html")
    code, out, _ = _run(capsys, "build", "--results", str(runs.store))
    assert code == 0 and out.strip().endswith(f"report-{runs.shift20.run_id}.html")


def test_compare_pass(reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "compare", str(reports["base"]), str(reports["same"]), "--json", str(tmp_path / "v.json")
    )
    assert code == 0, out + err
    header = ["rule", "baseline", "candidate", "change", "limit", "samples", "(min)", "verdict"]
    assert out.splitlines()[0].split() == header
    assert re.search(r"^connect p99 .* 1000 \(≥ 1000\) +pass$", out, re.MULTILINE)  # what it had, needs
    assert out.rstrip().splitlines()[-1].startswith("verdict: PASS")
    assert json.loads((tmp_path / "v.json").read_text())["verdict"] == "pass"


def test_a_run_compared_with_itself_is_a_usage_error(
    runs: Runs, reports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong variable in a CI script compares a run with itself, and the run agrees perfectly with itself:
    exit 2, naming the run. An A/A check compares two runs of one build (``test_compare_pass``)."""
    store = str(runs.store)
    base, same = runs.base.run_id, runs.same.run_id
    cases = [
        (["compare", str(base), str(base), "--results", store], rf"run {base} \(base\) is both"),
        (["compare", str(reports["base"]), str(reports["base"])], rf"run {base} \(base\) is both"),
        (["compare", str(reports["base"]), str(base), "--results", store], rf"run {base} \(base\) is both"),
        (
            ["compare", f"{base}-{same}", f"{same}-{runs.shift2.run_id}", "--results", store],
            rf"run {same} \(same\)",
        ),
        (
            ["compare", f"{base},{same}", f"{same},{base}", "--results", store],
            rf"runs {base} \(base\), {same} \(same\) are",
        ),
    ]
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2 and re.search(message, err), (argv, err)
        assert "a run compared with itself passes whatever the build does" in err
        assert len(err.strip().splitlines()) == 1


def test_compare_regression_with_all_outputs(
    runs: Runs, reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    diff, verdict, junit = tmp_path / "diff.html", tmp_path / "v.json", tmp_path / "junit.xml"
    code, out, _ = _run(
        capsys, "compare", str(reports["base"]), str(runs.shift20.run_id), "--results", str(runs.store),
        "-o", str(diff), "--json", str(verdict), "--junit", str(junit), "--warmup", "2",
    )  # fmt: skip
    assert code == 1
    assert re.search(r"ack:chat_message p50 .* regression", out)
    assert "warm-up 2 s excluded" in out
    result = json.loads(verdict.read_text())
    assert result["verdict"] == "regression" and result["warmup_s"] == 2.0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("failures")) == len([r for r in result["rules"] if r["status"] == "regression"]) > 0
    assert int(suite.get("tests")) == len(suite.findall("testcase")) == len(result["rules"])
    assert suite.find("testcase/failure").get("type") == "regression"
    html = diff.read_text()
    assert html.count("Plotly.newPlot(") >= 7 and 'class="verdict regression"' in html
    assert "baseline (run 1)" in html and f"candidate (run {runs.shift20.run_id})" in html
    # A comparison page is not a run report.
    code, _, err = _run(capsys, "compare", str(diff), str(reports["same"]))
    assert code == 2 and "'comparison' report, not a run report" in err


def test_compare_several_runs_per_side(
    runs: Runs, reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Directories of reports, comma-separated files and id ranges name several runs of one build."""
    baseline_dir = tmp_path / "baseline"
    baseline_dir.mkdir()
    for name in ("base", "same"):
        (baseline_dir / f"{name}.html").write_bytes(reports[name].read_bytes())
    diff, verdict = tmp_path / "diff.html", tmp_path / "v.json"
    code, out, err = _run(
        capsys, "compare", str(baseline_dir), f"{reports['shift20']},{runs.shift2.run_id}",
        "--results", str(runs.store), "-o", str(diff), "--json", str(verdict),
    )  # fmt: skip
    assert code in (0, 1), err
    assert "95% t intervals over 2 + 2 runs" in out.splitlines()[-2]
    result = json.loads(verdict.read_text())
    assert result["method"] == "runs"
    assert [r["id"] for r in result["candidate_runs"]] == [runs.shift20.run_id, runs.shift2.run_id]
    p50 = next(r for r in result["rules"] if r["rule"] == "ack:chat_message p50")
    assert len(p50["baseline_runs"]) == len(p50["candidate_runs"]) == 2
    html = diff.read_text()
    assert 'data-figure="fig-runs"' in html and "first of 2 runs" in html
    block = read_block(diff)
    assert [r["run"]["id"] for r in block["baseline_runs"]] == [runs.base.run_id, runs.same.run_id]
    # The diff page written into the baseline directory is not taken for a run.
    (baseline_dir / "diff.html").write_bytes(diff.read_bytes())
    ids = f"{runs.shift2.run_id}-{runs.shift20.run_id}"
    code, out, _ = _run(capsys, "compare", str(baseline_dir), ids, "--results", str(runs.store))
    assert code == 0 and "2 + 2 runs" in out
    code, out, _ = _run(
        capsys, "compare", str(baseline_dir), str(runs.shift2.run_id), "--results", str(runs.store)
    )
    assert code == 0 and "2 + 1 runs" in out
    code, out, _ = _run(capsys, "compare", str(baseline_dir), ids, "--results", str(runs.store), "--paired")
    assert code == 0 and "95% paired t intervals over 2 pairs of runs" in out
    code, _, err = _run(capsys, "compare", str(baseline_dir), str(reports["shift20"]), "--paired")
    assert code == 2 and "paired comparison needs two or more pairs" in err and "not 2 + 1" in err
    # The same runs on both sides are not an A/A check: the directory holds runs 1 and 2.
    same_runs = f"{runs.base.run_id}-{runs.same.run_id}"
    code, _, err = _run(capsys, "compare", str(baseline_dir), same_runs, "--results", str(runs.store))
    assert code == 2 and "runs 1 (base), 2 (same) are both the baseline and the candidate" in err
    bad = [
        ([f"{reports['base']},{reports['base']}", str(reports["same"])], r"run 1 \(base\) is listed twice"),
        ([str(tmp_path / "empty"), str(reports["same"])], "no wsgauge run reports"),
        ([f"{reports['base']},", str(reports["same"])], "an empty item"),
        (["4-2", str(reports["same"])], "an empty range"),
    ]
    (tmp_path / "empty").mkdir()
    for argv, message in bad:
        code, _, err = _run(capsys, "compare", *argv, "--results", str(runs.store))
        assert code == 2 and re.search(message, err), (argv, err)


def test_check_absolute_rules_without_baseline(
    reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thresholds = tmp_path / "t.toml"
    thresholds.write_text('[absolute]\nrules = ["chat_message.p99 < 50ms", "connect.p95 < 200ms"]\n')
    code, out, _ = _run(capsys, "check", str(reports["base"]), "--thresholds", str(thresholds))
    assert code == 0 and "chat_message.p99 < 50ms" in out
    thresholds.write_text('[absolute]\nrules = ["chat_message.p99 < 1ms"]\n')
    assert _run(capsys, "check", str(reports["base"]), "--thresholds", str(thresholds))[0] == 1


def _bad_block(html: str, body: str) -> str:
    return re.sub(
        rf'(<script type="application/json" id="{BLOCK_ID}">).*?(</script>)',
        lambda m: m.group(1) + body + m.group(2),
        html,
        flags=re.DOTALL,
    )


def test_bad_input_exits_2_naming_the_problem(
    runs: Runs, reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = str(reports["same"])
    html = reports["base"].read_text()
    block = re.search(rf'id="{BLOCK_ID}">(.*?)</script>', html, re.DOTALL).group(1)
    files = {
        "plain.html": "<html><body>hello</body></html>",
        "damaged.html": _bad_block(html, block[: len(block) // 2]),
        "future.html": _bad_block(html, block.replace('"schema_version":1', '"schema_version":99', 1)),
        "nocol.html": _bad_block(html, block.replace('"p99_us":[', '"p99_xx":[', 1)),
        "binary.html": b"\xff\xfe\x00garbage",
    }
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    empty_store = tmp_path / "empty.sqlite3"
    with RunStore.open(empty_store) as store:
        empty_id = store.create_run(RunInfo(name="empty", target="ws://127.0.0.1:1/ws"))
    other = tmp_path / "other.sqlite3"
    only_pong = write_synthetic_run(other, seconds=20, metrics=("pong",))
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('[defaults]\np99 = { tolerance = "lots" }\n')
    cases = [
        (["compare", str(tmp_path / "plain.html"), good], "is not a wsgauge report"),
        (["compare", good, str(tmp_path / "damaged.html")], "data block is damaged"),
        (["compare", good, str(tmp_path / "future.html")], "unknown report schema version 99"),
        (["compare", good, str(tmp_path / "nocol.html")], "latency lacks column 'p99_us'"),
        (["compare", good, str(tmp_path / "binary.html")], "cannot read .* as a wsgauge report"),
        (["compare", good, str(tmp_path / "missing.html")], "no such report file"),
        (
            ["build", str(empty_id), "--results", str(empty_store)],
            f"run {empty_id} \\(empty\\) has no samples",
        ),
        (["build", "--results", str(tmp_path / "nowhere.sqlite3")], "no run store at"),
        (["build", "99", "--results", str(runs.store)], "no run 99"),
        (
            ["compare", good, str(only_pong.run_id), "--results", str(other)],
            "message types present in only one run",
        ),
        (
            ["compare", good, good, "--thresholds", str(bad_toml)],
            "bad.toml line 2: p99 tolerance must be a percentage",
        ),
        (["compare", good, good, "--thresholds", str(tmp_path / "none.toml")], "no thresholds file"),
        (
            ["compare", str(reports["base"]), good, "--warmup", "500"],
            "no latency samples after the 500 s warm-up",
        ),
        (["compare", good], "the following arguments are required: CANDIDATE"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["check", good], "nothing to check: no baseline and no absolute rules"),
    ]
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2, (argv, err)
        assert re.search(message, err), (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_console_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "x.html"
    bad.write_text("nothing here")
    proc = subprocess.run(
        [sys.executable, "-m", "reports", "compare", str(bad), str(bad)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad} is not a wsgauge report (no {BLOCK_ID} data block)"


def test_results_on_either_side_of_the_subcommand(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--results", str(runs.store)]
    out_file = ["-o", str(tmp_path / "r.html")]
    for argv in (
        [*store, "build", str(runs.same.run_id), *out_file],
        ["build", str(runs.same.run_id), *store, *out_file],
    ):
        code, out, err = _run(capsys, *argv)
        assert code == 0 and out.strip() == str(tmp_path / "r.html"), (argv, err)
    ids = [str(runs.base.run_id), str(runs.same.run_id)]
    before = _run(capsys, *store, "compare", *ids)
    after = _run(capsys, "compare", *ids, *store)
    assert before == after and before[0] == 0
    thresholds = tmp_path / "t.toml"
    thresholds.write_text('[absolute]\nrules = ["chat_message.p99 < 50ms"]\n')
    assert _run(capsys, *store, "check", ids[0], "--thresholds", str(thresholds))[0] == 0


def test_results_url_is_refused_never_a_file(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    url = ["--results", "redis://127.0.0.1:6379/0"]
    for argv in ([*url, "build"], ["build", *url], ["compare", "1", "2", *url], [*url, "check", "1"]):
        code, out, err = _run(capsys, *argv)
        assert code == 2 and not out, argv
        assert "argument --results: run store 'redis://127.0.0.1:6379/0': 'redis://' stores are not" in err
        assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("WSGAUGE_RESULTS", "redis://127.0.0.1:6379/0")
    code, _, err = _run(capsys, "compare", "1", "2")
    assert code == 2 and err.startswith("python -m reports: $WSGAUGE_RESULTS: run store 'redis://")
    assert list(tmp_path.iterdir()) == []  # no folder named 'redis:'
    monkeypatch.setenv("WSGAUGE_RESULTS", str(runs.store))
    code, out, _ = _run(capsys, "compare", str(runs.base.run_id), str(runs.same.run_id))
    assert code == 0 and "verdict: PASS" in out


@pytest.mark.parametrize(
    "command", [[], ["build"], ["compare"], ["check"]], ids=["top", "build", "compare", "check"]
)
def test_help_of_every_subcommand(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m reports {' '.join(command)}".rstrip())
    assert "--results STORE" in out and "WSGAUGE_RESULTS" in out
    if command in (["compare"], ["check"]):
        assert "--allow-inconclusive" in out and "--thresholds FILE" in out
