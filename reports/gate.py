"""The release gate: compare a candidate run with a baseline, rule by rule, without crying wolf.

:func:`evaluate_gate` is pure: two :class:`~reports.data.RunData` snapshots and :class:`Thresholds` in, a
frozen :class:`GateResult` out. Rendering it (table, HTML, JSON, JUnit) is another module's job.

A relative rule fails only when **both** hold (``docs/reports.md`` explains why):

* a practical effect: the candidate's statistic is worse than the baseline's by more than the rule's tolerance
  (a ratio for latency percentiles and throughput, percentage points for error rates; latency tolerances
  grow by ``single_run_allowance`` when each side is one run) *and*, for latency, by more than an absolute
  floor (0.1 ms of p50 is noise on a shared runner whatever the ratio says);
* statistical confidence: the confidence interval of the change excludes "no change". With one run per
  side it is a bootstrap over the seconds of each run (:mod:`reports.stats`); with several runs on a side
  each run's statistic is one observation and the interval a Student-t interval over the runs.

Both runs lose their first ``warmup_s`` seconds and their last (usually partial) second before anything is
computed, and, in the open model, every second in which the load generator itself fell behind its schedule
(``send_lag`` p95 beyond ``stall_lag``): on a shared runner those seconds measure the neighbours, not the
build. Absolute rules are checked on the candidate alone and need no baseline.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any, Literal, NamedTuple

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
    (error rate); ``interval`` its confidence interval. With several runs on a side, ``baseline`` and
    ``candidate`` are the geometric means of the runs' statistics (arithmetic means for error rates) and
    ``baseline_runs`` / ``candidate_runs`` hold each run's value.
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
    baseline_runs: tuple[float, ...] | None = None
    candidate_runs: tuple[float, ...] | None = None
    unconfirmed: bool = False
    """A pass with a change beyond the limit that the confidence interval could not confirm."""
    runs_needed: int | None = None
    """Unconfirmed over runs: the runs a side that would confirm it 9 times in 10 (None: over 100)."""


@dataclass(frozen=True)
class GateResult:
    """The verdict and every rule's outcome.

    ``method`` says what the confidence intervals measure: ``bootstrap`` (one run per side: the seconds of
    each run resampled; noise within a run) or ``runs`` (several runs on a side: a Student-t interval over
    the runs' statistics; noise between runs). ``baseline`` / ``candidate`` describe the first run of each
    side, ``baseline_runs`` / ``candidate_runs`` every run judged.
    """

    verdict: Literal["pass", "regression"]
    rules: tuple[RuleResult, ...]
    baseline: Mapping[str, Any] | None
    candidate: Mapping[str, Any]
    warmup_s: float
    confidence: float
    resamples: int
    notes: tuple[str, ...] = field(default=())
    method: Literal["bootstrap", "runs"] = "bootstrap"
    baseline_runs: tuple[Mapping[str, Any], ...] = field(default=())
    candidate_runs: tuple[Mapping[str, Any], ...] = field(default=())
    paired: bool = False
    """Over runs, in pairs: baseline run i with candidate run i, in the order they ran."""

    @property
    def regressions(self) -> tuple[RuleResult, ...]:
        """The rules that failed."""
        return tuple(rule for rule in self.rules if rule.status == "regression")

    @property
    def method_text(self) -> str:
        """``95% bootstrap CI, 2000 resamples``, ``95% t intervals over 5 + 5 runs`` or ``95% paired t
        intervals over 5 pairs of runs``, for people."""
        if self.method == "runs" and self.paired:
            return f"{self.confidence:.0%} paired t intervals over {len(self.baseline_runs)} pairs of runs"
        if self.method == "runs":
            return (
                f"{self.confidence:.0%} t intervals over {len(self.baseline_runs)} + "
                f"{len(self.candidate_runs)} runs"
            )
        return f"{self.confidence:.0%} bootstrap CI, {self.resamples} resamples"

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


@dataclass(frozen=True)
class _Estimate:
    """A rule's statistic on both sides, the change between them and that change's confidence interval."""

    baseline: float
    candidate: float
    change: float
    interval: stats.Interval
    method: str
    """How the interval was made (``seconds bootstrap``, ``t interval over 5 + 5 runs``), for reasons."""
    baseline_runs: tuple[float, ...] | None = None
    candidate_runs: tuple[float, ...] | None = None
    runs_needed: Callable[[], int | None] | None = None
    """Over runs: how many runs a side would confirm a change of this size 9 times in 10 (None: over 100).
    Deferred: it scans up to 100 run counts, and only an unconfirmed change asks."""
    paired: bool = False


def _over_runs(b_values: np.ndarray, c_values: np.ndarray, th: Thresholds, *, ratio: bool) -> _Estimate:
    """Run-level estimate: each run's statistic is one observation (with ``th.paired``, each pair's
    difference: the runs are in pairs, in the order they ran).

    Ratios are of geometric means, with the t interval of the mean log difference (run-to-run noise is
    multiplicative); differences (error rates) are of arithmetic means.
    """
    transform = (lambda v: np.log(np.maximum(v, 1e-12))) if ratio else (lambda v: v)
    back = np.exp if ratio else (lambda v: v)
    b, c = transform(b_values), transform(c_values)
    if th.paired:
        difference, ci = stats.paired_difference_interval(b, c, th.confidence)
        spread = stats.paired_spread(b, c)
        method = f"paired t interval over {b.size} pairs of runs"
    else:
        difference, ci = stats.mean_difference_interval(b, c, th.confidence)
        spread = stats.pooled_spread(b, c)
        method = f"t interval over {b.size} + {c.size} runs"
    return _Estimate(
        baseline=float(back(b.mean())),
        candidate=float(back(c.mean())),
        change=float(back(difference)),
        interval=stats.Interval(float(back(ci.low)), float(back(ci.high))),
        method=method,
        baseline_runs=tuple(float(v) for v in b_values),
        candidate_runs=tuple(float(v) for v in c_values),
        runs_needed=partial(stats.runs_per_side_needed, spread, difference, th.confidence, paired=th.paired),
        paired=th.paired,
    )


class _Verdict(NamedTuple):
    status: Status
    reason: str
    unconfirmed: bool = False
    """``worse`` but the interval includes no change."""
    runs_needed: int | None = None
    """Unconfirmed over runs: the runs a side that would confirm the change (None: over 100)."""


def _judge(
    estimate: _Estimate, *, worse: bool, better: bool, no_change: float, higher_is_worse: bool, change: str,
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


def _hint(estimate: _Estimate, needed: int | None) -> str:
    """For a change seen but not confirmed over runs: how many runs a side would settle it."""
    if estimate.baseline_runs is None:
        return ""
    runs = "pairs of runs" if estimate.paired else "runs a side"
    if needed is None:
        return f"; over 100 {runs} would be needed to confirm a change this size"
    return f"; ≈ {needed} {runs} would confirm a change this size 9 times in 10"


def _in_unit(
    estimate: _Estimate, convert: Callable[[float], float], *, change_too: bool = False
) -> _Estimate:
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


def _one_run_each(bases: Sequence[RunData], cands: Sequence[RunData]) -> bool:
    """No side has more than one run: intervals from the bootstrap over seconds; otherwise over runs."""
    return len(bases) <= 1 and len(cands) <= 1


def _skipped(common: Mapping[str, Any], reason: str) -> RuleResult:
    return RuleResult(**common, change=None, interval=None, status="skipped", reason=reason)


def _result(common: Mapping[str, Any], estimate: _Estimate, verdict: _Verdict) -> RuleResult:
    return RuleResult(
        **common,
        change=estimate.change,
        interval=(estimate.interval.low, estimate.interval.high),
        status=verdict.status,
        reason=verdict.reason,
        baseline_runs=estimate.baseline_runs,
        candidate_runs=estimate.candidate_runs,
        unconfirmed=verdict.unconfirmed,
        runs_needed=verdict.runs_needed,
    )


def _samples_needed(percentile: float) -> int:
    """At least :data:`MIN_SAMPLES`, and :data:`MIN_TAIL_SAMPLES` above the percentile."""
    return max(int(np.ceil(MIN_TAIL_SAMPLES / (1.0 - percentile / 100.0))), MIN_SAMPLES)


def _bootstrap_latency(
    metric: str, base: RunData, cand: RunData, pcts: list[float], th: Thresholds
) -> tuple[dict[float, _Estimate], int]:
    """One run per side: per-percentile estimates with the block bootstrap over seconds; fewest samples."""
    bm, cm = _matrix(base, metric), _matrix(cand, metric)
    rng = _rng(th.seed, metric)
    boot_b, method = stats.bootstrap_percentiles(bm, pcts, th.resamples, rng)
    boot_c, _ = stats.bootstrap_percentiles(cm, pcts, th.resamples, rng, method=method)
    estimates = {}
    for pct in pcts:
        b_value = float(stats.percentile_of_counts(bm.counts.sum(axis=0), bm.values_us, pct)[0])
        c_value = float(stats.percentile_of_counts(cm.counts.sum(axis=0), cm.values_us, pct)[0])
        ratios = boot_c[pct] / np.maximum(boot_b[pct], 1.0)
        estimates[pct] = _Estimate(
            baseline=b_value,
            candidate=c_value,
            change=c_value / max(b_value, 1.0),
            interval=stats.interval(ratios, th.confidence),
            method=f"{method} bootstrap",
        )
    return estimates, min(bm.total, cm.total)


def _runs_latency(
    metric: str, bases: list[RunData], cands: list[RunData], pcts: list[float], th: Thresholds
) -> tuple[dict[float, _Estimate], int]:
    """Several runs on a side: each run's percentile (its merged histogram) is one observation."""
    b_hists, c_hists = [r.merged(metric) for r in bases], [r.merged(metric) for r in cands]
    b_values = [hdr.percentiles(h, pcts) for h in b_hists]
    c_values = [hdr.percentiles(h, pcts) for h in c_hists]
    fewest = min(int(h.get_total_count()) for h in b_hists + c_hists)
    estimates = {
        pct: _over_runs(
            np.array([v[pct] for v in b_values], dtype=np.float64),
            np.array([v[pct] for v in c_values], dtype=np.float64),
            th,
            ratio=True,
        )
        for pct in pcts
    }
    return estimates, fewest


