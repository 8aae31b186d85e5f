"""The release gate: compare a candidate run with a baseline, rule by rule, without crying wolf.

:func:`evaluate_gate` is pure: two :class:`~reports.data.RunData` snapshots and :class:`Thresholds` in, a
frozen :class:`GateResult` out. Rendering it (table, HTML, JSON, JUnit) is another module's job.

A relative rule fails only when **both** hold (``docs/reports.md`` explains why):

* a practical effect: the candidate's statistic is worse than the baseline's by more than the rule's tolerance
  (a ratio for latency percentiles and throughput, percentage points for error rates) *and*, for latency, by
  more than an absolute floor (0.2 ms of p50 is noise on a shared runner whatever the ratio says);
* statistical confidence: the bootstrap confidence interval of the change (resampling seconds of each run,
  :mod:`reports.stats`) excludes "no change".

Both runs lose their first ``warmup_s`` seconds and their last (usually partial) second before anything is
computed, and, in the open model, every second in which the load generator itself fell behind its schedule
(``send_lag`` p95 beyond ``stall_lag``): on a shared runner those seconds measure the neighbours, not the
build. Absolute rules are checked on the candidate alone and need no baseline.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from reports import stats
from reports.data import RunData, error_rates, request_type
from reports.errors import ReportError
from reports.thresholds import AbsoluteRule, LatencyRule, Thresholds
from runstore import histogram as hdr
from runstore.names import COUNTER_ERRORS, COUNTER_SENT, METRIC_ACK_PREFIX, METRIC_CONNECT, METRIC_SEND_LAG

__all__ = [
    "COOLDOWN_S",
    "MIN_SAMPLES",
    "MIN_TAIL_SAMPLES",
    "MIN_THROUGHPUT_FRAMES",
    "STALL_FLOOR_US",
    "GateResult",
    "RuleResult",
    "Status",
    "evaluate_gate",
    "resolve_metric",
]

Status = Literal["pass", "regression", "improved", "skipped"]

COOLDOWN_S = 1.0
"""Seconds dropped at the end of each run (the last second is usually partial)."""
MIN_SAMPLES = 200
"""No percentile rule is judged on fewer samples than this in either run: a median of 30 requests moves by
±20 % between runs of the same build."""
STALL_FLOOR_US = 1000.0
"""The relative stall limit is never below 1 ms."""
MIN_TAIL_SAMPLES = 10
"""A percentile ``p`` is judged only with at least this many samples above it in both runs
(p99 needs 1,000 samples, p50 needs 20)."""
MIN_THROUGHPUT_FRAMES = 50
"""Throughput rules need this many frames in the baseline."""


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome.

    ``change`` is the candidate / baseline ratio (latency, throughput) or the difference in percentage points
    (error rate); ``interval`` its bootstrap confidence interval.
    """

    rule: str
    kind: Literal["relative", "absolute"]
    subject: str
    stat: str
    unit: str
    baseline: float | None
    candidate: float | None
    change: float | None
    interval: tuple[float, float] | None
    limit: str
    status: Status
    reason: str


