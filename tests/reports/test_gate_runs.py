"""The gate over several runs per side: the run is the unit of replication.

Runs of one build differ by more than the seconds inside one run can show (on this machine, medians of 14 s
runs by about 6 %; ``docs/performance.md``). Here each synthetic run gets a known run-level factor, so the
between-run spread is known, and the same comparisons are made one pair at a time and over all runs.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reports.compare import verdict_table, write_comparison
from reports.data import RunData, load_run
from reports.errors import ReportError
from reports.gate import evaluate_gate
from reports.thresholds import DEFAULT_THRESHOLDS, parse_thresholds
from runstore.names import METRIC_SEND_LAG, ack_metric
from tests.reports.conftest import add_handshakes
from tests.synthetic_runs import write_synthetic_run

FAST = replace(DEFAULT_THRESHOLDS, resamples=500)
CHAT = ack_metric("chat_message")
SPREAD = (1.00, 0.90, 1.12, 0.95, 1.05)
"""Run-level latency factors of one build: a spread like this machine's (sd ≈ 8 %)."""


def _runs(
    store: Path, factors: tuple[float, ...], seed: int, *, rate: int = 100, metrics=(CHAT, "pong"),
    first: int | None = None, **options: Any,
) -> list[RunData]:  # fmt: skip
    """One run per factor (its run-level latency factor), 20 s each, median 1 ms, at distinct times: every
    100 s from ``first`` (by default a block of its own per seed); 1,000 handshakes each, so that every
    rule of the default rule set can be judged (``connect`` p99 too)."""
    first = 1_700_000_000 + seed * 1000 if first is None else first
    runs = []
    for i, factor in enumerate(factors):
        run = write_synthetic_run(
            store, name=f"s{seed}-{i}", seconds=20, rate=rate, median_us=1000.0, metrics=metrics,
            latency_factor=factor, seed=seed * 100 + i, start=first + i * 100, **options,
        )  # fmt: skip
        add_handshakes(store, run, 990, median_us=1000.0, seed=seed * 100 + i)
        runs.append(load_run(store, run.run_id))
    return runs


def _rule(result, name: str):
    return next(rule for rule in result.rules if rule.rule == name)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs") / "runs.sqlite3"


def test_between_run_noise_fools_one_pair_but_not_five(store: Path) -> None:
    """Candidate run 0 is the build's slow run (+18 %): one pair calls it a regression, five runs do not."""
    base = _runs(store, SPREAD, seed=1)
    cand = _runs(store, (1.18, 0.92, 1.02, 0.97, 1.03), seed=2)
    one = evaluate_gate(base[0], cand[0], FAST)
    assert _rule(one, f"{CHAT} p50").status == "regression" and one.method == "bootstrap"
    five = evaluate_gate(base, cand, FAST)
    p50 = _rule(five, f"{CHAT} p50")
    assert five.verdict == "pass", [r.reason for r in five.regressions]
    assert five.method == "runs" and len(five.baseline_runs) == len(five.candidate_runs) == 5
    assert len(p50.baseline_runs) == len(p50.candidate_runs) == 5
    # Each run's value is in the rule's unit (ms) and the shown baseline is their geometric mean.
    assert p50.baseline == pytest.approx(float(np.exp(np.mean(np.log(p50.baseline_runs)))))
    assert p50.interval[0] < 1.0 < p50.interval[1]
    assert p50.change == pytest.approx(1.024, abs=0.02)  # ratio of the geometric means of the runs


def test_twenty_percent_over_five_runs_fails_and_two_percent_passes(store: Path) -> None:
    base = _runs(store, SPREAD, seed=3)
    slow = _runs(store, tuple(1.2 * f for f in reversed(SPREAD)), seed=4)
    result = evaluate_gate(base, slow, FAST)
    p50 = _rule(result, f"{CHAT} p50")
    assert p50.status == "regression" and p50.interval[0] > 1.0
    assert "t interval" not in p50.reason and "CI excludes no change" in p50.reason
    assert p50.change == pytest.approx(1.2, abs=0.03)
    near = _runs(store, tuple(1.02 * f for f in reversed(SPREAD)), seed=5)
    assert evaluate_gate(base, near, FAST).verdict == "pass"


def test_unconfident_shift_says_why(store: Path, tmp_path: Path) -> None:
    """+20 % on average, but the runs scatter so much that 2 + 2 runs cannot tell: pass, and the reason."""
    base = _runs(store, (0.8, 1.25), seed=6)
    cand = _runs(store, (0.95, 1.5), seed=7)
    result = evaluate_gate(base, cand, FAST)
    p50 = _rule(result, f"{CHAT} p50")
    assert p50.status == "pass" and p50.unconfirmed
    assert "but the CI includes no change (t interval over 2 + 2 runs; ≈ " in p50.reason
    assert p50.reason.endswith(" runs a side would confirm a change this size 9 times in 10)")
    runs = int(p50.reason.rsplit("≈ ", 1)[1].split()[0])
    assert 2 < runs <= 100  # a +20 % shift that 2 + 2 runs this scattered cannot settle, more runs can
    assert p50.runs_needed == runs
    # The console says why too, under the table (the verdict column says only "pass").
    assert f"unconfirmed: {CHAT} p50: {p50.reason}" in verdict_table(result).splitlines()
    page = write_comparison(result, base, cand, tmp_path / "diff.html").read_text()  # and the diff page
    row = re.search(r"<tr data-status=\"pass\" data-unconfirmed>(.*?)</tr>", page).group(1)
    assert f"<td>{CHAT} p50</td>" in row and '<span class="unconfirmed">unconfirmed</span>' in row