def _latency_rules(
    metric: str, bases: list[RunData], cands: list[RunData], rules: tuple[LatencyRule, ...], th: Thresholds
) -> list[RuleResult]:
    if not rules:
        return []
    pcts = [rule.percentile for rule in rules]
    if _one_run_each(bases, cands):
        estimates, fewest = _bootstrap_latency(metric, bases[0], cands[0], pcts, th)
        per, allowance = "", th.single_run_allowance
    else:
        estimates, fewest = _runs_latency(metric, bases, cands, pcts, th)
        per, allowance = " in a run", 0.0
    results = []
    for rule in rules:
        est = estimates[rule.percentile]
        shown = _in_unit(est, _ms)
        tolerance = rule.tolerance + allowance
        limit = f"+{tolerance:.0%} and +{rule.floor_us / 1000:g} ms"
        common = dict(
            rule=f"{metric} {rule.stat}", kind="relative", subject=metric, stat=rule.stat, unit="ms",
            baseline=shown.baseline, candidate=shown.candidate, limit=limit,
        )  # fmt: skip
        needed = _samples_needed(rule.percentile)
        if fewest < needed:
            results.append(
                _skipped(common, f"too few samples{per} ({fewest} < {needed} needed for {rule.stat})")
            )
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
        results.append(_result(common, shown, verdict))
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


