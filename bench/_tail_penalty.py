"""The gate bench's p99-shaped penalty: which delay, given to a random share of frames, raises p99 by X %.

Sans-I/O: a histogram's values and counts in, a delay out. If a share ``s`` of requests is delayed by ``d``
and the rest is not, the candidate's latency distribution is the mixture ``G(x) = (1 - s) F(x) + s F(x - d)``
of the baseline's ``F``. Asking ``G``'s p99 to be ``ratio`` x ``F``'s p99 (``x*``) gives
``F(x* - d) = (0.99 - (1 - s) F(x*)) / s``, so ``d = x* - F⁻¹(that)``: exact for the baseline run's own
histogram, no search. The delayed requests are the ones whose undelayed latency was above that quantile
(≈ p85 for s = 3 %); the median moves only by the share taken out of the body (p50 → ≈ p51.5).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TailPenaltyError", "histogram_arrays", "tail_delay_us"]


class TailPenaltyError(ValueError):
    """The asked-for shift cannot be made with this share (or the histogram is empty)."""


def histogram_arrays(histogram: object) -> tuple[np.ndarray, np.ndarray]:
    """``(values_us, counts)`` of an ``HdrHistogram`` in wsgauge's layout, non-empty buckets only."""
    from runstore import histogram as hdr  # the bench's I/O side owns the import; the maths below does not

    counts = hdr.counts_view(histogram)  # type: ignore[arg-type]
    index = np.flatnonzero(counts)
    template = hdr.new_histogram()
    values = np.array(
        [template.get_highest_equivalent_value(template.get_value_from_index(int(i))) for i in index],
        dtype=np.float64,
    )
    return values, counts[index].astype(np.float64)


def _cdf(values: np.ndarray, cumulative: np.ndarray, x: float) -> float:
    return float(cumulative[np.searchsorted(values, x, side="right") - 1]) if x >= values[0] else 0.0


def tail_delay_us(
    values_us: np.ndarray, counts: np.ndarray, share: float, ratio: float, pct: float = 99.0
) -> float:
    """The delay (µs) that, given to a random ``share`` of requests, makes p``pct`` ``ratio`` x baseline's.

    ``values_us`` ascending, ``counts`` their counts (the baseline run's histogram after its warm-up).
    Raises :class:`TailPenaltyError` when ``share`` is too small to move the percentile that far (more than
    ``1 - pct`` of the undelayed requests would have to lie above the new percentile).
    """
    total = float(np.sum(counts))
    if total <= 0:
        raise TailPenaltyError("the baseline histogram is empty")
    cumulative = np.cumsum(counts) / total
    p = pct / 100.0
    baseline = float(values_us[min(np.searchsorted(cumulative, p, side="left"), len(values_us) - 1)])
    target = ratio * baseline
    needed = (p - (1.0 - share) * _cdf(values_us, cumulative, target)) / share
    if needed <= 0.0:
        raise TailPenaltyError(
            f"delaying {share:.1%} of requests cannot raise p{pct:g} by {ratio - 1:.0%}: "
            f"{1 - _cdf(values_us, cumulative, target):.2%} of them already lie above the target"
        )
    quantile = float(np.interp(needed, cumulative, values_us))  # F⁻¹, smooth between bucket values
    return max(target - quantile, 0.0)
