"""The judge: what an estimate means for a relative rule -- regression, improvement or pass, and why.

A relative rule fails only when **both** hold (``docs/reports.md`` explains why): a practical effect (the
change beyond the rule's tolerance and, for latency, beyond an absolute floor) *and* statistical
confidence (the interval of the change excludes "no change"). A change beyond the limit that the interval
cannot confirm passes, marked unconfirmed, with the runs a side that would settle it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from reports import stats
from reports.data import RunData
from reports.gate.estimators import Estimate, Estimator, Unjudged
from reports.gate.evidence import COOLDOWN_S
from reports.gate.result import RuleResult, Status
from reports.thresholds import LatencyRule, RateRule, Thresholds

__all__ = ["error_rate_rule", "latency_rules", "run_seconds_needed", "throughput_rule"]


class _Verdict(NamedTuple):
    status: Status
    reason: str
    unconfirmed: bool = False
    """``worse`` but the interval includes no change."""
    runs_needed: int | None = None
    """Unconfirmed over runs: the runs a side that would confirm the change (None: over 100)."""


def _judge(
    estimate: Estimate, *, worse: bool, better: bool, no_change: float, higher_is_worse: bool, change: str,
    beyond: str, limit: str,
) -> _Verdict:  # fmt: skip
    """A regression needs the practical effect (``worse``) *and* an interval that excludes ``no_change``."""
    above, below = estimate.interval.low > no_change, estimate.interval.high < no_change
    confident_worse, confident_better = (above, below) if higher_is_worse else (below, above)
    if worse and confident_worse:
        return _Verdict("regression", f"{change}: {beyond} and the CI excludes no change")
    if worse:
        needed = estimate.runs_needed() if estimate.runs_needed else None
        unconfirmed = f"the CI includes no change ({estimate.method}{_hint(estimate, needed)})"
        return _Verdict("pass", f"{change}: {beyond} but {unconfirmed}", True, needed)
    if better and confident_better:
        return _Verdict("improved", change)
    return _Verdict("pass", f"{change}: within {limit}")


def _hint(estimate: Estimate, needed: int | None) -> str:
    """For a change seen but not confirmed over runs: how many runs a side would settle it."""
    if estimate.baseline_runs is None:
        return ""
    runs = "pairs of runs" if estimate.paired else "runs a side"
    if needed is None:
        return f"; over 100 {runs} would be needed to confirm a change this size"
    return f"; ≈ {needed} {runs} would confirm a change this size 9 times in 10"


def _in_unit(estimate: Estimate, convert: Callable[[float], float], *, change_too: bool = False) -> Estimate:
    """The estimate in the rule's shown unit (µs -> ms, fraction -> %): both sides' values, each run's, and
    with ``change_too`` the change and its interval (a difference; a ratio has no unit)."""

    def each(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return None if values is None else tuple(convert(v) for v in values)

    estimate = replace(
        estimate,
        baseline=convert(estimate.baseline),
        candidate=convert(estimate.candidate),
        baseline_runs=each(estimate.baseline_runs),
        candidate_runs=each(estimate.candidate_runs),
    )
    if not change_too:
        return estimate
    interval = stats.Interval(convert(estimate.interval.low), convert(estimate.interval.high))
    return replace(estimate, change=convert(estimate.change), interval=interval)


def _ms(us: float) -> float:
    return us / 1000.0


def _percent(fraction: float) -> float:
    return fraction * 100.0


def run_seconds_needed(needed: int | None, rate_per_s: float | None, warmup_s: float) -> float | None:
    """Roughly how long a run must be (warm-up and last second included) to give ``needed`` samples at
    ``rate_per_s``; ``None`` when the rate says nothing (none seen, or not per second)."""
    if needed is None or not rate_per_s:
        return None
    return float(math.ceil(warmup_s + needed / rate_per_s + COOLDOWN_S))


def _skipped(
    common: Mapping[str, Any], unjudged: Unjudged, convert: Callable[[float], float], th: Thresholds
) -> RuleResult:
    def shown(value: float | None) -> float | None:
        return None if value is None else convert(value)

    return RuleResult(
        **common,
        baseline=shown(unjudged.baseline),
        candidate=shown(unjudged.candidate),
        change=None,
        interval=None,
        status="skipped",
        reason=unjudged.reason,
        samples=unjudged.samples,
        min_samples=unjudged.min_samples,
        run_s_needed=run_seconds_needed(unjudged.min_samples, unjudged.rate_per_s, th.warmup_s),
    )


def _result(common: Mapping[str, Any], estimate: Estimate, verdict: _Verdict) -> RuleResult:
    return RuleResult(
        samples=estimate.samples,
        min_samples=estimate.min_samples,
        **common,
        baseline=estimate.baseline,
        candidate=estimate.candidate,
        change=estimate.change,
        interval=(estimate.interval.low, estimate.interval.high),
        status=verdict.status,
        reason=verdict.reason,
        baseline_runs=estimate.baseline_runs,
        candidate_runs=estimate.candidate_runs,
        unconfirmed=verdict.unconfirmed,
        runs_needed=verdict.runs_needed,
    )


def latency_rules(
    metric: str, bases: Sequence[RunData], cands: Sequence[RunData], rules: tuple[LatencyRule, ...],
    estimator: Estimator, th: Thresholds,
) -> list[RuleResult]:  # fmt: skip
    """Every latency percentile rule of ``metric``: the candidate slower beyond tolerance and floor fails."""
    if not rules:
        return []
    estimates = estimator.latency(metric, bases, cands, rules)
    results = []
    for rule in rules:
        est = estimates[rule.stat]
        tolerance = rule.tolerance + estimator.latency_allowance
        limit = f"+{tolerance:.0%} and +{rule.floor_us / 1000:g} ms"
        common = dict(
            rule=f"{metric} {rule.stat}", kind="relative", subject=metric, stat=rule.stat, unit="ms",
            limit=limit, optional=rule.optional, sample_unit="samples",
        )  # fmt: skip
        if isinstance(est, Unjudged):
            results.append(_skipped({**common, "sample_unit": est.unit}, est, _ms, th))
            continue
        delta_us = est.candidate - est.baseline
        ci = est.interval
        change = (
            f"{est.change - 1:+.1%} ({delta_us / 1000:+.3f} ms), "
            f"{th.confidence:.0%} CI [{ci.low:.3f}, {ci.high:.3f}]"
        )
        verdict = _judge(
            est,
            worse=est.change > 1.0 + tolerance and delta_us > rule.floor_us,
            better=est.change < 1.0 - tolerance and -delta_us > rule.floor_us,
            no_change=1.0,
            higher_is_worse=True,
            change=change,
            beyond=f"beyond {limit}",
            limit=limit,
        )
        results.append(_result(common, _in_unit(est, _ms), verdict))
    return results


def error_rate_rule(
    kind: str, bases: Sequence[RunData], cands: Sequence[RunData], rule: RateRule, estimator: Estimator,
    th: Thresholds,
) -> RuleResult:  # fmt: skip
    """The error rate of ``kind``: more errors per request by over the tolerance (percentage points) fails."""
    tolerance = rule.tolerance
    limit = f"+{tolerance * 100:g} pp"
    est = estimator.error_rate(kind, bases, cands)
    common = dict(
        rule=f"{kind} error rate", kind="relative", subject=kind, stat="error_rate", unit="%", limit=limit,
        optional=rule.optional, sample_unit="requests",
    )  # fmt: skip
    if isinstance(est, Unjudged):
        return _skipped({**common, "sample_unit": est.unit}, est, _percent, th)
    shown = _in_unit(est, _percent, change_too=True)
    ci = shown.interval
    change = f"{shown.change:+.3f} pp, {th.confidence:.0%} CI [{ci.low:+.3f}, {ci.high:+.3f}]"
    verdict = _judge(
        est,
        worse=est.change > tolerance,
        better=est.change < -tolerance,
        no_change=0.0,
        higher_is_worse=True,
        change=change,
        beyond=f"beyond {limit}",
        limit=limit,
    )
    return _result(common, shown, verdict)


def throughput_rule(
    kind: str, bases: Sequence[RunData], cands: Sequence[RunData], rule: RateRule, estimator: Estimator,
    th: Thresholds,
) -> RuleResult:  # fmt: skip
    """Frames of ``kind`` sent per second: a drop beyond the tolerance fails."""
    tolerance = rule.tolerance
    limit = f"-{tolerance:.0%}"
    est = estimator.throughput(kind, bases, cands)
    common = dict(
        rule=f"{kind} throughput", kind="relative", subject=kind, stat="throughput", unit="/s", limit=limit,
        optional=rule.optional, sample_unit="frames",
    )  # fmt: skip
    if isinstance(est, Unjudged):
        return _skipped({**common, "sample_unit": est.unit}, est, float, th)
    ci = est.interval
    change = f"{est.change - 1:+.1%}, {th.confidence:.0%} CI [{ci.low:.3f}, {ci.high:.3f}]"
    verdict = _judge(
        est,
        worse=est.change < 1.0 - tolerance,
        better=est.change > 1.0 + tolerance,
        no_change=1.0,
        higher_is_worse=False,
        change=change,
        beyond=f"dropped beyond {limit}",
        limit=limit,
    )
    return _result(common, est, verdict)
