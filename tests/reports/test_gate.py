"""The gate on synthetic runs with known shifts: no change and 2 % pass, 20 % fails; it does not cry wolf."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reports.data import RunData, load_run
from reports.errors import ReportError
from reports.gate import evaluate_gate
from reports.thresholds import DEFAULT_THRESHOLDS, parse_thresholds
from runstore.names import METRIC_SEND_LAG, ack_metric
from tests.reports.conftest import CHAT, Runs, add_handshakes
from tests.synthetic_runs import write_synthetic_run

FAST = replace(DEFAULT_THRESHOLDS, resamples=1000)


def _load(runs: Runs, run) -> RunData:
    return load_run(runs.store, run.run_id)


def _statuses(result) -> dict[str, str]:
    return {rule.rule: rule.status for rule in result.rules}


def test_no_change_passes(runs: Runs) -> None:
    result = evaluate_gate(_load(runs, runs.base), _load(runs, runs.same), FAST)
    assert result.verdict == "pass", [r.reason for r in result.regressions]
    statuses = _statuses(result)
    assert statuses[f"{CHAT} p99"] == "pass"  # 5,000 samples after the warm-up: p99 is judged
    assert statuses["chat_message error rate"] == "pass"
    assert statuses["chat_message throughput"] == "pass"
    assert METRIC_SEND_LAG not in {rule.subject for rule in result.rules}


def test_two_percent_shift_passes(runs: Runs) -> None:
    result = evaluate_gate(_load(runs, runs.base), _load(runs, runs.shift2), FAST)
    assert result.verdict == "pass", [r.reason for r in result.regressions]


def test_twenty_percent_shift_fails(runs: Runs) -> None:
    result = evaluate_gate(_load(runs, runs.base), _load(runs, runs.shift20), FAST)
    assert result.verdict == "regression"
    failed = {rule.rule for rule in result.regressions}
    assert {f"{metric} p50" for metric in (CHAT, "pong", "delivery:chat")} <= failed
    p50 = next(rule for rule in result.rules if rule.rule == f"{CHAT} p50")
    assert 1.15 < p50.change < 1.25 and p50.interval[0] > 1.0
    assert "CI excludes no change" in p50.reason


def test_twenty_percent_p99_shift_alone_fails(runs: Runs) -> None:
    only_p99 = parse_thresholds(
        '[defaults]\np50 = false\np95 = false\np99 = { tolerance = "10%" }\n'
        "error_rate = false\nthroughput = false\n"
    )
    result = evaluate_gate(
        _load(runs, runs.base), _load(runs, runs.shift20), replace(only_p99, resamples=1000)
    )
    judged = {rule.rule for rule in result.rules if rule.status != "skipped"}
    assert judged == {f"{m} p99" for m in (CHAT, "pong", "delivery:chat", "connect")}  # 1,000 handshakes
    assert result.verdict == "regression"
    assert {rule.rule for rule in result.regressions} == {f"{m} p99" for m in (CHAT, "pong", "delivery:chat")}


def test_practical_effect_needs_the_absolute_floor(runs: Runs) -> None:
    floors = parse_thresholds(
        '[defaults]\np50 = { floor = "5ms" }\np95 = { floor = "5ms" }\np99 = { floor = "5ms" }'
    )
    result = evaluate_gate(_load(runs, runs.base), _load(runs, runs.shift20), replace(floors, resamples=1000))
    assert result.verdict == "pass"  # +20 % of 2 ms is 0.4 ms: beyond the ratio, within the noise floor


def test_a_short_burst_is_not_confident(tmp_path: Path) -> None:
    """One slow second of 40 moves p99 by far more than 15 %; the CI over seconds says noise."""
    store = tmp_path / "burst.sqlite3"
    base = write_synthetic_run(store, seconds=45, rate=100, median_us=2000.0, seed=1)
    calm = write_synthetic_run(store, seconds=30, rate=100, median_us=2000.0, seed=3, start=1_700_010_000)
    burst = write_synthetic_run(
        store, seconds=1, rate=100, median_us=2000.0, seed=4, latency_factor=5.0, start=1_700_010_030
    )
    rest = write_synthetic_run(store, seconds=14, rate=100, median_us=2000.0, seed=5, start=1_700_010_031)
    b = load_run(store, base.run_id)
    parts = [load_run(store, run.run_id) for run in (calm, burst, rest)]
    import pandas as pd

    candidate = replace(
        parts[0],
        end=parts[-1].end,
        latency=pd.concat([p.latency for p in parts], ignore_index=True),
        counters=pd.concat([p.counters for p in parts], ignore_index=True),
        gauges=pd.concat([p.gauges for p in parts], ignore_index=True),
    )
    result = evaluate_gate(b, candidate, FAST)
    p99 = next(rule for rule in result.rules if rule.rule == f"{CHAT} p99")
    assert p99.change > 1.15 and p99.status == "pass"
    assert "CI includes no change" in p99.reason
    assert p99.unconfirmed and p99.runs_needed is None  # one run a side: no run-to-run spread to size


def test_warmup_is_excluded(tmp_path: Path) -> None:
    store = tmp_path / "warm.sqlite3"
    base = write_synthetic_run(store, seconds=40, rate=100, median_us=2000.0, seed=1)
    slow = write_synthetic_run(store, seconds=5, rate=100, median_us=2000.0, seed=2, latency_factor=5.0)
    fine = write_synthetic_run(store, seconds=35, rate=100, median_us=2000.0, seed=3, start=1_700_000_005)
    for run in (base, slow):  # 1,000 handshakes a run: connect p99 is judged too
        add_handshakes(store, run, 990, median_us=800.0, seed=run.run_id)
    import pandas as pd

    a, b = load_run(store, slow.run_id), load_run(store, fine.run_id)
    candidate = replace(
        a,
        end=b.end,
        latency=pd.concat([a.latency, b.latency[b.latency["metric"] != "connect"]], ignore_index=True),
        counters=pd.concat([a.counters, b.counters], ignore_index=True),
    )
    baseline = load_run(store, base.run_id)
    assert evaluate_gate(baseline, candidate, FAST).verdict == "pass"
    cold = evaluate_gate(baseline, candidate, FAST.with_warmup(0))
    assert cold.verdict == "regression" and cold.warmup_s == 0


def test_error_rate_regression(tmp_path: Path) -> None:
    store = tmp_path / "errors.sqlite3"
    base = write_synthetic_run(store, seconds=40, rate=20, seed=1)
    bad = write_synthetic_run(store, seconds=40, rate=20, seed=1, error_every=1)  # 1 of 20 per second: 5 %
    result = evaluate_gate(load_run(store, base.run_id), load_run(store, bad.run_id), FAST)
    rule = next(r for r in result.rules if r.rule == "chat_message error rate")
    assert rule.status == "regression" and rule.candidate == pytest.approx(5.0)


def test_throughput_drop_regression(tmp_path: Path) -> None:
    store = tmp_path / "tput.sqlite3"
    base = write_synthetic_run(store, seconds=40, rate=40, seed=1)
    slow = write_synthetic_run(store, seconds=40, rate=30, seed=2)
    result = evaluate_gate(load_run(store, base.run_id), load_run(store, slow.run_id), FAST)
    assert _statuses(result)["chat_message throughput"] == "regression"


def test_absolute_rules_without_baseline(runs: Runs) -> None:
    th = parse_thresholds(
        '[absolute]\nrules = ["chat_message.p99 < 50ms", "errors.rate < 0.1%", "pong.p50 < 1ms",'
        ' "chat_message.rate > 1/s"]'
    )
    result = evaluate_gate(None, _load(runs, runs.base), th)
    statuses = _statuses(result)
    assert statuses == {
        "chat_message.p99 < 50ms": "pass",
        "errors.rate < 0.1%": "regression",  # 7 errors in 5,000 chat messages after the warm-up: 0.14 %
        "pong.p50 < 1ms": "regression",  # median 2 ms
        "chat_message.rate > 1/s": "pass",
    }
    assert result.verdict == "regression" and result.baseline is None


def test_types_in_only_one_run_are_unusable(tmp_path: Path) -> None:
    store = tmp_path / "types.sqlite3"
    a = write_synthetic_run(store, seconds=20, metrics=(CHAT, "pong"))
    b = write_synthetic_run(store, seconds=20, metrics=(CHAT, ack_metric("batch")))
    with pytest.raises(ReportError, match=r"only in the baseline: pong; only in the candidate: ack:batch"):
        evaluate_gate(load_run(store, a.run_id), load_run(store, b.run_id), FAST)


def test_saturated_generator_is_unusable(tmp_path: Path) -> None:
    store = tmp_path / "lag.sqlite3"
    a = write_synthetic_run(store, seconds=20, rate=80, metrics=(CHAT, METRIC_SEND_LAG))  # p99: 1,120
    add_handshakes(store, a, 990, median_us=800.0, seed=2)
    lagging = write_synthetic_run(
        store, seconds=20, rate=80, metrics=(CHAT, METRIC_SEND_LAG), median_us=40_000.0, seed=3
    )
    assert evaluate_gate(load_run(store, a.run_id), load_run(store, a.run_id), FAST).verdict == "pass"
    with pytest.raises(
        ReportError, match=r"candidate run \d+ .* fell behind .*send_lag p95 > 3.39 ms\) in 14 of 14"
    ):
        evaluate_gate(load_run(store, a.run_id), load_run(store, lagging.run_id), FAST)
    off = replace(FAST, stall_lag_us=None)
    assert (
        evaluate_gate(load_run(store, a.run_id), load_run(store, lagging.run_id), off).verdict == "regression"
    )


def test_stalled_seconds_are_excluded(tmp_path: Path) -> None:
    """Seconds where the generator fell behind measure the machine: dropped from latency and throughput."""
    import pandas as pd

    store = tmp_path / "stall.sqlite3"
    metrics = (CHAT, METRIC_SEND_LAG)
    base = write_synthetic_run(store, seconds=40, rate=100, metrics=metrics, seed=1)
    add_handshakes(store, base, 990, median_us=800.0, seed=1)
    parts = [
        write_synthetic_run(store, seconds=20, rate=100, metrics=metrics, seed=2),
        write_synthetic_run(
            store, seconds=8, rate=60, metrics=metrics, seed=3, latency_factor=20.0, start=1_700_000_020
        ),
        write_synthetic_run(store, seconds=12, rate=100, metrics=metrics, seed=4, start=1_700_000_028),
    ]
    add_handshakes(store, parts[0], 990, median_us=800.0, seed=2)
    loaded = [load_run(store, part.run_id) for part in parts]
    later = [p.latency[p.latency["metric"] != "connect"] for p in loaded[1:]]  # one run: one ramp-up
    candidate = replace(
        loaded[0],
        end=loaded[-1].end,
        latency=pd.concat([loaded[0].latency, *later], ignore_index=True),
        counters=pd.concat([p.counters for p in loaded], ignore_index=True),
    )
    result = evaluate_gate(load_run(store, base.run_id), candidate, FAST)
    assert result.verdict == "pass", [r.reason for r in result.regressions]
    assert (
        "candidate: 8 of 34 seconds excluded, the load generator stalled (send_lag p95 > 3.6 ms)"
        in result.notes
    )
    stalls_kept = evaluate_gate(load_run(store, base.run_id), candidate, replace(FAST, stall_lag_us=None))
    assert {r.rule for r in stalls_kept.regressions} >= {f"{CHAT} p95", f"{CHAT} p99"}


def test_nothing_left_after_warmup(runs: Runs) -> None:
    with pytest.raises(ReportError, match="no latency samples after the 100 s warm-up"):
        evaluate_gate(_load(runs, runs.base), _load(runs, runs.same), FAST.with_warmup(100))
