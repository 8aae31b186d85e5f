"""Downsampling: pure numpy, checked against brute force on small series."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.downsample import (
    bucket_max,
    bucket_mean,
    bucket_sum,
    choose_bucket,
    insert_gaps,
    lttb,
    minmax,
)


def test_choose_bucket_picks_the_smallest_round_width() -> None:
    assert choose_bucket(600, 1000) == 1
    assert choose_bucket(3600, 1000) == 5
    assert choose_bucket(86_400, 1000) == 120
    assert choose_bucket(86_400 * 400, 10) == 86_400  # the ladder's end
    with pytest.raises(ValueError):
        choose_bucket(10, 0)


def test_minmax_keeps_each_buckets_extremes_and_nothing_else() -> None:
    rng = np.random.default_rng(1)
    x = np.arange(86_400, dtype=np.float64)
    y = rng.lognormal(0, 0.5, x.size)
    y[12_345] = 1e4  # a one-second spike in a day
    xs, ys = minmax(x, y, 120)
    assert xs.size <= 2 * 720
    assert np.all(np.diff(xs) > 0)
    assert 1e4 in ys and 12_345.0 in xs
    buckets = (x // 120).astype(int)
    for b in (0, 103, 719):
        chunk = y[buckets == b]
        kept = ys[(xs // 120).astype(int) == b]
        assert sorted(kept) == sorted({chunk.min(), chunk.max()})


def test_minmax_drops_nan_and_leaves_short_series_alone() -> None:
    xs, ys = minmax([0, 1, 2], [1.0, np.nan, 3.0], 10)
    assert xs.tolist() == [0, 2] and ys.tolist() == [1.0, 3.0]
    xs, ys = minmax([], [], 10)
    assert xs.size == 0


def test_lttb_keeps_endpoints_and_the_shape() -> None:
    x = np.arange(10_000, dtype=np.float64)
    y = np.sin(x / 500.0)
    y[5_000] = 5.0
    xs, ys = lttb(x, y, 500)
    assert xs.size == 500
    assert xs[0] == 0 and xs[-1] == 9_999
    assert 5.0 in ys  # the outlier forms the largest triangle of its bucket
    assert np.all(np.diff(xs) > 0)
    same_x, _ = lttb(x[:10], y[:10], 50)
    assert same_x.size == 10
    with pytest.raises(ValueError):
        lttb(x, y, 2)


def test_bucket_aggregates_match_brute_force() -> None:
    x = np.array([0, 1, 2, 5, 6, 11, 12, 13], dtype=np.float64)
    y = np.array([1, 2, 3, 4, 5, 6, 7, np.nan])
    bx, sums = bucket_sum(x[:-1], y[:-1], 5)
    assert bx.tolist() == [0, 5, 10] and sums.tolist() == [6, 9, 13]
    bx, highs = bucket_max(x, y, 5)
    assert highs.tolist() == [3, 5, 7]
    bx, means = bucket_mean(x[:-1], y[:-1], 5, weights=[1, 1, 2, 1, 1, 1, 0])
    assert means.tolist() == pytest.approx([(1 + 2 + 6) / 4, 4.5, 6.0])
    assert bucket_sum([], [], 5)[0].size == 0


def test_insert_gaps_breaks_lines_where_samples_are_missing() -> None:
    xs, ys = insert_gaps([0, 1, 2, 10, 11], [1, 1, 1, 1, 1], max_step=3)
    assert xs.tolist() == [0, 1, 2, 6, 10, 11]
    assert np.isnan(ys[3]) and np.isfinite(np.delete(ys, 3)).all()
    xs, _ = insert_gaps([0, 1, 2], [1, 2, 3], max_step=3)
    assert xs.size == 3
