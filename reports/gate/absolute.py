"""Absolute rules (k6 / Gatling style limits): checked on the candidate alone, with no baseline needed."""

from __future__ import annotations

from collections.abc import Sequence

from reports.data import RunData, error_rates, request_type
from reports.errors import ReportError
from reports.gate.estimators import per_second, samples_needed
from reports.gate.evidence import metric_names
from reports.gate.judge import run_seconds_needed
from reports.gate.result import RuleResult
from reports.thresholds import AbsoluteRule, Thresholds
from runstore import histogram as hdr
from runstore.names import COUNTER_SENT, METRIC_ACK_PREFIX, METRIC_CONNECT

__all__ = ["absolute_rule", "resolve_metric"]


def resolve_metric(name: str, metrics: set[str] | list[str]) -> str | None:
    """Map a thresholds-file name to a latency metric (``chat_message`` -> ``ack:chat_message``)."""
    if name in metrics:
        return name
    if METRIC_ACK_PREFIX + name in metrics:
        return METRIC_ACK_PREFIX + name
    return None


def absolute_rule(
    rule: AbsoluteRule, kept: Sequence[RunData], whole: Sequence[RunData], th: Thresholds
) -> RuleResult:
    """One absolute rule on the candidate; with several candidate runs, on all of their samples pooled.

    A percentile needs as many samples as a relative rule on it (:func:`samples_needed`), ``max`` / ``min``
    / ``mean`` one, an error rate one request: with fewer the rule is skipped, never met by default.
    Throughput needs nothing: no frames is a rate of 0.
    """
    samples: int | None = None
    needed: int | None = None
    sample_unit: str | None = None
    rate: float | None = None
    if rule.quantity == "latency":
        metric = resolve_metric(rule.subject or "", whole[0].metrics)
        if metric is None:
            has = metric_names(set(whole[0].metrics))
            raise ReportError(
                f"absolute rule {rule.text!r}"
                + (f" (line {rule.line})" if rule.line else "")
                + f": the candidate has no latency metric {rule.subject!r} (it has {has})"
            )
        runs = whole if metric == METRIC_CONNECT else kept  # handshakes happen during the ramp-up
        try:
            histogram = hdr.merge_encoded(
                [blob for run in runs for blob in run.metric_rows(metric)["hist"].tolist()]
            )
        except ValueError as exc:
            raise ReportError(f"candidate: damaged histogram for {metric}: {exc}") from exc
        samples, sample_unit = int(histogram.get_total_count()), "samples"
        needed = 1 if rule.percentile is None else samples_needed(rule.percentile)
        if rule.percentile is not None:
            value = float(hdr.percentiles(histogram, [rule.percentile])[rule.percentile])
        else:
            value = float(hdr.summarize(histogram)[f"{rule.stat}_us"])
        shown, unit, limit = value / 1000.0, "ms", f"{rule.op} {rule.limit / 1000:g} ms"
        subject = metric
        seconds = sum(run.duration_s for run in runs)
        rate = None if metric == METRIC_CONNECT or not seconds else samples / seconds
    elif rule.quantity == "error_rate":
        per_run = [error_rates(run) for run in kept]
        if rule.subject is None:
            kinds = sorted({kind for rates in per_run for kind in rates})
            subject = "all"
        else:
            kind = request_type(rule.subject) or rule.subject
            if not any(kind in rates for rates in per_run):
                raise ReportError(
                    f"absolute rule {rule.text!r}: the candidate has no requests of type {kind!r}"
                )
            kinds, subject = [kind], kind
        errors = sum(int(rates[k]["errors"]) for rates in per_run for k in kinds if k in rates)
        requests = sum(int(rates[k]["requests"]) for rates in per_run for k in kinds if k in rates)
        value = errors / requests if requests else 0.0
        shown, unit, limit = value * 100.0, "%", f"{rule.op} {rule.limit * 100:g} %"
        samples, needed, sample_unit, rate = requests, 1, "requests", None
    else:
        kind = request_type(rule.subject or "") or (rule.subject or "")
        name = f"{COUNTER_SENT}{kind}"
        if name not in set(whole[0].counters["name"].astype(str)):
            raise ReportError(f"absolute rule {rule.text!r}: the candidate has no counter {name!r}")
        series = [per_second(run, [name]) for run in kept]
        value = float(sum(x.sum() for x in series) / sum(x.size for x in series))
        shown, unit, limit, subject = value, "/s", f"{rule.op} {rule.limit:g} /s", kind
    ok = rule.holds(value)
    pooled = f" ({len(kept)} runs pooled)" if len(kept) > 1 else ""
    common = dict(
        rule=rule.text, kind="absolute", subject=subject, stat=rule.stat, unit=unit, baseline=None,
        change=None, interval=None, limit=limit, samples=samples, min_samples=needed, sample_unit=sample_unit,
        optional=rule.optional,
    )  # fmt: skip
    if samples is not None and needed is not None and samples < needed:
        return RuleResult(
            **common,
            candidate=None,
            status="skipped",
            reason=f"too few {sample_unit}{pooled} ({samples} < {needed} needed for {rule.stat})",
            run_s_needed=run_seconds_needed(needed, rate, th.warmup_s),
        )
    return RuleResult(
        **common,
        candidate=shown,
        status="pass" if ok else "regression",
        reason=f"{shown:.4g} {unit}{pooled} {'meets' if ok else 'breaks'} {limit}",
    )
