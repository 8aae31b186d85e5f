"""No PASS about nothing: a rule the gate could not judge makes the verdict INCONCLUSIVE (exit 3).

Two 8 s runs leave 2 seconds after the warm-up: every latency rule lacks samples. Such a comparison used to
print PASS and exit 0, because only the error-rate rules were judged.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from reports.__main__ import EXIT_INCONCLUSIVE, main
from reports.compare import verdict_table
from reports.data import load_run
from reports.gate import evaluate_gate
from reports.thresholds import DEFAULT_THRESHOLDS, parse_thresholds
from tests.reports.conftest import CHAT, add_handshakes
from tests.synthetic_runs import write_synthetic_run

FAST = replace(DEFAULT_THRESHOLDS, resamples=300)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs 1 and 2: 8 s at 50 samples/s of chat latency; run 3: 26 s, the length the gate asks for."""
    path = tmp_path_factory.mktemp("inconclusive") / "runs.sqlite3"
    common = {"rate": 50, "metrics": (CHAT,), "median_us": 1000.0}
    write_synthetic_run(path, name="short-a", seconds=8, seed=1, **common)
    write_synthetic_run(path, name="short-b", seconds=8, seed=2, start=1_700_000_100, **common)
    longer = write_synthetic_run(path, name="long", seconds=26, seed=3, start=1_700_000_200, **common)
    add_handshakes(path, longer, 990, median_us=1000.0, seed=3)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_too_few_samples_is_inconclusive_and_says_what_would_do(store: Path) -> None:
    result = evaluate_gate(load_run(store, 1), load_run(store, 2), FAST)
    assert result.verdict == "inconclusive" and not result.regressions
    p99 = next(rule for rule in result.rules if rule.rule == f"{CHAT} p99")
    # 2 seconds kept at 50 samples/s: 100 samples of the 1,000 p99 needs; 1,000 / 50 s + 5 s warm-up + 1 s.
    assert (p99.status, p99.samples, p99.min_samples, p99.run_s_needed) == ("skipped", 100, 1000, 26.0)
    assert p99.why == (
        "too few samples (100 < 1000 needed for p99); at the observed rate a run of ≈ 26 s (warm-up "
        "included) would give them"
    )
    p50 = next(rule for rule in result.rules if rule.rule == f"{CHAT} p50")
    assert (p50.samples, p50.min_samples, p50.run_s_needed) == (100, 200, 10.0)
    connect = next(rule for rule in result.rules if rule.rule == "connect p99")
    assert connect.run_s_needed is None  # a longer run would not help: one sample per connection
    assert connect.why.endswith("one sample per connection: a run with ≥ 1000 connections would give them")
    assert {rule.rule for rule in result.unjudged} >= {f"{CHAT} p50", f"{CHAT} p95", f"{CHAT} p99"}
    assert result.summary == f"{len(result.unjudged)} of {len(result.rules)} rules could not be judged"
    table = verdict_table(result).splitlines()
    assert f"inconclusive: {CHAT} p99: {p99.why}" in table
    assert table[-1].startswith(f"verdict: INCONCLUSIVE ({len(result.unjudged)} of ")


def test_the_run_length_the_gate_names_is_enough(store: Path) -> None:
    """A 26 s run at the same rate (as the hint said) gives the chat p99 its 1,000 samples."""
    result = evaluate_gate(load_run(store, 3), load_run(store, 3), FAST)
    p99 = next(rule for rule in result.rules if rule.rule == f"{CHAT} p99")
    assert p99.status == "pass" and p99.samples == 1000 and p99.min_samples == 1000


