"""Gate statistics: bootstrap confidence intervals over time slices of a run, vectorised and seeded.

Why not a test over individual requests: at 10^5 requests a Mann-Whitney or KS test calls a 2 % shift
"significant", and requests within a run are not independent (a GC pause or a noisy neighbour slows a whole
second). The unit of resampling here is therefore **one second** of the run (a block bootstrap): each resample
draws the run's seconds with replacement (multinomial weights), merges their histograms exactly (a weight
matrix times a seconds-by-buckets count matrix) and reads the percentile off the merged counts, exactly as
HdrHistogram would. Runs with too few seconds fall back to a multinomial resample of the merged histogram's
counts (independent requests: narrower intervals, so the practical tolerance matters more).

With several runs per side the unit of replication is the **run** instead (:func:`mean_difference_interval`):
two runs of one build differ by more than the seconds inside either run say (the machine, the process's
memory layout), and only repeated runs measure that.

Everything here is pure: arrays in, arrays out; randomness comes from a seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats

from runstore import histogram as hdr

__all__ = [
    "MIN_SECONDS_FOR_BLOCKS",
    "CountsMatrix",
    "Interval",
    "bootstrap_percentiles",
    "bootstrap_weights",
    "counts_matrix",
    "interval",
    "mean_difference_interval",
    "percentile_of_counts",
]

MIN_SECONDS_FOR_BLOCKS = 8
"""Fewer time slices than this: resample requests (multinomial) instead of seconds."""

Method = Literal["seconds", "multinomial"]


@dataclass(frozen=True)
class CountsMatrix:
    """A metric's per-second histograms, restricted to the buckets that hold any sample.

    ``counts[s, k]`` is the count of bucket ``k`` in slice ``s``; ``values_us[k]`` the value HdrHistogram
    reports for a percentile landing in bucket ``k`` (its highest equivalent value).
    """

    values_us: np.ndarray
    counts: np.ndarray

    @property
    def slices(self) -> int:
        """Number of time slices (seconds, or minutes for very long runs)."""
        return int(self.counts.shape[0])

    @property
    def total(self) -> int:
        """Number of samples."""
        return int(self.counts.sum())


def counts_matrix(blobs: Sequence[bytes | str]) -> CountsMatrix:
    """Decode encoded per-slice histograms into a :class:`CountsMatrix`.

    Raises:
        ValueError: if a blob is not an encoded histogram in the product-wide layout.
    """
    rows = [hdr.counts_view(hdr.decode(blob)) for blob in blobs]
    if not rows:
        return CountsMatrix(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float64))
    full = np.vstack(rows)
    keep = np.flatnonzero(full.sum(axis=0))
    template = hdr.new_histogram()
    values = np.array(
        [template.get_highest_equivalent_value(template.get_value_from_index(int(i))) for i in keep],
        dtype=np.int64,
    )
    return CountsMatrix(values, full[:, keep].astype(np.float64))


def percentile_of_counts(counts: np.ndarray, values_us: np.ndarray, pct: float) -> np.ndarray:
    """Percentile of each row of ``counts`` (``(R, K)`` bucket counts), as HdrHistogram computes it.

    Rows without samples give NaN.
    """
    counts = np.atleast_2d(counts)
    cumulative = np.cumsum(counts, axis=1)
    total = cumulative[:, -1]
    target = np.maximum(np.floor(min(pct, 100.0) * total / 100.0 + 0.5), 1.0)
    index = np.minimum((cumulative < target[:, None]).sum(axis=1), counts.shape[1] - 1)
    result = values_us[index].astype(np.float64)
    result[total <= 0] = np.nan
    return result


def bootstrap_weights(slices: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, slices)`` multinomial weights: how often each slice is drawn in each resample."""
    return rng.multinomial(slices, np.full(slices, 1.0 / slices), size=resamples).astype(np.float64)


def bootstrap_percentiles(
    matrix: CountsMatrix,
    pcts: Sequence[float],
    resamples: int,
    rng: np.random.Generator,
    *,
    method: Method | None = None,
) -> tuple[dict[float, np.ndarray], Method]:
    """Bootstrap distribution of each percentile in ``pcts``.

    Args:
        method: ``"seconds"`` (resample time slices), ``"multinomial"`` (resample requests), or ``None``
            to pick seconds when there are at least :data:`MIN_SECONDS_FOR_BLOCKS` slices.

    Returns:
        ``({pct: array of resamples}, method used)``.
    """
    if method is None:
        method = "seconds" if matrix.slices >= MIN_SECONDS_FOR_BLOCKS else "multinomial"
    if method == "seconds":
        merged = bootstrap_weights(matrix.slices, resamples, rng) @ matrix.counts
    else:
        totals = matrix.counts.sum(axis=0)
        n = int(totals.sum())
        merged = rng.multinomial(n, totals / n, size=resamples).astype(np.float64)
    return {pct: percentile_of_counts(merged, matrix.values_us, pct) for pct in pcts}, method


