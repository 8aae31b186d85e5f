"""Estimators: each quantity on both sides, the change between them and that change's confidence interval.

Two families, chosen once per comparison (:func:`estimator_for`):

* :class:`OverSeconds` -- one run per side: the unit of resampling is one second of the run (a block
  bootstrap, :mod:`reports.stats`), which measures the noise within a run;
* :class:`OverRuns` -- several runs on a side: each run's statistic is one observation and the interval a
  Student-t interval over the runs (paired with ``th.paired``), which measures how runs of one build differ.

Each answers three questions -- latency percentiles of a metric, the error rate of a request type, the
throughput of a request type -- with an :class:`Estimate`, or an :class:`Unjudged` saying why there is too
little evidence to estimate at all. The judge (:mod:`reports.gate.rules`) decides what an estimate means.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

import numpy as np

from reports import stats
from reports.data import RunData
from reports.errors import ReportError
from reports.gate.evidence import Evidence
from reports.thresholds import LatencyRule, Thresholds
from runstore import histogram as hdr
from runstore.names import COUNTER_ERRORS, COUNTER_SENT, METRIC_CONNECT

__all__ = [
    "MIN_SAMPLES",
    "MIN_TAIL_SAMPLES",
    "MIN_THROUGHPUT_FRAMES",
    "Estimate",
    "Estimator",
    "OverRuns",
    "OverSeconds",
    "Unjudged",
    "estimator_for",
    "per_second",
    "samples_needed",
]

Runs = Sequence[RunData]
"""One side's runs, in order."""

MIN_SAMPLES = 200
"""No percentile rule is judged on fewer samples than this in either run: a median of 30 requests moves by
±20 % between runs of the same build."""
MIN_TAIL_SAMPLES = 10
"""A percentile ``p`` is judged only with at least this many samples above it in both runs
(p99 needs 1,000 samples, p50 needs 20)."""
MIN_THROUGHPUT_FRAMES = 50
"""Throughput rules need this many frames in the baseline."""


@dataclass(frozen=True)
class Estimate:
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
    samples: int | None = None
    """The evidence of the run with the least (samples, frames), for the table."""
    min_samples: int | None = None
    """What the rule needs of it."""


@dataclass(frozen=True)
class Unjudged:
    """Too little evidence to estimate: why, and both sides' statistic where there is one to show.

    ``samples`` of the ``min_samples`` needed (in ``unit``) in the run with the least; ``rate_per_s`` that
    run's observed rate of them, when a longer run would give more (``None``: it would not, e.g. one
    ``connect`` sample per connection).
    """

    reason: str
    baseline: float | None = None
    candidate: float | None = None
    samples: int | None = None
    min_samples: int | None = None
    unit: str = "samples"
    rate_per_s: float | None = None


def samples_needed(percentile: float) -> int:
    """At least :data:`MIN_SAMPLES`, and :data:`MIN_TAIL_SAMPLES` above the percentile."""
    return max(int(np.ceil(MIN_TAIL_SAMPLES / (1.0 - percentile / 100.0))), MIN_SAMPLES)


class Estimator(Protocol):
    """One family of estimates (over seconds or over runs) for every quantity the gate judges."""

    latency_allowance: float
    """Added to latency tolerances: the between-run noise this family cannot measure."""

    def latency(
        self, metric: str, bases: Runs, cands: Runs, rules: Sequence[LatencyRule]
    ) -> dict[str, Estimate | Unjudged]:
        """The percentile of each rule (by its ``stat``) of ``metric``."""
        ...

    def error_rate(self, kind: str, bases: Runs, cands: Runs) -> Estimate | Unjudged:
        """The error rate (a fraction) of request type ``kind``; the change is a difference."""
        ...

    def throughput(self, kind: str, bases: Runs, cands: Runs) -> Estimate | Unjudged:
        """Frames of ``kind`` sent per second; the change is a ratio."""
        ...


def estimator_for(evidence: Evidence, th: Thresholds) -> Estimator:
    """Over seconds with one run per side, over runs otherwise."""
    return OverSeconds(th) if evidence.one_run_each else OverRuns(th)