@dataclass(frozen=True)
class GateResult:
    """The verdict and every rule's outcome."""

    verdict: Literal["pass", "regression"]
    rules: tuple[RuleResult, ...]
    baseline: Mapping[str, Any] | None
    candidate: Mapping[str, Any]
    warmup_s: float
    confidence: float
    resamples: int
    notes: tuple[str, ...] = field(default=())

    @property
    def regressions(self) -> tuple[RuleResult, ...]:
        """The rules that failed."""
        return tuple(rule for rule in self.rules if rule.status == "regression")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (``--json``)."""
        result = asdict(self)
        result["rules"] = [asdict(rule) for rule in self.rules]
        return result


def resolve_metric(name: str, metrics: set[str] | list[str]) -> str | None:
    """Map a thresholds-file name to a latency metric (``chat_message`` -> ``ack:chat_message``)."""
    if name in metrics:
        return name
    if METRIC_ACK_PREFIX + name in metrics:
        return METRIC_ACK_PREFIX + name
    return None


def _short(metric: str) -> str:
    return metric[len(METRIC_ACK_PREFIX) :] if metric.startswith(METRIC_ACK_PREFIX) else metric


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _run_meta(data: RunData) -> dict[str, Any]:
    return {
        "id": data.run.get("id"),
        "name": data.run.get("name"),
        "started_at": data.run.get("started_at"),
        "git_commit": data.run.get("git_commit"),
        "seconds": data.duration_s,
    }


def _matrix(data: RunData, metric: str) -> stats.CountsMatrix:
    rows = data.metric_rows(metric)
    try:
        return stats.counts_matrix(rows.loc[rows["count"] > 0, "hist"].tolist())
    except ValueError as exc:
        raise ReportError(f"{data.label}: damaged histogram for {metric}: {exc}") from exc


def _latency_rules(
    metric: str, base: RunData, cand: RunData, rules: tuple[LatencyRule, ...], th: Thresholds
) -> list[RuleResult]:
    if not rules:
        return []
    bm, cm = _matrix(base, metric), _matrix(cand, metric)
    pcts = [rule.percentile for rule in rules]
    rng = _rng(th.seed, metric)
    boot_b, method = stats.bootstrap_percentiles(bm, pcts, th.resamples, rng)
    boot_c, _ = stats.bootstrap_percentiles(cm, pcts, th.resamples, rng, method=method)
    results = []
    for rule in rules:
        name = f"{metric} {rule.stat}"
        limit = f"+{rule.tolerance:.0%} and +{rule.floor_us / 1000:g} ms"
        needed = max(int(np.ceil(MIN_TAIL_SAMPLES / (1.0 - rule.percentile / 100.0))), MIN_SAMPLES)
        b_value = float(stats.percentile_of_counts(bm.counts.sum(axis=0), bm.values_us, rule.percentile)[0])
        c_value = float(stats.percentile_of_counts(cm.counts.sum(axis=0), cm.values_us, rule.percentile)[0])
        common = dict(
            rule=name, kind="relative", subject=metric, stat=rule.stat, unit="ms",
            baseline=b_value / 1000.0, candidate=c_value / 1000.0, limit=limit,
        )  # fmt: skip
        if min(bm.total, cm.total) < needed:
            results.append(
                RuleResult(
                    **common,  # type: ignore[arg-type]
                    change=None,
                    interval=None,
                    status="skipped",
                    reason=f"too few samples ({min(bm.total, cm.total)} < {needed} needed for {rule.stat})",
                )
            )
            continue
        ratio = c_value / max(b_value, 1.0)
        ratios = boot_c[rule.percentile] / np.maximum(boot_b[rule.percentile], 1.0)
        ci = stats.interval(ratios, th.confidence)
        delta_us = c_value - b_value
        worse = ratio > 1.0 + rule.tolerance and delta_us > rule.floor_us
        better = ratio < 1.0 - rule.tolerance and -delta_us > rule.floor_us
        confident_worse, confident_better = ci.low > 1.0, ci.high < 1.0
        change = (
            f"{ratio - 1:+.1%} ({delta_us / 1000:+.3f} ms), "
            f"{th.confidence:.0%} CI [{ci.low:.3f}, {ci.high:.3f}]"
        )
        if worse and confident_worse:
            status, reason = "regression", f"{change}: beyond {limit} and the CI excludes no change"
        elif worse:
            status, reason = (
                "pass",
                f"{change}: beyond {limit} but the CI includes no change ({method} bootstrap)",
            )
        elif better and confident_better:
            status, reason = "improved", change
        else:
            status, reason = "pass", f"{change}: within {limit}"
        results.append(
            RuleResult(
                **common,  # type: ignore[arg-type]
                change=ratio,
                interval=(ci.low, ci.high),
                status=status,  # type: ignore[arg-type]
                reason=reason,
            )
        )
    return results


def _series(data: RunData, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum ``values`` by second over the snapshot's seconds (excluded seconds are not in the series)."""
    seconds = data.seconds
    series = np.zeros(max(seconds.size, 1), dtype=np.float64)
    index = np.searchsorted(seconds, t)
    inside = (index < seconds.size) & (seconds[np.minimum(index, seconds.size - 1)] == t)
    np.add.at(series, index[inside], values[inside])
    return series


def _per_second(data: RunData, names: list[str]) -> np.ndarray:
    rows = data.counters[data.counters["name"].isin(names)]
    return _series(data, rows["t"].to_numpy(dtype=np.int64), rows["value"].to_numpy(dtype=np.float64))


