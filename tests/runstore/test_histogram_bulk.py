"""``record_many`` against hdrh's own ``record_value``: the bulk path must give the identical histogram."""

from __future__ import annotations

import random

import numpy as np
import pytest

from runstore import histogram as hdr

# Bucket edges of the layout (first bucket 0-2047 at 1 us, then 2x wider per bucket), the clamps, and values
# that int() truncates across an edge.
EDGES = [0.0, -0.0, 0.3, 0.999, 1, 1.5, 2047, 2047.9, 2048, 2049, 4095, 4096, 4097, 8191.999, 8192]
EDGES += [1e6, 1e6 + 0.5, hdr.HIGHEST_US - 1, hdr.HIGHEST_US, hdr.HIGHEST_US + 0.5]
OUT_OF_RANGE = [-5.0, -0.5, hdr.HIGHEST_US + 1, 1e13, float(hdr.HIGHEST_US) * 10]


def _one_by_one(values: list[float]) -> tuple[object, int]:
    hist = hdr.new_histogram()
    clamped = sum(not hdr.record_us(hist, v) for v in values)
    return hist, clamped


def _state(hist: object) -> tuple[bytes, int, int, int, list[int]]:
    return (
        hist.encode(),  # type: ignore[attr-defined]
        hist.total_count,  # type: ignore[attr-defined]
        hist.get_min_value(),  # type: ignore[attr-defined]
        hist.get_max_value(),  # type: ignore[attr-defined]
        hdr.counts_view(hist).tolist(),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("sigma", [0.5, 3.0])
def test_record_many_equals_record_value(seed: int, sigma: float) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(7, sigma) for _ in range(20_000)] + EDGES + OUT_OF_RANGE
    rng.shuffle(values)
    expected, expected_clamped = _one_by_one(values)
    bulk = hdr.new_histogram()
    assert hdr.record_many(bulk, np.array(values)) == expected_clamped == len(OUT_OF_RANGE)
    assert _state(bulk) == _state(expected)
    assert hdr.percentiles(bulk, [50, 99, 99.9]) == hdr.percentiles(expected, [50, 99, 99.9])


def test_record_many_adds_to_a_histogram_that_has_values() -> None:
    first, second = [5.0, 70_000.0], [3.0, 1_000.0, 9e6]
    expected, _ = _one_by_one(first + second)
    hist, _ = _one_by_one(first)
    assert hdr.record_many(hist, second) == 0
    assert _state(hist) == _state(expected)


def test_record_many_empty_and_nan() -> None:
    hist = hdr.new_histogram()
    assert hdr.record_many(hist, []) == 0
    assert hist.get_total_count() == 0
    assert hdr.record_many(hist, [float("nan"), 250.0, float("nan")]) == 2  # NaN: counted, not recorded
    assert hist.get_total_count() == 1 and hist.get_max_value() == 250
    assert hdr.record_many(hist, [float("nan")]) == 1
    assert hist.get_total_count() == 1
    assert hdr.record_many(hist, [float("inf"), float("-inf")]) == 2  # clamped like any out-of-range value
    assert hist.get_max_value() == hist.get_highest_equivalent_value(hdr.HIGHEST_US)


def test_bulk_index_is_hdrh_index_at_every_bucket_edge() -> None:
    """The vectorised counts index against hdrh's own, at both ends of every bucket of the layout."""
    hist = hdr.new_histogram()
    lowest = [hist.get_value_from_index(i) for i in range(hist.counts_len)]
    values = sorted({v for low in lowest for v in (low, hist.get_highest_equivalent_value(low))})
    values = [v for v in values if hdr.LOWEST_US <= v <= hdr.HIGHEST_US]
    expected = [hist._counts_index_for(v) for v in values]
    assert hdr._counts_index(np.array(values, dtype=np.int64)).tolist() == expected


def test_histograms_are_freed_by_reference_counting_alone() -> None:
    """No cycle through hdrh's encoder: a dropped histogram's counts go at once, not at a GC pass."""
    import gc
    import weakref

    enabled = gc.isenabled()
    gc.disable()
    try:
        made = hdr.new_histogram()
        hdr.record_many(made, [5.0, 700.0, 1e6])
        blob = hdr.encode(made)
        decoded = hdr.decode(blob)
        merged = hdr.merge_encoded([blob, blob])
        assert decoded.get_total_count() == 3 and merged.get_total_count() == 6
        decoded.add(made)  # the encoders still work for their own histograms
        assert hdr.decode(hdr.encode(decoded)).get_total_count() == 6
        refs = [weakref.ref(h) for h in (made, decoded, merged)]
        del made, decoded, merged
        assert [r() for r in refs] == [None, None, None]
    finally:
        if enabled:
            gc.enable()