def test_cli_exit_3_in_table_json_junit_and_diff_page(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verdict, junit, diff = tmp_path / "v.json", tmp_path / "junit.xml", tmp_path / "diff.html"
    code, out, _ = _run(
        capsys, "compare", "1", "2", "--results", str(store), "--json", str(verdict), "--junit", str(junit),
        "-o", str(diff),
    )  # fmt: skip
    assert code == EXIT_INCONCLUSIVE == 3
    assert re.search(r"^verdict: INCONCLUSIVE \(\d+ of \d+ rules could not be judged", out, re.MULTILINE)
    data = json.loads(verdict.read_text())
    assert data["verdict"] == "inconclusive" and f"{CHAT} p99" in data["unjudged"]
    p99 = next(rule for rule in data["rules"] if rule["rule"] == f"{CHAT} p99")
    assert (p99["samples"], p99["min_samples"], p99["run_s_needed"]) == (100, 1000, 26.0)
    assert p99["shortfall"].startswith("100 of 1000 samples needed; at the observed rate a run of ≈ 26 s")
    suite = ET.parse(junit).getroot().find("testsuite")
    skipped = suite.findall("testcase/skipped")
    assert (
        int(suite.get("skipped")) == len(skipped) == len(data["unjudged"]) and int(suite.get("failures")) == 0
    )
    assert suite.find("properties/property[@name='wsgauge.verdict']").get("value") == "inconclusive"
    case = suite.find(f"testcase[@name='{CHAT} p99']/skipped")
    assert "a run of ≈ 26 s" in case.get("message")
    page = diff.read_text()
    assert ">INCONCLUSIVE</span>" in page and 'class="verdict inconclusive"' in page
    row = re.search(r'<tr data-status="skipped" data-unjudged>(<td>ack:chat_message p99</td>.*?)</tr>', page)
    assert row and "100 (≥ 1000)" in row.group(1) and "a run of ≈ 26 s" in row.group(1)


def test_allow_inconclusive_and_optional_rules_pass(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "compare", "1", "2", "--results", str(store), "--allow-inconclusive")
    assert code == 0
    assert re.search(r"^verdict: PASS \(0 of \d+ rules failed, \d+ not judged \(allowed\)", out, re.MULTILINE)
    assert f"skipped (allowed): {CHAT} p99: too few samples" in out
    # Every rule these runs cannot judge, marked optional in the thresholds file: a pass, and it says so.
    optional = tmp_path / "optional.toml"
    optional.write_text(
        "[defaults]\n"
        "p50 = { optional = true }\np95 = { optional = true }\np99 = { optional = true }\n"
        "throughput = { optional = true }\n"
    )
    code, out, _ = _run(capsys, "compare", "1", "2", "--results", str(store), "--thresholds", str(optional))
    assert code == 0, out
    assert f"skipped (optional): {CHAT} p99: too few samples" in out
    assert re.search(r"^ack:chat_message p99 .* skipped \(optional\)$", out, re.MULTILINE)
    # Only some optional: the others still make it inconclusive.
    optional.write_text("[defaults]\np99 = { optional = true }\n")
    code, _, _ = _run(capsys, "compare", "1", "2", "--results", str(store), "--thresholds", str(optional))
    assert code == 3


def test_a_regression_is_a_regression_whatever_else_was_not_judged(tmp_path: Path) -> None:
    store = tmp_path / "errors.sqlite3"
    write_synthetic_run(store, seconds=8, rate=50, seed=1)
    write_synthetic_run(store, seconds=8, rate=50, seed=2, error_every=1, start=1_700_000_100)  # 2 %
    assert main(["compare", "1", "2", "--results", str(store)]) == 1


def test_check_follows_the_same_rules(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Absolute rules: a percentile needs its samples, an error rate a request; else exit 3."""
    rules = tmp_path / "absolute.toml"
    rules.write_text('[absolute]\nrules = ["chat_message.p99 < 50ms", "chat_message.p50 < 50ms"]\n')
    code, out, _ = _run(capsys, "check", "1", "--results", str(store), "--thresholds", str(rules))
    assert code == 3
    assert "inconclusive: chat_message.p99 < 50ms: too few samples (100 < 1000 needed for p99)" in out
    assert re.search(r"^chat_message.p50 < 50ms .* 100 \(≥ 200\) +skipped$", out, re.MULTILINE)
    code, _, _ = _run(capsys, "check", "3", "--results", str(store), "--thresholds", str(rules))
    assert code == 0  # the 26 s run
    rules.write_text(
        '[absolute]\nrules = [{ rule = "chat_message.p99 < 50ms", optional = true }, "pong.mean < 1s"]\n'
    )
    empty = tmp_path / "pong.sqlite3"
    write_synthetic_run(empty, seconds=8, rate=50, metrics=(CHAT, "pong"), seed=4)
    code, out, _ = _run(capsys, "check", "1", "--results", str(empty), "--thresholds", str(rules))
    assert code == 0, out  # p99 optional; a mean needs one sample
    assert "skipped (optional): chat_message.p99 < 50ms" in out
    errors = replace(parse_thresholds('[absolute]\nrules = ["errors.rate < 1%"]'), resamples=300)
    run = load_run(empty, 1)
    silent = replace(run, counters=run.counters.iloc[0:0])  # no requests counted: a rate of nothing
    result = evaluate_gate(None, silent, errors)
    assert result.verdict == "inconclusive"
    assert result.rules[0].reason == "too few requests (0 < 1 needed for errors.rate)"
    assert evaluate_gate(None, run, errors).verdict == "pass"
