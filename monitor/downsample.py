"""Downsampling time series on the server, so the browser never gets more than a few thousand points a trace.

A 24-hour run at one-second resolution has 86,400 points per series; a browser drawing twenty such traces
stalls, and the screen has fewer than 2,000 pixels across anyway. Everything here is pure numpy on sorted
``x`` arrays (unix seconds) and knows nothing about the run store or Plotly:

- :func:`choose_bucket` picks a bucket width from a ladder of round durations for a time range.
- :func:`minmax` keeps the smallest and the largest point of each time bucket, so a one-second latency spike
  in a day-long run stays visible (what ``plotly-resampler``'s MinMax aggregator does).
- :func:`lttb` (Largest-Triangle-Three-Buckets, Steinarsson 2013) keeps the visually dominant point per
  bucket; for smooth series where the shape matters more than the extremes.
- :func:`bucket_sum`, :func:`bucket_max` and :func:`bucket_mean` aggregate onto fixed time buckets (rates,
  gauges, stacked areas: quantities whose per-bucket aggregate is exact, not a pick).
- :func:`insert_gaps` breaks a line where samples are missing (an outage must look like one, not like a
  straight line across it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "BUCKET_LADDER",
    "bucket_max",
    "bucket_mean",
    "bucket_sum",
    "choose_bucket",
    "insert_gaps",
    "lttb",
    "minmax",
]

BUCKET_LADDER: tuple[int, ...] = (
    1, 2, 5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
)  # fmt: skip
"""Bucket widths in seconds; round numbers so that bucket edges fall on whole minutes and hours."""


def choose_bucket(span_s: float, max_buckets: int, ladder: Sequence[int] = BUCKET_LADDER) -> int:
    """Return the smallest width in ``ladder`` that cuts ``span_s`` seconds into ``max_buckets`` at most.

    Args:
        span_s: length of the time range in seconds.
        max_buckets: how many buckets the range may have (at least 1).
        ladder: candidate widths, ascending.

    Returns:
        A width from ``ladder``; its largest entry if even that gives too many buckets.
    """
    if max_buckets < 1:
        raise ValueError("max_buckets must be at least 1")
    for width in ladder:
        if span_s / width <= max_buckets:
            return width
    return ladder[-1]


Array = Sequence[float] | np.ndarray


def _as_arrays(x: Array, y: Array) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of the same length, got {xs.shape} and {ys.shape}")
    return xs, ys


def _bucket_ids(x: np.ndarray, width: float, origin: float = 0.0) -> np.ndarray:
    return np.floor((x - origin) / width).astype(np.int64)


def minmax(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    width: float,
    origin: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep, from each time bucket of ``width`` seconds, its lowest and its highest point (in time order).

    Buckets are ``[origin + k * width, origin + (k + 1) * width)``; a bucket with one point keeps it once.
    NaN values are dropped first.

    Args:
        x: sample times, ascending.
        y: values.
        width: bucket width, in the unit of ``x``.
        origin: where bucket edges are anchored (0 puts them on whole multiples of ``width``).

    Returns:
        ``(x, y)`` with at most two points per non-empty bucket, ascending in ``x``.
    """
    xs, ys = _as_arrays(x, y)
    finite = np.isfinite(ys)
    if not finite.all():
        xs, ys = xs[finite], ys[finite]
    if xs.size == 0 or width <= 0:
        return xs, ys
    ids = _bucket_ids(xs, width, origin)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if starts.size * 2 >= xs.size:
        return xs, ys  # nothing to gain
    # Sort by (bucket, value): each bucket's first entry is its minimum, its last entry its maximum.
    order = np.lexsort((ys, ids))
    sorted_ids = ids[order]
    first = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    last = np.r_[first[1:] - 1, sorted_ids.size - 1]
    keep = np.unique(np.concatenate([order[first], order[last]]))
    return xs[keep], ys[keep]