@dataclass(frozen=True)
class Interval:
    """A two-sided percentile-bootstrap confidence interval."""

    low: float
    high: float

    def excludes(self, value: float) -> bool:
        """Whether ``value`` lies outside the interval."""
        return value < self.low or value > self.high


def interval(samples: np.ndarray, confidence: float) -> Interval:
    """The central ``confidence`` interval of bootstrap ``samples`` (``method='linear'``), NaNs ignored."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(float("nan"), float("nan"))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha], method="linear")
    return Interval(float(low), float(high))


def mean_difference_interval(
    baseline: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray, confidence: float
) -> tuple[float, Interval]:
    """Difference of means (candidate - baseline) and its two-sided Student-t interval, pooled variance.

    Each value is one run's statistic (the gate passes logarithms of percentiles, so the difference is a
    log ratio). The pooled variance assumes both builds vary alike from run to run -- one machine, one
    scenario -- which lets a single candidate run be judged against several baseline runs. Needs at least
    three runs in all; identical runs give a zero-width interval.
    """
    b, c = np.asarray(baseline, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    freedom = b.size + c.size - 2
    error = pooled_spread(b, c) * np.sqrt(1.0 / b.size + 1.0 / c.size)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, freedom)) * error
    difference = float(c.mean() - b.mean())
    return difference, Interval(float(difference - half), float(difference + half))


def paired_difference_interval(
    baseline: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray, confidence: float
) -> tuple[float, Interval]:
    """Mean of the paired differences (candidate i - baseline i) and its two-sided Student-t interval.

    For interleaved runs (baseline, candidate, baseline, candidate, ...): each pair ran at nearly the same
    time, so whatever drifts on the machine between pairs -- a busy neighbour, another day -- cancels in
    the pair's difference instead of widening both sides' spread. Needs at least two pairs.
    """
    b, c = np.asarray(baseline, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    error = paired_spread(b, c) / np.sqrt(b.size)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, b.size - 1)) * error
    difference = float((c - b).mean())
    return difference, Interval(float(difference - half), float(difference + half))


def paired_spread(baseline: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray) -> float:
    """The standard deviation of the pairs' differences (candidate i - baseline i)."""
    b, c = np.asarray(baseline, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    if b.size != c.size or b.size < 2:
        raise ValueError(f"needs two or more pairs of runs, not {b.size} + {c.size} runs")
    return float((c - b).std(ddof=1))


def pooled_spread(baseline: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray) -> float:
    """The run-to-run standard deviation, pooled over both sides (each side about its own mean)."""
    b, c = np.asarray(baseline, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    freedom = b.size + c.size - 2
    if b.size < 1 or c.size < 1 or freedom < 1:
        raise ValueError(f"needs at least one run per side and three in all, not {b.size} + {c.size}")
    squares = float(((b - b.mean()) ** 2).sum() + ((c - c.mean()) ** 2).sum())
    return float(np.sqrt(squares / freedom))


def runs_per_side_needed(
    spread: float, effect: float, confidence: float, power: float = 0.9, most: int = 100,
    *, paired: bool = False,
) -> int | None:  # fmt: skip
    """Runs a side for the t interval to exclude no change, on the side of ``effect``, ``power`` of the time
    when the true difference is ``effect``; ``None`` when more than ``most`` would be needed.

    ``spread`` is the run-to-run standard deviation (:func:`pooled_spread`) for
    :func:`mean_difference_interval`, or that of the pairs' differences with ``paired``
    (:func:`paired_spread`, for :func:`paired_difference_interval`), on the scale of ``effect`` (logs for
    ratios). The exact power of the t test (noncentral t): what a CI job should give each side to settle a
    change the gate saw but could not confirm.
    """
    if not effect:
        return None
    if spread <= 0.0:
        return 2
    for runs in range(2, most + 1):
        freedom = runs - 1 if paired else 2 * runs - 2
        error = spread * np.sqrt((1.0 if paired else 2.0) / runs)
        critical = scipy_stats.t.ppf(0.5 + confidence / 2.0, freedom)
        if scipy_stats.nct.sf(critical, freedom, abs(effect) / error) >= power:
            return runs
    return None