def test_one_candidate_run_against_several_baseline_runs(store: Path) -> None:
    """A common CI shape: baseline runs kept from main, one run of the pull request."""
    base = _runs(store, SPREAD, seed=8)
    same, slow = _runs(store, (1.03,), seed=9), _runs(store, (1.3,), seed=10)
    assert evaluate_gate(base, same, FAST).verdict == "pass"
    result = evaluate_gate(base, slow, FAST)
    assert result.verdict == "regression" and result.method_text == "95% t intervals over 5 + 1 runs"


def test_percentile_rules_need_their_samples_in_every_run(store: Path) -> None:
    base = _runs(store, SPREAD[:3], seed=11)
    cand = [*_runs(store, SPREAD[:2], seed=12), *_runs(store, (1.0,), seed=13, rate=20)]
    result = evaluate_gate(base, cand, FAST)
    assert _rule(result, f"{CHAT} p50").status == "pass"
    assert _rule(result, f"{CHAT} p99").reason == "too few samples in a run (280 < 1000 needed for p99)"


def test_error_rate_and_throughput_over_runs(store: Path) -> None:
    base = _runs(store, SPREAD[:3], seed=14)
    errors = _runs(store, SPREAD[:3], seed=15, error_every=1)  # one error per second per run: 1 %
    rule = _rule(evaluate_gate(base, errors, FAST), "chat_message error rate")
    assert rule.status == "regression" and rule.candidate == pytest.approx(1.0)
    assert rule.candidate_runs == pytest.approx((1.0, 1.0, 1.0)) and rule.interval[0] > 0.5
    slow = _runs(store, SPREAD[:3], seed=16, rate=80)
    assert _rule(evaluate_gate(base, slow, FAST), "chat_message throughput").status == "regression"


def test_absolute_rules_pool_the_candidate_runs(store: Path) -> None:
    cand = _runs(store, (1.0, 1.0, 3.0), seed=17)
    rules = replace(parse_thresholds('[absolute]\nrules = ["chat_message.p50 < 1.5ms"]'), resamples=500)
    pooled = evaluate_gate(None, cand, rules)
    rule = pooled.rules[0]
    assert rule.status == "pass" and "(3 runs pooled)" in rule.reason  # 2 of 3 runs at 1 ms: p50 ≈ 1 ms
    assert evaluate_gate(None, cand[2:], rules).verdict == "regression"


def test_a_stalled_run_is_dropped_when_others_remain(store: Path, tmp_path: Path) -> None:
    metrics = (CHAT, METRIC_SEND_LAG)
    base = _runs(store, (1.0, 1.0, 1.0), seed=18, metrics=metrics)
    (stalled,) = _runs(store, (40.0,), seed=19, metrics=metrics)
    result = evaluate_gate(base[:2], [stalled, base[2]], FAST)
    page = write_comparison(result, base[:2], [stalled, base[2]], tmp_path / "diff.html").read_text()
    assert f"candidate (run {base[2].run['id']})" in page  # the diff page draws a judged run
    assert any(note.startswith(f"candidate {stalled.label} dropped: the candidate") for note in result.notes)
    assert [meta["id"] for meta in result.candidate_runs] == [base[2].run["id"]]
    assert result.method == "runs" and result.verdict == "pass"
    with pytest.raises(ReportError, match="not usable evidence"):
        evaluate_gate(base[:2], [stalled], FAST)


def test_runs_of_one_side_must_measure_the_same_types(store: Path) -> None:
    a = _runs(store, (1.0,), seed=20)
    b = _runs(store, (1.0,), seed=21, metrics=(CHAT,))
    message = (
        r"the candidate runs differ in message types "
        r"\(run \d+ \(s20-0\): ack:chat_message, connect, pong; "
        r"run \d+ \(s21-0\): ack:chat_message, connect\)"
    )
    with pytest.raises(ReportError, match=message):
        evaluate_gate(a, a + b, FAST)


def test_single_run_allowance_widens_tolerances_only_for_one_run_per_side(store: Path) -> None:
    """One pair cannot measure between-run noise, so its latency tolerance is the rule's plus 5 %."""
    base = _runs(store, (1.0, 1.0, 1.0), seed=22)
    slow = _runs(store, (1.12, 1.12, 1.12), seed=23)
    one = evaluate_gate(base[0], slow[0], FAST)
    assert _rule(one, f"{CHAT} p50").limit == "+15% and +0.1 ms"
    assert _rule(one, f"{CHAT} p50").status == "pass"  # +12 %: within 10 % + 5 %
    strict = evaluate_gate(base[0], slow[0], replace(FAST, single_run_allowance=0.0))
    assert _rule(strict, f"{CHAT} p50").status == "regression"
    three = evaluate_gate(base, slow, FAST)
    assert _rule(three, f"{CHAT} p50").limit == "+10% and +0.1 ms"
    assert _rule(three, f"{CHAT} p50").status == "regression"