@dataclass(frozen=True)
class OverSeconds:
    """One run per side: block bootstrap over each run's seconds (seeded per rule)."""

    th: Thresholds

    @property
    def latency_allowance(self) -> float:
        return self.th.single_run_allowance

    def latency(
        self, metric: str, bases: Runs, cands: Runs, rules: Sequence[LatencyRule]
    ) -> dict[str, Estimate | Unjudged]:
        th, pcts = self.th, [rule.percentile for rule in rules]
        bm, cm = _matrix(bases[0], metric), _matrix(cands[0], metric)
        rng = _rng(th.seed, metric)
        boot_b, method = stats.bootstrap_percentiles(bm, pcts, th.resamples, rng)
        boot_c, _ = stats.bootstrap_percentiles(cm, pcts, th.resamples, rng, method=method)
        fewest = min(bm.total, cm.total)
        seconds = (bases[0] if bm.total <= cm.total else cands[0]).duration_s
        rate = _rate(metric, fewest, seconds)
        estimates: dict[str, Estimate | Unjudged] = {}
        for rule in rules:
            pct = rule.percentile
            b_value = float(stats.percentile_of_counts(bm.counts.sum(axis=0), bm.values_us, pct)[0])
            c_value = float(stats.percentile_of_counts(cm.counts.sum(axis=0), cm.values_us, pct)[0])
            ratios = boot_c[pct] / np.maximum(boot_b[pct], 1.0)
            estimates[rule.stat] = _enough_samples(
                Estimate(
                    baseline=b_value,
                    candidate=c_value,
                    change=c_value / max(b_value, 1.0),
                    interval=stats.interval(ratios, th.confidence),
                    method=f"{method} bootstrap",
                ),
                rule,
                fewest,
                rate,
                "",
            )
        return estimates

    def error_rate(self, kind: str, bases: Runs, cands: Runs) -> Estimate | Unjudged:
        th = self.th
        series = _error_sides(kind, bases, cands)
        if isinstance(series, Unjudged):
            return series
        (be, bn), (ce, cn) = series[0][0], series[1][0]
        rng = _rng(th.seed, f"errors:{kind}")
        wb = stats.bootstrap_weights(bn.size, th.resamples, rng)
        wc = stats.bootstrap_weights(cn.size, th.resamples, rng)
        with np.errstate(invalid="ignore", divide="ignore"):
            diffs = (wc @ ce) / (wc @ cn) - (wb @ be) / (wb @ bn)
        b_rate, c_rate = be.sum() / bn.sum(), ce.sum() / cn.sum()
        return Estimate(
            b_rate, c_rate, c_rate - b_rate, stats.interval(diffs, th.confidence), "seconds bootstrap",
            samples=int(min(bn.sum(), cn.sum())), min_samples=1,
        )  # fmt: skip

    def throughput(self, kind: str, bases: Runs, cands: Runs) -> Estimate | Unjudged:
        th = self.th
        bx, cx = _sent_series(kind, bases)[0], _sent_series(kind, cands)[0]
        b_rate, c_rate = float(bx.mean()), float(cx.mean())
        fewest = int(bx.sum())
        if fewest < MIN_THROUGHPUT_FRAMES:
            return Unjudged(
                f"too few frames in the baseline ({fewest} < {MIN_THROUGHPUT_FRAMES})", b_rate, c_rate,
                fewest, MIN_THROUGHPUT_FRAMES, "frames", fewest / bx.size,
            )  # fmt: skip
        rng = _rng(th.seed, f"throughput:{kind}")
        wb = stats.bootstrap_weights(bx.size, th.resamples, rng)
        wc = stats.bootstrap_weights(cx.size, th.resamples, rng)
        ratios = ((wc @ cx) / cx.size) / np.maximum((wb @ bx) / bx.size, 1e-9)
        return Estimate(
            b_rate, c_rate, c_rate / max(b_rate, 1e-9), stats.interval(ratios, th.confidence),
            "seconds bootstrap", samples=fewest, min_samples=MIN_THROUGHPUT_FRAMES,
        )  # fmt: skip


@dataclass(frozen=True)
class OverRuns:
    """Several runs on a side: each run's statistic is one observation (with ``th.paired``, each pair's
    difference)."""

    th: Thresholds
    latency_allowance: float = 0.0

    def latency(
        self, metric: str, bases: Runs, cands: Runs, rules: Sequence[LatencyRule]
    ) -> dict[str, Estimate | Unjudged]:
        pcts = [rule.percentile for rule in rules]
        b_hists, c_hists = [r.merged(metric) for r in bases], [r.merged(metric) for r in cands]
        b_values = [hdr.percentiles(h, pcts) for h in b_hists]
        c_values = [hdr.percentiles(h, pcts) for h in c_hists]
        counts = [int(h.get_total_count()) for h in b_hists + c_hists]
        fewest = min(counts)
        rate = _rate(metric, fewest, [*bases, *cands][counts.index(fewest)].duration_s)
        return {
            rule.stat: _enough_samples(
                _over_runs(
                    np.array([v[rule.percentile] for v in b_values], dtype=np.float64),
                    np.array([v[rule.percentile] for v in c_values], dtype=np.float64),
                    self.th,
                    ratio=True,
                ),
                rule,
                fewest,
                rate,
                " in a run",
            )
            for rule in rules
        }

    def error_rate(self, kind: str, bases: Runs, cands: Runs) -> Estimate | Unjudged:
        series = _error_sides(kind, bases, cands)
        if isinstance(series, Unjudged):
            return series
        b_rates, c_rates = (
            np.array([e.sum() / n.sum() if n.sum() else np.nan for e, n in side], dtype=np.float64)
            for side in series
        )
        if self.th.paired:  # a run without requests takes its partner with it
            known = ~(np.isnan(b_rates) | np.isnan(c_rates))
            b_rates, c_rates = b_rates[known], c_rates[known]
            if b_rates.size < 2:
                return Unjudged(
                    f"fewer than 2 pairs of runs with {kind} requests", None, None, b_rates.size, 2, "pairs"
                )
        else:
            b_rates, c_rates = b_rates[~np.isnan(b_rates)], c_rates[~np.isnan(c_rates)]
            if b_rates.size + c_rates.size < 3:
                return Unjudged(
                    f"fewer than 3 runs with {kind} requests",
                    None,
                    None,
                    b_rates.size + c_rates.size,
                    3,
                    "runs",
                )
        requests = [int(n.sum()) for side in series for _, n in side if n.sum()]
        return replace(
            _over_runs(b_rates, c_rates, self.th, ratio=False), samples=min(requests), min_samples=1
        )

    def throughput(self, kind: str, bases: Runs, cands: Runs) -> Estimate | Unjudged:
        b_series, c_series = _sent_series(kind, bases), _sent_series(kind, cands)
        b_rates = np.array([x.mean() for x in b_series], dtype=np.float64)
        c_rates = np.array([x.mean() for x in c_series], dtype=np.float64)
        est = _over_runs(b_rates, c_rates, self.th, ratio=True)
        frames = [int(x.sum()) for x in b_series]
        fewest = min(frames)
        if fewest < MIN_THROUGHPUT_FRAMES:
            return Unjudged(
                f"too few frames in a baseline run ({fewest} < {MIN_THROUGHPUT_FRAMES})", est.baseline,
                est.candidate, fewest, MIN_THROUGHPUT_FRAMES, "frames",
                fewest / b_series[frames.index(fewest)].size,
            )  # fmt: skip
        return replace(est, samples=fewest, min_samples=MIN_THROUGHPUT_FRAMES)


