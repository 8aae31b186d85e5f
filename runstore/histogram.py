"""Latency histograms: one fixed HdrHistogram layout for the whole product, plus fast numpy views of it.

Every latency in wsgauge is an integer number of microseconds recorded into an HdrHistogram with the same
range and precision, so that any two histograms -- two workers, two seconds, two runs -- merge exactly by
adding their counts. Percentiles are never averaged: they are read off merged counts.

The pure-Python ``hdrh`` package walks its counts array in Python for every percentile query (~0.5 ms); the
functions here read the same counts through numpy (a shared-memory view, no copy) and give identical answers.
Recording is the same trade: ``record_value`` costs ~2 us of Python per sample (a third of the measuring's
share of a worker core); :func:`record_many` buckets a whole second's raw values at once with numpy, into the
same counts.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = [
    "HIGHEST_US",
    "LOWEST_US",
    "SIGNIFICANT_FIGURES",
    "HistogramSummary",
    "counts_view",
    "decode",
    "encode",
    "from_counts",
    "merge_encoded",
    "new_histogram",
    "percentiles",
    "record_many",
    "record_us",
    "summarize",
]

LOWEST_US = 1
"""Smallest distinguishable latency: 1 microsecond."""
HIGHEST_US = 3_600_000_000
"""Largest trackable latency: one hour. Larger values are clamped (and :func:`record_us` says so)."""
SIGNIFICANT_FIGURES = 3
"""Value precision: 0.1 % relative error at any magnitude."""


def new_histogram() -> HdrHistogram:
    """Return an empty histogram in the product-wide layout."""
    return _acyclic(HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES))


def _acyclic(histogram: HdrHistogram) -> HdrHistogram:
    """Make ``histogram`` freed by reference counting alone: its encoder refers back to it weakly.

    hdrh's histogram and its encoder refer to each other, so every histogram (184 KB of counts) was cyclic
    garbage that only a collection of its generation frees. A load generator makes dozens a second (each
    second's samples, their merge, the store's roll-ups) and collects old generations rarely -- and its
    ``gc.freeze()`` keeps any garbage alive at that moment for good: its RSS grew ~9 MB a second of a run. The
    encoder only ever runs for its own histogram (``encode``, ``add``), which is alive while it does.
    """
    histogram.encoder.histogram = weakref.proxy(histogram)
    return histogram


_TEMPLATE = new_histogram()
_N = _TEMPLATE.counts_len
_INDEX_LOWEST = np.array([_TEMPLATE.get_value_from_index(i) for i in range(_N)], dtype=np.int64)
_INDEX_HIGHEST = np.array(
    [_TEMPLATE.get_highest_equivalent_value(int(v)) for v in _INDEX_LOWEST], dtype=np.int64
)
# hdrh's "median equivalent value", used for the mean, as HdrHistogram.get_mean_value does.
_INDEX_MEDIAN = (_INDEX_LOWEST + (_INDEX_HIGHEST - _INDEX_LOWEST + 1) // 2).astype(np.float64)
# hdrh's counts-index arithmetic (HdrHistogram._counts_index_for), as constants of the layout.
_SUB_BUCKET_MASK = _TEMPLATE.sub_bucket_mask
_UNIT_MAGNITUDE = _TEMPLATE.unit_magnitude
_HALF_COUNT_MAGNITUDE = _TEMPLATE.sub_bucket_half_count_magnitude
_HALF_COUNT = _TEMPLATE.sub_bucket_half_count
_MASK_BITS = int(_SUB_BUCKET_MASK).bit_length()


def _counts_index(values: np.ndarray) -> np.ndarray:
    """hdrh's counts index of each int64 value in ``[LOWEST_US, HIGHEST_US]``, vectorised.

    ``HdrHistogram._counts_index_for`` per value: the bucket is the bit length of ``value | sub_bucket_mask``
    (``frexp``'s exponent, exact below 2**53, and at least the mask's own) less the layout's magnitudes; the
    sub-bucket is the value shifted down by the bucket's magnitude. In place where it can be: every fresh
    array of a second's values is a fresh mapping, and its page faults cost more than the arithmetic. A
    fraction of the cost of a binary search over the bucket starts (``searchsorted`` took ~60 ns a value,
    most of a worker's once-a-second drain).
    """
    index = np.frexp(values.astype(np.float64))[1].astype(np.int64)  # bit length of the value
    np.maximum(index, _MASK_BITS, out=index)  # ... of value | sub_bucket_mask
    index -= _UNIT_MAGNITUDE + _HALF_COUNT_MAGNITUDE + 1  # the bucket
    sub_bucket = values >> (index + _UNIT_MAGNITUDE)
    index += 1
    index <<= _HALF_COUNT_MAGNITUDE
    index += sub_bucket
    index -= _HALF_COUNT
    return index


def record_us(histogram: HdrHistogram, value_us: float, count: int = 1) -> bool:
    """Record a latency in microseconds.

    Values below 1 us are recorded as 1 us (a loopback round trip can be faster than the clock's step), values
    beyond :data:`HIGHEST_US` as :data:`HIGHEST_US`.

    Returns:
        ``True`` if the value was in range, ``False`` if it had to be clamped (callers count those).
    """
    value = int(value_us)
    in_range = True
    if value < LOWEST_US:
        value = LOWEST_US
        in_range = value_us >= 0
    elif value > HIGHEST_US:
        value = HIGHEST_US
        in_range = False
    recorded = histogram.record_value(value, count)
    return in_range and bool(recorded)


def record_many(histogram: HdrHistogram, values_us: np.ndarray | Sequence[float]) -> int:
    """Record many latencies in microseconds at once; the histogram ends up exactly as after calling
    :func:`record_us` on each (same counts, total, min and max), at a fraction of the cost.

    Values are clamped as :func:`record_us` clamps them; a NaN (no latency at all) is not recorded.

    Returns:
        How many values were clamped or dropped (callers count those, as :func:`record_us`'s ``False``).
    """
    raw = np.asarray(values_us, dtype=np.float64)
    if not raw.size:
        return 0
    truncated = np.trunc(raw)  # int() of record_us: towards zero
    bad = int(np.count_nonzero((raw < 0) | (truncated > HIGHEST_US)))
    nan = np.isnan(raw)
    if nan.any():
        bad += int(np.count_nonzero(nan))
        truncated = truncated[~nan]
        if not truncated.size:
            return bad
    values = np.clip(truncated, LOWEST_US, HIGHEST_US, out=truncated).astype(np.int64)  # ours: np.trunc's
    counts_view(histogram)[:] += np.bincount(_counts_index(values), minlength=_N)
    histogram.total_count += int(values.size)
    histogram.min_value = min(histogram.min_value, int(values.min()))
    histogram.max_value = max(histogram.max_value, int(values.max()))
    return bad


def encode(histogram: HdrHistogram) -> bytes:
    """Serialise a histogram (HdrHistogram V2 format, zlib-compressed, base64)."""
    return histogram.encode()


def decode(blob: bytes | str) -> HdrHistogram:
    """Parse an encoded histogram.

    Raises:
        ValueError: if ``blob`` is not an encoded histogram in the product-wide layout.
    """
    try:
        histogram = _acyclic(HdrHistogram.decode(blob))
    except Exception as exc:  # hdrh raises TypeError, zlib.error and its own exception classes
        raise ValueError(f"not an encoded HdrHistogram: {exc}") from exc
    if histogram.counts_len != _N:
        raise ValueError(
            f"histogram layout differs from wsgauge's ({histogram.counts_len} buckets, expected {_N})"
        )
    return histogram


def counts_view(histogram: HdrHistogram) -> np.ndarray:
    """Return the histogram's bucket counts as an int64 array sharing its memory (no copy)."""
    return np.frombuffer(histogram.counts, dtype=np.int64)


def from_counts(counts: np.ndarray) -> HdrHistogram:
    """Build a histogram in the product-wide layout from a bucket-count array."""
    histogram = new_histogram()
    if counts.shape != (_N,):
        raise ValueError(f"expected {_N} bucket counts, got {counts.shape}")
    view = counts_view(histogram)
    view[:] = counts
    nonzero = np.flatnonzero(counts)
    if nonzero.size:
        histogram.set_internal_tacking_values(int(nonzero[0]), int(nonzero[-1]), int(counts.sum()))
    return histogram


def merge_encoded(blobs: Iterable[bytes | str]) -> HdrHistogram:
    """Merge encoded histograms exactly (adding counts), e.g. many seconds or many workers.

    Raises:
        ValueError: if any blob is not an encoded histogram in the product-wide layout.
    """
    total = np.zeros(_N, dtype=np.int64)
    for blob in blobs:
        total += counts_view(decode(blob))
    return from_counts(total)


def percentiles(histogram: HdrHistogram, pcts: Sequence[float]) -> dict[float, int]:
    """Return ``{percentile: value_us}``, exactly as ``HdrHistogram.get_value_at_percentile`` would.

    An empty histogram gives 0 for every percentile.
    """
    counts = counts_view(histogram)
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1]) if cumulative.size else 0
    result: dict[float, int] = {}
    for pct in pcts:
        if total == 0:
            result[pct] = 0
            continue
        target = max(int(min(pct, 100.0) * total / 100 + 0.5), 1)
        index = int(np.searchsorted(cumulative, target, side="left"))
        table = _INDEX_HIGHEST if pct else _INDEX_LOWEST
        result[pct] = int(table[index])
    return result


class HistogramSummary(dict):
    """``count``, ``min_us``, ``max_us``, ``mean_us`` and ``p50_us`` ... ``p999_us`` of one histogram."""


_SUMMARY_PCTS = {50.0: "p50_us", 90.0: "p90_us", 95.0: "p95_us", 99.0: "p99_us", 99.9: "p999_us"}


def summarize(histogram: HdrHistogram) -> HistogramSummary:
    """Summarise a histogram in one pass over its counts (the columns the run store keeps per row)."""
    counts = counts_view(histogram)
    total = int(counts.sum())
    summary = HistogramSummary(count=total)
    if total == 0:
        summary.update(min_us=0, max_us=0, mean_us=0.0, **dict.fromkeys(_SUMMARY_PCTS.values(), 0))
        return summary
    nonzero = np.flatnonzero(counts)
    summary["min_us"] = int(_INDEX_LOWEST[nonzero[0]])
    summary["max_us"] = int(_INDEX_HIGHEST[nonzero[-1]])
    # Over the non-empty buckets only, in float64: numpy's dot of an int64 by a float64 array takes a slow
    # generic loop (~9 ms over the 23,552 buckets, most of a store write), this ~5 us.
    summary["mean_us"] = float(np.dot(counts[nonzero].astype(np.float64), _INDEX_MEDIAN[nonzero]) / total)
    for pct, value in percentiles(histogram, list(_SUMMARY_PCTS)).items():
        summary[_SUMMARY_PCTS[pct]] = value
    return summary