def _error_estimate(kind: str, bases: list[RunData], cands: list[RunData], th: Thresholds) -> _Estimate | str:
    """The error-rate difference and its interval, or why it cannot be judged."""
    b_series = [_error_series(r, kind) for r in bases]
    c_series = [_error_series(r, kind) for r in cands]
    for role, series in (("baseline", b_series), ("candidate", c_series)):
        if not any(n.sum() for _, n in series):
            return f"no {kind} requests in the {role}"
    if _one_run_each(bases, cands):
        (be, bn), (ce, cn) = b_series[0], c_series[0]
        rng = _rng(th.seed, f"errors:{kind}")
        wb = stats.bootstrap_weights(bn.size, th.resamples, rng)
        wc = stats.bootstrap_weights(cn.size, th.resamples, rng)
        with np.errstate(invalid="ignore", divide="ignore"):
            diffs = (wc @ ce) / (wc @ cn) - (wb @ be) / (wb @ bn)
        b_rate, c_rate = be.sum() / bn.sum(), ce.sum() / cn.sum()
        return _Estimate(
            b_rate, c_rate, c_rate - b_rate, stats.interval(diffs, th.confidence), "seconds bootstrap"
        )
    b_rates, c_rates = (
        np.array([e.sum() / n.sum() if n.sum() else np.nan for e, n in series], dtype=np.float64)
        for series in (b_series, c_series)
    )
    if th.paired:  # a run without requests takes its partner with it
        b_rates, c_rates = _both_known(b_rates, c_rates)
        if b_rates.size < 2:
            return f"fewer than 2 pairs of runs with {kind} requests"
    else:
        b_rates, c_rates = b_rates[~np.isnan(b_rates)], c_rates[~np.isnan(c_rates)]
        if b_rates.size + c_rates.size < 3:
            return f"fewer than 3 runs with {kind} requests"
    return _over_runs(b_rates, c_rates, th, ratio=False)