DRIFT = (1.00, 1.35, 0.80, 1.25, 0.85, 1.15)
"""What one machine does to every run over a day (sd ≈ 20 %): shared by runs that ran at the same time."""


def _taking_turns(
    store: Path, seed: int, base: tuple[float, ...], cand: tuple[float, ...]
) -> tuple[list, list]:
    """Baseline and candidate runs that took turns: baseline i at 100 i s, candidate i 50 s after it."""
    first = 1_700_000_000 + seed * 1000
    return _runs(store, base, seed, first=first), _runs(store, cand, seed + 1, first=first + 50)


def test_paired_runs_cancel_drift_that_hides_a_regression(store: Path) -> None:
    """+20 % in every pair, under a drift of ±20 % between pairs: over the runs' spread it cannot be
    confirmed, pair by pair it can; and the same drift with no change passes."""
    noise = (1.01, 0.98, 1.02, 0.99, 1.00, 1.01)
    base_f = tuple(d * n for d, n in zip(DRIFT, noise, strict=True))
    slow_f = tuple(1.2 * d * n for d, n in zip(DRIFT, reversed(noise), strict=True))
    base, slow = _taking_turns(store, 30, base_f, slow_f)
    unpaired = _rule(evaluate_gate(base, slow, FAST), f"{CHAT} p50")
    assert unpaired.status == "pass" and unpaired.unconfirmed  # the drift widens both sides' spread
    paired = evaluate_gate(base, slow, replace(FAST, paired=True))
    p50 = _rule(paired, f"{CHAT} p50")
    assert p50.status == "regression" and p50.change == pytest.approx(1.2, abs=0.03)
    assert paired.paired and paired.method_text == "95% paired t intervals over 6 pairs of runs"
    assert not paired.notes  # they took turns
    same_f = tuple(d * n for d, n in zip(DRIFT, reversed(noise), strict=True))
    base, same = _taking_turns(store, 32, base_f, same_f)
    assert evaluate_gate(base, same, replace(FAST, paired=True)).verdict == "pass"


def test_paired_runs_are_paired_in_the_order_they_ran(store: Path) -> None:
    """Inputs in any order: pair i is the i-th run of each side in time; sides that did not take turns get
    a note; unequal sides are refused."""
    base, slow = _taking_turns(store, 34, DRIFT[:4], tuple(1.2 * d for d in DRIFT[:4]))
    forward = evaluate_gate(base, slow, replace(FAST, paired=True))
    shuffled = evaluate_gate(base[::-1], [slow[2], slow[0], slow[3], slow[1]], replace(FAST, paired=True))
    assert _rule(shuffled, f"{CHAT} p50").candidate_runs == _rule(forward, f"{CHAT} p50").candidate_runs
    assert [m["id"] for m in shuffled.baseline_runs] == [r.run["id"] for r in base]
    assert _rule(forward, f"{CHAT} p50").status == "regression"
    later = _runs(store, DRIFT[:4], seed=36)  # all after the baseline runs, not in turns
    apart = evaluate_gate(base, later, replace(FAST, paired=True))
    assert any("did not take turns" in note for note in apart.notes)
    with pytest.raises(ReportError, match=r"paired comparison needs two or more pairs.* not 4 \+ 3"):
        evaluate_gate(base, slow[:3], replace(FAST, paired=True))


def test_a_stalled_run_takes_its_partner_with_it(store: Path) -> None:
    metrics = (CHAT, METRIC_SEND_LAG)
    first = 1_700_000_000 + 38 * 1000
    base = _runs(store, (1.0, 1.0, 40.0, 1.0), seed=38, metrics=metrics, first=first)
    cand = _runs(store, (1.0, 1.0, 1.0, 1.0), seed=39, metrics=metrics, first=first + 50)
    result = evaluate_gate(base, cand, replace(FAST, paired=True))
    assert f"{base[2].label} / {cand[2].label}: pair dropped with its stalled run" in result.notes
    assert [m["id"] for m in result.candidate_runs] == [cand[i].run["id"] for i in (0, 1, 3)]
    assert result.verdict == "pass" and result.method_text.endswith("over 3 pairs of runs")


def test_unconfirmed_paired_change_says_how_many_pairs(store: Path) -> None:
    base, cand = _taking_turns(store, 40, (1.0, 1.0, 1.0), (1.05, 1.45, 1.15))
    p50 = _rule(evaluate_gate(base, cand, replace(FAST, paired=True)), f"{CHAT} p50")
    assert p50.status == "pass" and p50.unconfirmed and p50.runs_needed is not None
    assert f"; ≈ {p50.runs_needed} pairs of runs would confirm a change this size 9 times in 10" in p50.reason
