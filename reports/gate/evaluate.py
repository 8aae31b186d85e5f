"""The gate's one entry point: evidence in, every rule judged, the verdict out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reports.data import RunData, error_rates, request_type
from reports.errors import ReportError
from reports.gate.absolute import absolute_rule
from reports.gate.estimators import estimator_for
from reports.gate.evidence import Evidence, gather_evidence
from reports.gate.generator import generator_note, incomplete_note
from reports.gate.judge import error_rate_rule, latency_rules, throughput_rule
from reports.gate.result import GateResult, RuleResult, Verdict
from reports.thresholds import Thresholds
from runstore.names import COUNTER_SENT, METRIC_ACK_PREFIX, METRIC_SEND_LAG

__all__ = ["evaluate_gate"]


def evaluate_gate(
    baseline: RunData | Sequence[RunData] | None,
    candidate: RunData | Sequence[RunData],
    thresholds: Thresholds,
) -> GateResult:
    """Compare ``candidate`` with ``baseline`` (or, with no baseline, check the absolute rules only).

    Each side is one run or several runs of the same build. With one run per side the confidence intervals
    come from the block bootstrap over each run's seconds; with several runs on either side each run's
    statistic is one observation and the interval is a Student-t interval over the runs, which measures
    what one pair of runs cannot: how much runs of one build differ.

    Returns:
        The verdict (``regression`` if any rule failed) and every rule's outcome, relative rules first.

    Raises:
        ReportError: message types present in only one run, nothing left after the warm-up, a side whose
            load generator fell behind in nearly every second of every run (fewer than
            ``min_quiet_seconds`` left), an absolute rule naming something the candidate does not have, a
            damaged histogram.
    """
    th = thresholds
    evidence = gather_evidence(_as_runs(baseline), _as_runs(candidate), th)
    notes = list(evidence.notes)
    results: list[RuleResult] = []
    if evidence.whole_b:
        results += _relative_rules(evidence, th, notes)
    elif not th.absolute:
        raise ReportError("nothing to check: no baseline and no absolute rules in the thresholds")
    results += [absolute_rule(rule, evidence.kept_c, evidence.whole_c, th) for rule in th.absolute]
    for role, kept in (("baseline", evidence.kept_b), ("candidate", evidence.kept_c)):
        for note in (generator_note(role, kept), incomplete_note(role, kept)):  # notes, never a verdict
            if note:
                notes.append(note)
    verdict = _verdict(results, th)
    bases, cands = evidence.whole_b, evidence.whole_c
    return GateResult(
        verdict=verdict,
        rules=tuple(results),
        baseline=_run_meta(bases[0]) if bases else None,
        candidate=_run_meta(cands[0]),
        warmup_s=th.warmup_s,
        confidence=th.confidence,
        resamples=th.resamples,
        notes=tuple(notes),
        method="bootstrap" if evidence.one_run_each else "runs",
        paired=th.paired,
        allow_inconclusive=th.allow_inconclusive,
        baseline_runs=tuple(_run_meta(run) for run in bases),
        candidate_runs=tuple(_run_meta(run) for run in cands),
    )


def _verdict(results: list[RuleResult], th: Thresholds) -> Verdict:
    """A failed rule is a regression whatever else could not be judged; a rule that could not be judged
    (not optional) makes the comparison inconclusive, not a pass: the gate did not judge what it was asked."""
    if any(r.status == "regression" for r in results):
        return "regression"
    if any(r.unjudged for r in results) and not th.allow_inconclusive:
        return "inconclusive"
    return "pass"


def _relative_rules(evidence: Evidence, th: Thresholds, notes: list[str]) -> list[RuleResult]:
    """Every relative rule the runs give a subject for: latency per metric, error rate and throughput per
    request type; ``notes`` gains what could not be compared and overrides that match nothing."""
    estimator = estimator_for(evidence, th)
    kept_b, kept_c = list(evidence.kept_b), list(evidence.kept_c)
    results: list[RuleResult] = []
    metrics = sorted(set(evidence.whole_b[0].metrics) - {METRIC_SEND_LAG})
    known = set(metrics) | {_short(m) for m in metrics}
    for metric in metrics:
        b, c = evidence.judged_over(metric)
        if any(metric not in run.metrics for run in b + c):
            notes.append(f"{metric}: no samples after the warm-up in one run; not compared")
            continue
        rules = th.rules_for(metric, _short(metric), request_type(metric))
        results += latency_rules(metric, b, c, rules.latency, estimator, th)
    kinds = sorted({kind for run in kept_b + kept_c for kind in error_rates(run)})
    known |= set(kinds)
    for kind in kinds:
        rules = th.rules_for(kind)
        if rules.error_rate is not None:
            results.append(error_rate_rule(kind, kept_b, kept_c, rules.error_rate, estimator, th))
    sent = {
        str(n)[len(COUNTER_SENT) :]
        for n in kept_b[0].counters["name"].unique()
        if str(n).startswith(COUNTER_SENT)
    }
    for kind in sorted(sent):
        rules = th.rules_for(kind)
        if rules.throughput is not None:
            results.append(throughput_rule(kind, kept_b, kept_c, rules.throughput, estimator, th))
    for name in sorted(set(th.overrides) - known):
        notes.append(f"thresholds override [types.{name}] matches no message type of these runs")
    return results


def _short(metric: str) -> str:
    return metric[len(METRIC_ACK_PREFIX) :] if metric.startswith(METRIC_ACK_PREFIX) else metric


def _run_meta(data: RunData) -> dict[str, Any]:
    return {
        "id": data.run.get("id"),
        "name": data.run.get("name"),
        "started_at": data.run.get("started_at"),
        "git_commit": data.run.get("git_commit"),
        "seconds": data.duration_s,
    }


def _as_runs(runs: RunData | Sequence[RunData] | None) -> list[RunData]:
    if runs is None:
        return []
    return [runs] if isinstance(runs, RunData) else list(runs)