def _both_known(b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    known = ~(np.isnan(b) | np.isnan(c))
    return b[known], c[known]


def _error_rule(
    kind: str, bases: list[RunData], cands: list[RunData], tolerance: float, th: Thresholds
) -> RuleResult:
    limit = f"+{tolerance * 100:g} pp"
    est = _error_estimate(kind, bases, cands, th)
    shown = None if isinstance(est, str) else _in_unit(est, _percent, change_too=True)
    common = dict(
        rule=f"{kind} error rate", kind="relative", subject=kind, stat="error_rate", unit="%", limit=limit,
        baseline=None if shown is None else shown.baseline,
        candidate=None if shown is None else shown.candidate,
    )  # fmt: skip
    if shown is None:  # est is the reason it cannot be judged
        return _skipped(common, str(est))
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


def _throughput_rule(
    kind: str, bases: list[RunData], cands: list[RunData], tolerance: float, th: Thresholds
) -> RuleResult:
    name = f"{COUNTER_SENT}{kind}"
    b_series, c_series = [_per_second(r, [name]) for r in bases], [_per_second(r, [name]) for r in cands]
    limit = f"-{tolerance:.0%}"
    one_each = _one_run_each(bases, cands)
    if one_each:
        b_rate, c_rate = float(b_series[0].mean()), float(c_series[0].mean())
    else:
        b_rates = np.array([x.mean() for x in b_series], dtype=np.float64)
        c_rates = np.array([x.mean() for x in c_series], dtype=np.float64)
        est = _over_runs(b_rates, c_rates, th, ratio=True)
        b_rate, c_rate = est.baseline, est.candidate
    common = dict(
        rule=f"{kind} throughput", kind="relative", subject=kind, stat="throughput", unit="/s",
        baseline=b_rate, candidate=c_rate, limit=limit,
    )  # fmt: skip
    fewest = min(int(x.sum()) for x in b_series)
    if fewest < MIN_THROUGHPUT_FRAMES:
        where = "the baseline" if one_each else "a baseline run"
        return _skipped(common, f"too few frames in {where} ({fewest} < {MIN_THROUGHPUT_FRAMES})")
    if one_each:
        bx, cx = b_series[0], c_series[0]
        rng = _rng(th.seed, f"throughput:{kind}")
        wb = stats.bootstrap_weights(bx.size, th.resamples, rng)
        wc = stats.bootstrap_weights(cx.size, th.resamples, rng)
        ratios = ((wc @ cx) / cx.size) / np.maximum((wb @ bx) / bx.size, 1e-9)
        est = _Estimate(
            b_rate, c_rate, c_rate / max(b_rate, 1e-9), stats.interval(ratios, th.confidence),
            "seconds bootstrap",
        )  # fmt: skip
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


def _judged_over(metric: str | None, kept: RunData, whole: RunData) -> RunData:
    """The data a latency metric is judged on: the kept seconds, except ``connect`` (whole run).

    Handshakes happen during the ramp-up: the warm-up would leave none.
    """
    return whole if metric == METRIC_CONNECT else kept


def _absolute(rule: AbsoluteRule, kept: list[RunData], whole: list[RunData]) -> RuleResult:
    """One absolute rule on the candidate; with several candidate runs, on all of their samples pooled."""
    if rule.quantity == "latency":
        metric = resolve_metric(rule.subject or "", whole[0].metrics)
        if metric is None:
            has = _names(set(whole[0].metrics))
            raise ReportError(
                f"absolute rule {rule.text!r}"
                + (f" (line {rule.line})" if rule.line else "")
                + f": the candidate has no latency metric {rule.subject!r} (it has {has})"
            )
        runs = [_judged_over(metric, k, w) for k, w in zip(kept, whole, strict=True)]
        try:
            histogram = hdr.merge_encoded(
                [blob for run in runs for blob in run.metric_rows(metric)["hist"].tolist()]
            )
        except ValueError as exc:
            raise ReportError(f"candidate: damaged histogram for {metric}: {exc}") from exc
        if rule.percentile is not None:
            value = float(hdr.percentiles(histogram, [rule.percentile])[rule.percentile])
        else:
            value = float(hdr.summarize(histogram)[f"{rule.stat}_us"])
        shown, unit, limit = value / 1000.0, "ms", f"{rule.op} {rule.limit / 1000:g} ms"
        subject = metric
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
    else:
        kind = request_type(rule.subject or "") or (rule.subject or "")
        name = f"{COUNTER_SENT}{kind}"
        if name not in set(whole[0].counters["name"].astype(str)):
            raise ReportError(f"absolute rule {rule.text!r}: the candidate has no counter {name!r}")
        series = [_per_second(run, [name]) for run in kept]
        value = float(sum(x.sum() for x in series) / sum(x.size for x in series))
        shown, unit, limit, subject = value, "/s", f"{rule.op} {rule.limit:g} /s", kind
    ok = rule.holds(value)
    pooled = f" ({len(kept)} runs pooled)" if len(kept) > 1 else ""
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
        reason=f"{shown:.4g} {unit}{pooled} {'meets' if ok else 'breaks'} {limit}",
    )