def _error_series(data: RunData, kind: str) -> tuple[np.ndarray, np.ndarray]:
    names = [str(n) for n in data.counters["name"].unique()]
    error_names = [n for n in names if n.startswith(f"{COUNTER_ERRORS}{kind}.") and n.count(".") >= 2]
    errors = _per_second(data, error_names)
    sent = f"{COUNTER_SENT}{kind}"
    if sent in names:
        requests = _per_second(data, [sent])
    elif kind == METRIC_CONNECT:
        rows = data.metric_rows(METRIC_CONNECT)
        requests = _series(data, rows["t"].to_numpy(dtype=np.int64), rows["count"].to_numpy(dtype=np.float64))
        requests += errors
    else:
        requests = errors.copy()
    return errors, np.maximum(requests, errors)


def _error_rule(kind: str, base: RunData, cand: RunData, tolerance: float, th: Thresholds) -> RuleResult:
    be, bn = _error_series(base, kind)
    ce, cn = _error_series(cand, kind)
    b_rate = be.sum() / bn.sum() if bn.sum() else 0.0
    c_rate = ce.sum() / cn.sum() if cn.sum() else 0.0
    limit = f"+{tolerance * 100:g} pp"
    common = dict(
        rule=f"{kind} error rate", kind="relative", subject=kind, stat="error_rate", unit="%",
        baseline=b_rate * 100.0, candidate=c_rate * 100.0, limit=limit,
    )  # fmt: skip
    if not bn.sum() or not cn.sum():
        return RuleResult(
            **common,  # type: ignore[arg-type]
            change=None,
            interval=None,
            status="skipped",
            reason=f"no {kind} requests in the {'baseline' if not bn.sum() else 'candidate'}",
        )
    rng = _rng(th.seed, f"errors:{kind}")
    wb = stats.bootstrap_weights(bn.size, th.resamples, rng)
    wc = stats.bootstrap_weights(cn.size, th.resamples, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        diffs = (wc @ ce) / (wc @ cn) - (wb @ be) / (wb @ bn)
    ci = stats.interval(diffs, th.confidence)
    diff = c_rate - b_rate
    change = f"{diff * 100:+.3f} pp, {th.confidence:.0%} CI [{ci.low * 100:+.3f}, {ci.high * 100:+.3f}]"
    if diff > tolerance and ci.low > 0:
        status, reason = "regression", f"{change}: beyond {limit} and the CI excludes no change"
    elif diff > tolerance:
        status, reason = "pass", f"{change}: beyond {limit} but the CI includes no change"
    elif diff < -tolerance and ci.high < 0:
        status, reason = "improved", change
    else:
        status, reason = "pass", f"{change}: within {limit}"
    return RuleResult(
        **common,  # type: ignore[arg-type]
        change=diff * 100.0,
        interval=(ci.low * 100.0, ci.high * 100.0),
        status=status,  # type: ignore[arg-type]
        reason=reason,
    )


def _throughput_rule(kind: str, base: RunData, cand: RunData, tolerance: float, th: Thresholds) -> RuleResult:
    name = f"{COUNTER_SENT}{kind}"
    bx, cx = _per_second(base, [name]), _per_second(cand, [name])
    b_rate, c_rate = bx.mean(), cx.mean()
    limit = f"-{tolerance:.0%}"
    common = dict(
        rule=f"{kind} throughput", kind="relative", subject=kind, stat="throughput", unit="/s",
        baseline=float(b_rate), candidate=float(c_rate), limit=limit,
    )  # fmt: skip
    if bx.sum() < MIN_THROUGHPUT_FRAMES:
        return RuleResult(
            **common,  # type: ignore[arg-type]
            change=None,
            interval=None,
            status="skipped",
            reason=f"too few frames in the baseline ({int(bx.sum())} < {MIN_THROUGHPUT_FRAMES})",
        )
    rng = _rng(th.seed, f"throughput:{kind}")
    wb = stats.bootstrap_weights(bx.size, th.resamples, rng)
    wc = stats.bootstrap_weights(cx.size, th.resamples, rng)
    ratios = ((wc @ cx) / cx.size) / np.maximum((wb @ bx) / bx.size, 1e-9)
    ci = stats.interval(ratios, th.confidence)
    ratio = c_rate / b_rate
    change = f"{ratio - 1:+.1%}, {th.confidence:.0%} CI [{ci.low:.3f}, {ci.high:.3f}]"
    if ratio < 1.0 - tolerance and ci.high < 1.0:
        status, reason = "regression", f"{change}: dropped beyond {limit} and the CI excludes no change"
    elif ratio < 1.0 - tolerance:
        status, reason = "pass", f"{change}: dropped beyond {limit} but the CI includes no change"
    elif ratio > 1.0 + tolerance and ci.low > 1.0:
        status, reason = "improved", change
    else:
        status, reason = "pass", f"{change}: within {limit}"
    return RuleResult(
        **common,  # type: ignore[arg-type]
        change=float(ratio),
        interval=(ci.low, ci.high),
        status=status,  # type: ignore[arg-type]
        reason=reason,
    )


def _judged_over(metric: str | None, kept: RunData, whole: RunData) -> RunData:
    """The data a latency metric is judged on: the kept seconds, except ``connect`` (whole run).

    Handshakes happen during the ramp-up: the warm-up would leave none.
    """
    return whole if metric == METRIC_CONNECT else kept


def _absolute(rule: AbsoluteRule, cand: RunData, whole: RunData) -> RuleResult:
    if rule.quantity == "latency":
        metric = resolve_metric(rule.subject or "", whole.metrics)
        cand = _judged_over(metric, cand, whole)
        if metric is None:
            raise ReportError(
                f"absolute rule {rule.text!r}"
                + (f" (line {rule.line})" if rule.line else "")
                + f": the candidate has no latency metric {rule.subject!r} (it has {', '.join(cand.metrics)})"
            )
        histogram = cand.merged(metric)
        summary = hdr.summarize(histogram)
        if rule.percentile is not None:
            value = float(hdr.percentiles(histogram, [rule.percentile])[rule.percentile])
        else:
            value = float(summary[f"{rule.stat}_us"])
        shown, unit, limit = value / 1000.0, "ms", f"{rule.op} {rule.limit / 1000:g} ms"
        subject = metric
    elif rule.quantity == "error_rate":
        rates = error_rates(cand)
        if rule.subject is None:
            errors = sum(int(r["errors"]) for r in rates.values())
            requests = sum(int(r["requests"]) for r in rates.values())
            subject = "all"
        else:
            kind = request_type(rule.subject) or rule.subject
            if kind not in rates:
                raise ReportError(
                    f"absolute rule {rule.text!r}: the candidate has no requests of type {kind!r}"
                )
            errors, requests = int(rates[kind]["errors"]), int(rates[kind]["requests"])
            subject = kind
        value = errors / requests if requests else 0.0
        shown, unit, limit = value * 100.0, "%", f"{rule.op} {rule.limit * 100:g} %"
    else:
        kind = request_type(rule.subject or "") or (rule.subject or "")
        name = f"{COUNTER_SENT}{kind}"
        if name not in set(cand.counters["name"].astype(str)):
            raise ReportError(f"absolute rule {rule.text!r}: the candidate has no counter {name!r}")
        value = float(_per_second(cand, [name]).mean())
        shown, unit, limit, subject = value, "/s", f"{rule.op} {rule.limit:g} /s", kind
    ok = rule.holds(value)
    return RuleResult(
        rule=rule.text,
        kind="absolute",
        subject=subject,
        stat=rule.stat,
        unit=unit,
        baseline=None,
        candidate=shown,
        change=None,
        interval=None,
        limit=limit,
        status="pass" if ok else "regression",
        reason=f"{shown:.4g} {unit} {'meets' if ok else 'breaks'} {limit}",
    )


def _check_types(base: RunData, cand: RunData) -> None:
    b, c = set(base.metrics), set(cand.metrics)
    if b != c:
        parts = []
        if b - c:
            parts.append(f"only in the baseline: {', '.join(sorted(b - c))}")
        if c - b:
            parts.append(f"only in the candidate: {', '.join(sorted(c - b))}")
        raise ReportError(f"message types present in only one run ({'; '.join(parts)})")


def _stall_limit(runs: list[RunData], th: Thresholds) -> float | None:
    """Per-second ``send_lag`` p95 above which a second counts as stalled, or ``None`` (no filter).

    ``stall_lag`` caps it; with ``stall_factor`` it is also at most that factor times the quiet level: the
    lower of the runs' median per-second ``send_lag`` p95 (never below :data:`STALL_FLOOR_US`).
    """
    if th.stall_lag_us is None:
        return None
    levels = [
        float(data.metric_rows(METRIC_SEND_LAG)["p95_us"].median())
        for data in runs
        if METRIC_SEND_LAG in data.metrics
    ]
    if not levels:
        return None
    if th.stall_factor is None:
        return th.stall_lag_us
    return min(th.stall_lag_us, max(th.stall_factor * min(levels), STALL_FLOOR_US))


def _without_stalls(
    data: RunData, role: str, limit_us: float | None, th: Thresholds, notes: list[str]
) -> RunData:
    """Drop the seconds where the open-model generator fell behind its schedule (``send_lag`` p95)."""
    if limit_us is None or METRIC_SEND_LAG not in data.metrics:
        return data
    lag = data.metric_rows(METRIC_SEND_LAG)
    stalled = {int(t) for t in lag.loc[lag["p95_us"] > limit_us, "t"]}
    quiet = data.duration_s - len(stalled)
    if quiet < th.min_quiet_seconds:
        raise ReportError(
            f"the {role} {data.label} is not usable evidence: its load generator fell behind its schedule "
            f"(send_lag p95 > {limit_us / 1000:.3g} ms) in {len(stalled)} of {data.duration_s} seconds, "
            "so the machine, not the build, set its latencies; rerun it on a quieter machine"
        )
    if stalled:
        notes.append(
            f"{role}: {len(stalled)} of {data.duration_s} seconds excluded, the load generator stalled "
            f"(send_lag p95 > {limit_us / 1000:.3g} ms)"
        )
    return data.without_seconds(stalled)


def evaluate_gate(baseline: RunData | None, candidate: RunData, thresholds: Thresholds) -> GateResult:
    """Compare ``candidate`` with ``baseline`` (or, with no baseline, check the absolute rules only).

    Returns:
        The verdict (``regression`` if any rule failed) and every rule's outcome, relative rules first.

    Raises:
        ReportError: message types present in only one run, nothing left after the warm-up, a run whose
            load generator fell behind in nearly every second (fewer than ``min_quiet_seconds`` left), an
            absolute rule naming something the candidate does not have, a damaged histogram.
    """
    th = thresholds
    if baseline is not None:
        _check_types(baseline, candidate)
    results: list[RuleResult] = []
    notes: list[str] = []
    cand = candidate.window(th.warmup_s, COOLDOWN_S)
    base = None if baseline is None else baseline.window(th.warmup_s, COOLDOWN_S)
    limit = _stall_limit([cand] if base is None else [base, cand], th)
    cand = _without_stalls(cand, "candidate", limit, th, notes)
    if baseline is not None:
        base = _without_stalls(base, "baseline", limit, th, notes)
        metrics = sorted(set(baseline.metrics) - {METRIC_SEND_LAG})
        known = set(metrics) | {_short(m) for m in metrics}
        for metric in metrics:
            b, c = _judged_over(metric, base, baseline), _judged_over(metric, cand, candidate)
            if metric not in b.metrics or metric not in c.metrics:
                notes.append(f"{metric}: no samples after the warm-up in one run; not compared")
                continue
            rules = th.rules_for(metric, _short(metric), request_type(metric))
            results += _latency_rules(metric, b, c, rules.latency, th)
        kinds = sorted(set(error_rates(base)) | set(error_rates(cand)))
        known |= set(kinds)
        for kind in kinds:
            rules = th.rules_for(kind)
            if rules.error_rate is not None:
                results.append(_error_rule(kind, base, cand, rules.error_rate.tolerance, th))
        sent = {
            str(n)[len(COUNTER_SENT) :]
            for n in base.counters["name"].unique()
            if str(n).startswith(COUNTER_SENT)
        }
        for kind in sorted(sent):
            rules = th.rules_for(kind)
            if rules.throughput is not None:
                results.append(_throughput_rule(kind, base, cand, rules.throughput.tolerance, th))
        for name in sorted(set(th.overrides) - known):
            notes.append(f"thresholds override [types.{name}] matches no message type of these runs")
    elif not th.absolute:
        raise ReportError("nothing to check: no baseline and no absolute rules in the thresholds")
    results += [_absolute(rule, cand, candidate) for rule in th.absolute]
    verdict = "regression" if any(r.status == "regression" for r in results) else "pass"
    return GateResult(
        verdict=verdict,  # type: ignore[arg-type]
        rules=tuple(results),
        baseline=None if baseline is None else _run_meta(baseline),
        candidate=_run_meta(candidate),
        warmup_s=th.warmup_s,
        confidence=th.confidence,
        resamples=th.resamples,
        notes=tuple(notes),
    )