def _rate(metric: str, samples: int, seconds: int) -> float | None:
    """Samples per second of a run, or ``None`` for ``connect`` (one per connection, not per second)."""
    return None if metric == METRIC_CONNECT or seconds <= 0 else samples / seconds


def _enough_samples(
    estimate: Estimate, rule: LatencyRule, fewest: int, rate: float | None, scope: str
) -> Estimate | Unjudged:
    """The estimate, or why a percentile read off ``fewest`` samples (in a run: ``scope``) says nothing."""
    needed = samples_needed(rule.percentile)
    if fewest >= needed:
        return replace(estimate, samples=fewest, min_samples=needed)
    return Unjudged(
        f"too few samples{scope} ({fewest} < {needed} needed for {rule.stat})",
        estimate.baseline,
        estimate.candidate,
        fewest,
        needed,
        "samples",
        rate,
    )


def _over_runs(b_values: np.ndarray, c_values: np.ndarray, th: Thresholds, *, ratio: bool) -> Estimate:
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
    return Estimate(
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


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _matrix(data: RunData, metric: str) -> stats.CountsMatrix:
    rows = data.metric_rows(metric)
    try:
        return stats.counts_matrix(rows.loc[rows["count"] > 0, "hist"].tolist())
    except ValueError as exc:
        raise ReportError(f"{data.label}: damaged histogram for {metric}: {exc}") from exc


def _series(data: RunData, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum ``values`` by second over the snapshot's seconds (excluded seconds are not in the series)."""
    seconds = data.seconds
    series = np.zeros(max(seconds.size, 1), dtype=np.float64)
    index = np.searchsorted(seconds, t)
    inside = (index < seconds.size) & (seconds[np.minimum(index, seconds.size - 1)] == t)
    np.add.at(series, index[inside], values[inside])
    return series


def per_second(data: RunData, names: list[str]) -> np.ndarray:
    """The per-second sum of the counters ``names`` over the snapshot's seconds."""
    rows = data.counters[data.counters["name"].isin(names)]
    return _series(data, rows["t"].to_numpy(dtype=np.int64), rows["value"].to_numpy(dtype=np.float64))


def _sent_series(kind: str, runs: Sequence[RunData]) -> list[np.ndarray]:
    return [per_second(run, [f"{COUNTER_SENT}{kind}"]) for run in runs]


def _error_series(data: RunData, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per second: the errors of ``kind`` and its requests (never fewer than its errors)."""
    names = [str(n) for n in data.counters["name"].unique()]
    error_names = [n for n in names if n.startswith(f"{COUNTER_ERRORS}{kind}.") and n.count(".") >= 2]
    errors = per_second(data, error_names)
    sent = f"{COUNTER_SENT}{kind}"
    if sent in names:
        requests = per_second(data, [sent])
    elif kind == METRIC_CONNECT:
        rows = data.metric_rows(METRIC_CONNECT)
        requests = _series(data, rows["t"].to_numpy(dtype=np.int64), rows["count"].to_numpy(dtype=np.float64))
        requests += errors
    else:
        requests = errors.copy()
    return errors, np.maximum(requests, errors)


_Sides = tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]


def _error_sides(kind: str, bases: Runs, cands: Runs) -> _Sides | Unjudged:
    """Both sides' per-second error and request series, or why there is no rate to compare."""
    b_series = [_error_series(r, kind) for r in bases]
    c_series = [_error_series(r, kind) for r in cands]
    for role, series in (("baseline", b_series), ("candidate", c_series)):
        if not any(n.sum() for _, n in series):
            return Unjudged(f"no {kind} requests in the {role}", None, None, 0, 1, "requests")
    return b_series, c_series