def _names(metrics: set[str]) -> str:
    return ", ".join(sorted(metrics)) or "none"


def _check_types(bases: list[RunData], cands: list[RunData]) -> None:
    """Every run must measure the same message types: a gate cannot compare what one side lacks."""
    for role, runs in (("baseline", bases), ("candidate", cands)):
        first = set(runs[0].metrics) if runs else set()
        for run in runs[1:]:
            if set(run.metrics) != first:
                raise ReportError(
                    f"the {role} runs differ in message types ({runs[0].label}: {_names(first)}; "
                    f"{run.label}: {_names(set(run.metrics))})"
                )
    if not bases:
        return
    b, c = set(bases[0].metrics), set(cands[0].metrics)
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


def _usable(
    kept: list[RunData], whole: list[RunData], role: str, limit_us: float | None, th: Thresholds,
    notes: list[str],
) -> tuple[list[RunData], list[RunData]]:  # fmt: skip
    """Drop stalled seconds from every run; with several runs, drop a run that is not usable evidence.

    A lone run that is not usable is an error (exit 2): nothing is left to judge that side on.
    """
    left: list[tuple[RunData, RunData]] = []
    problem: ReportError | None = None
    for k, w in zip(kept, whole, strict=True):
        try:
            left.append((_without_stalls(k, role, limit_us, th, notes), w))
        except ReportError as exc:
            problem = exc
            if len(kept) > 1:
                notes.append(f"{role} {w.label} dropped: {exc}")
    if not left and problem is not None:
        raise problem
    return [k for k, _ in left], [w for _, w in left]


def _in_pairs(
    bases: list[RunData], cands: list[RunData], notes: list[str]
) -> tuple[list[RunData], list[RunData]]:
    """Both sides in the order they ran, so that baseline run i and candidate run i make pair i.

    Pairing cancels what drifts between pairs only if the two builds took turns (A B A B ...): a note says
    when they did not.
    """
    if len(bases) != len(cands) or len(bases) < 2:
        raise ReportError(
            f"paired comparison needs two or more pairs: as many baseline runs as candidate runs, not "
            f"{len(bases)} + {len(cands)}"
        )
    bases, cands = sorted(bases, key=lambda run: run.start), sorted(cands, key=lambda run: run.start)
    firsts = [min(b.start, c.start) for b, c in zip(bases, cands, strict=True)]
    lasts = [max(b.start, c.start) for b, c in zip(bases, cands, strict=True)]
    if any(last > first for last, first in zip(lasts, firsts[1:], strict=False)):
        notes.append(
            "paired runs did not take turns (baseline, candidate, baseline, ...): "
            "pairs cancel less of what drifted between runs"
        )
    return bases, cands


