from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from runstore import histogram as hdr


def _filled(seed: int, n: int = 5000) -> HdrHistogram:
    rng = random.Random(seed)
    h = hdr.new_histogram()
    for _ in range(n):
        assert hdr.record_us(h, rng.lognormvariate(7, 1.2) + 1)
    return h


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_match_hdrh(seed: int) -> None:
    h = _filled(seed)
    pcts = [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
    ours = hdr.percentiles(h, pcts)
    for p in pcts:
        assert ours[p] == h.get_value_at_percentile(p), p


def test_summary_matches_hdrh() -> None:
    h = _filled(7)
    s = hdr.summarize(h)
    assert s["count"] == h.get_total_count()
    assert s["min_us"] == h.get_min_value()
    assert s["max_us"] == h.get_max_value()
    assert s["mean_us"] == pytest.approx(h.get_mean_value())
    assert s["p99_us"] == h.get_value_at_percentile(99)
    assert s["p999_us"] == h.get_value_at_percentile(99.9)


def test_empty_summary_is_zero() -> None:
    s = hdr.summarize(hdr.new_histogram())
    assert s["count"] == 0 and s["p99_us"] == 0 and s["max_us"] == 0


def test_merge_encoded_equals_adding() -> None:
    a, b = _filled(1), _filled(2)
    merged = hdr.merge_encoded([hdr.encode(a), hdr.encode(b)])
    reference = hdr.new_histogram()
    reference.add(a)
    reference.add(b)
    assert merged.get_total_count() == reference.get_total_count()
    for p in (50, 99, 99.9, 100):
        assert merged.get_value_at_percentile(p) == reference.get_value_at_percentile(p)
    assert merged.get_min_value() == reference.get_min_value()


def test_merge_of_nothing_is_empty() -> None:
    assert hdr.merge_encoded([]).get_total_count() == 0


def test_out_of_range_values_are_clamped_and_reported() -> None:
    h = hdr.new_histogram()
    assert hdr.record_us(h, 0.3)  # sub-microsecond: recorded as 1 us, still a valid measurement
    assert not hdr.record_us(h, -5)
    assert not hdr.record_us(h, hdr.HIGHEST_US * 10)
    assert h.get_total_count() == 3
    assert h.get_max_value() >= hdr.HIGHEST_US


@pytest.mark.parametrize("blob", [b"", b"garbage", b"SGVsbG8=", "not base64 at all!"])
def test_decode_rejects_garbage(blob: bytes | str) -> None:
    with pytest.raises(ValueError):
        hdr.decode(blob)


def test_decode_rejects_foreign_layout() -> None:
    other = HdrHistogram(1, 1000, 2)
    other.record_value(5)
    with pytest.raises(ValueError, match="layout"):
        hdr.decode(other.encode())