def lttb(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, n_out: int
) -> tuple[np.ndarray, np.ndarray]:
    """Largest-Triangle-Three-Buckets: ``n_out`` points that keep the visual shape of the series.

    The first and last points are always kept; the rest are split into ``n_out - 2`` buckets of equal count,
    and from each the point forming the largest triangle with the previously kept point and the next bucket's
    mean is kept. NaN values are dropped first.

    Args:
        x: sample times, ascending.
        y: values.
        n_out: points to return (at least 3; series with fewer points are returned unchanged).

    Returns:
        ``(x, y)`` with ``min(n_out, len(x))`` points, ascending in ``x``.
    """
    xs, ys = _as_arrays(x, y)
    finite = np.isfinite(ys)
    if not finite.all():
        xs, ys = xs[finite], ys[finite]
    n = xs.size
    if n_out < 3:
        raise ValueError("lttb needs n_out >= 3")
    if n <= n_out:
        return xs, ys
    edges = np.linspace(1, n - 1, n_out - 1).astype(np.int64)  # n_out - 2 buckets over points 1 .. n - 2
    keep = np.empty(n_out, dtype=np.int64)
    keep[0], keep[-1] = 0, n - 1
    previous = 0
    for i in range(n_out - 2):
        lo, hi = edges[i], edges[i + 1]
        if i + 2 < n_out - 1:
            next_lo, next_hi = edges[i + 1], edges[i + 2]
            avg_x, avg_y = xs[next_lo:next_hi].mean(), ys[next_lo:next_hi].mean()
        else:
            avg_x, avg_y = xs[-1], ys[-1]
        px, py = xs[previous], ys[previous]
        area = np.abs((px - avg_x) * (ys[lo:hi] - py) - (px - xs[lo:hi]) * (avg_y - py))
        previous = lo + int(np.argmax(area))
        keep[i + 1] = previous
    return xs[keep], ys[keep]


def _grouped(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, width: float, origin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    xs, ys = _as_arrays(x, y)
    if xs.size == 0:
        empty = np.empty(0, dtype=np.float64)
        return empty, empty, np.empty(0, dtype=np.int64), ys
    ids = _bucket_ids(xs, width, origin)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    bucket_x = origin + ids[starts].astype(np.float64) * width
    return bucket_x, xs, starts, ys


def bucket_sum(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    width: float,
    origin: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``y`` per time bucket; returns ``(bucket_start, sum)`` for non-empty buckets. ``x`` ascending."""
    bucket_x, _, starts, ys = _grouped(x, y, width, origin)
    if bucket_x.size == 0:
        return bucket_x, bucket_x.copy()
    return bucket_x, np.add.reduceat(ys, starts)


def bucket_max(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    width: float,
    origin: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum of ``y`` per time bucket (NaN ignored); returns ``(bucket_start, max)``. ``x`` ascending."""
    bucket_x, _, starts, ys = _grouped(x, y, width, origin)
    if bucket_x.size == 0:
        return bucket_x, bucket_x.copy()
    return bucket_x, np.fmax.reduceat(ys, starts)


def bucket_mean(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    width: float,
    origin: float = 0.0,
    weights: Sequence[float] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of ``y`` per time bucket; returns ``(bucket_start, mean)``. ``x`` ascending.

    Args:
        weights: per-sample weights (default 1 each); a bucket whose weights sum to 0 gets NaN.
    """
    bucket_x, _, starts, ys = _grouped(x, y, width, origin)
    if bucket_x.size == 0:
        return bucket_x, bucket_x.copy()
    w = np.ones_like(ys) if weights is None else np.asarray(weights, dtype=np.float64)
    total_w = np.add.reduceat(w, starts)
    total = np.add.reduceat(ys * w, starts)
    mean = np.divide(total, total_w, out=np.full_like(total, np.nan), where=total_w > 0)
    return bucket_x, mean


def insert_gaps(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, max_step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Insert a NaN point wherever consecutive samples are more than ``max_step`` apart.

    Plotly breaks a line at a NaN (``connectgaps`` is off by default), so missing data shows as missing.

    Returns:
        ``(x, y)``, with one extra point (at the middle of the gap, value NaN) per gap.
    """
    xs, ys = _as_arrays(x, y)
    if xs.size < 2:
        return xs, ys
    gaps = np.flatnonzero(np.diff(xs) > max_step)
    if gaps.size == 0:
        return xs, ys
    gap_x = (xs[gaps] + xs[gaps + 1]) / 2
    return np.insert(xs, gaps + 1, gap_x), np.insert(ys, gaps + 1, np.nan)