def _whole_pairs(
    pairs: list[tuple[RunData, RunData]], kept_b: list[RunData], bases: list[RunData], kept_c: list[RunData],
    cands: list[RunData], notes: list[str],
) -> tuple[list[RunData], list[RunData], list[RunData], list[RunData]]:  # fmt: skip
    """The pairs whose two runs are both usable: a run dropped as stalled takes its partner with it."""
    usable_b = {id(whole): kept for kept, whole in zip(kept_b, bases, strict=True)}
    usable_c = {id(whole): kept for kept, whole in zip(kept_c, cands, strict=True)}
    left = []
    for b, c in pairs:
        if id(b) in usable_b and id(c) in usable_c:
            left.append((b, c))
        elif id(b) in usable_b or id(c) in usable_c:
            notes.append(f"{b.label} / {c.label}: pair dropped with its stalled run")
    if len(left) < 2:
        raise ReportError(f"fewer than 2 pairs of usable runs ({len(left)} left after dropping stalled runs)")
    return (
        [usable_b[id(b)] for b, _ in left],
        [b for b, _ in left],
        [usable_c[id(c)] for _, c in left],
        [c for _, c in left],
    )


def _as_runs(runs: RunData | Sequence[RunData] | None) -> list[RunData]:
    if runs is None:
        return []
    return [runs] if isinstance(runs, RunData) else list(runs)


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
    bases, cands = _as_runs(baseline), _as_runs(candidate)
    if not cands:
        raise ReportError("no candidate run")
    _check_types(bases, cands)
    results: list[RuleResult] = []
    notes: list[str] = []
    if th.paired:
        bases, cands = _in_pairs(bases, cands, notes)
    pairs = list(zip(bases, cands, strict=True)) if th.paired else []
    kept_c = [run.window(th.warmup_s, COOLDOWN_S) for run in cands]
    kept_b = [run.window(th.warmup_s, COOLDOWN_S) for run in bases]
    limit = _stall_limit(kept_b + kept_c, th)
    kept_c, cands = _usable(kept_c, cands, "candidate", limit, th, notes)
    kept_b, bases = _usable(kept_b, bases, "baseline", limit, th, notes)
    if th.paired:
        kept_b, bases, kept_c, cands = _whole_pairs(pairs, kept_b, bases, kept_c, cands, notes)
    if bases:
        metrics = sorted(set(bases[0].metrics) - {METRIC_SEND_LAG})
        known = set(metrics) | {_short(m) for m in metrics}
        for metric in metrics:
            b = [_judged_over(metric, k, w) for k, w in zip(kept_b, bases, strict=True)]
            c = [_judged_over(metric, k, w) for k, w in zip(kept_c, cands, strict=True)]
            if any(metric not in run.metrics for run in b + c):
                notes.append(f"{metric}: no samples after the warm-up in one run; not compared")
                continue
            rules = th.rules_for(metric, _short(metric), request_type(metric))
            results += _latency_rules(metric, b, c, rules.latency, th)
        kinds = sorted({kind for run in kept_b + kept_c for kind in error_rates(run)})
        known |= set(kinds)
        for kind in kinds:
            rules = th.rules_for(kind)
            if rules.error_rate is not None:
                results.append(_error_rule(kind, kept_b, kept_c, rules.error_rate.tolerance, th))
        sent = {
            str(n)[len(COUNTER_SENT) :]
            for n in kept_b[0].counters["name"].unique()
            if str(n).startswith(COUNTER_SENT)
        }
        for kind in sorted(sent):
            rules = th.rules_for(kind)
            if rules.throughput is not None:
                results.append(_throughput_rule(kind, kept_b, kept_c, rules.throughput.tolerance, th))
        for name in sorted(set(th.overrides) - known):
            notes.append(f"thresholds override [types.{name}] matches no message type of these runs")
    elif not th.absolute:
        raise ReportError("nothing to check: no baseline and no absolute rules in the thresholds")
    results += [_absolute(rule, kept_c, cands) for rule in th.absolute]
    verdict = "regression" if any(r.status == "regression" for r in results) else "pass"
    return GateResult(
        verdict=verdict,  # type: ignore[arg-type]
        rules=tuple(results),
        baseline=_run_meta(bases[0]) if bases else None,
        candidate=_run_meta(cands[0]),
        warmup_s=th.warmup_s,
        confidence=th.confidence,
        resamples=th.resamples,
        notes=tuple(notes),
        method="bootstrap" if _one_run_each(bases, cands) else "runs",
        paired=th.paired,
        baseline_runs=tuple(_run_meta(run) for run in bases),
        candidate_runs=tuple(_run_meta(run) for run in cands),
    )
