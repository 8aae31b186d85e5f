"""Gate statistics: HdrHistogram-exact percentiles of merged counts, seeded bootstrap, intervals."""

from __future__ import annotations

import random

import numpy as np

from reports import stats
from runstore import histogram as hdr


def _seconds(n_seconds: int, per_second: int, seed: int, factor: float = 1.0) -> list[bytes]:
    rng = random.Random(seed)
    blobs = []
    for _ in range(n_seconds):
        histogram = hdr.new_histogram()
        for _ in range(per_second):
            hdr.record_us(histogram, rng.lognormvariate(7.5, 0.5) * factor)
        blobs.append(hdr.encode(histogram))
    return blobs


def test_percentiles_of_merged_counts_match_hdrhistogram() -> None:
    blobs = _seconds(20, 200, seed=1)
    matrix = stats.counts_matrix(blobs)
    merged = hdr.merge_encoded(blobs)
    assert matrix.total == merged.get_total_count() == 4000
    for pct in (1.0, 50.0, 90.0, 99.0, 99.9, 100.0):
        ours = stats.percentile_of_counts(matrix.counts.sum(axis=0), matrix.values_us, pct)[0]
        assert ours == merged.get_value_at_percentile(pct), pct
    # Row-wise: each second on its own, as each second's histogram says.
    per_row = stats.percentile_of_counts(matrix.counts, matrix.values_us, 99.0)
    assert per_row.tolist() == [float(hdr.decode(b).get_value_at_percentile(99.0)) for b in blobs]


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    matrix = stats.counts_matrix(_seconds(30, 100, seed=2))
    first, method = stats.bootstrap_percentiles(matrix, [50.0, 99.0], 500, np.random.default_rng(7))
    again, _ = stats.bootstrap_percentiles(matrix, [50.0, 99.0], 500, np.random.default_rng(7))
    assert method == "seconds"
    assert np.array_equal(first[99.0], again[99.0])
    point = stats.percentile_of_counts(matrix.counts.sum(axis=0), matrix.values_us, 50.0)[0]
    ci = stats.interval(first[50.0], 0.95)
    assert ci.low < point < ci.high
    assert ci.high / ci.low < 1.2  # 3,000 samples: the median is known within a few per cent


def test_few_seconds_fall_back_to_multinomial_resampling() -> None:
    matrix = stats.counts_matrix(_seconds(4, 500, seed=3))
    samples, method = stats.bootstrap_percentiles(matrix, [50.0], 200, np.random.default_rng(1))
    assert method == "multinomial"
    assert np.isfinite(samples[50.0]).all()


def test_interval_excludes() -> None:
    ci = stats.interval(np.linspace(1.05, 1.25, 1001), 0.9)
    assert ci.excludes(1.0) and not ci.excludes(1.1)


def test_mean_difference_interval_is_the_pooled_t_interval() -> None:
    from scipy import stats as scipy_stats

    base, cand = [1.0, 1.2, 0.9, 1.1], [1.3, 1.5, 1.25]
    difference, ci = stats.mean_difference_interval(base, cand, 0.95)
    expected = scipy_stats.ttest_ind(cand, base, equal_var=True).confidence_interval(0.95)
    assert difference == np.mean(cand) - np.mean(base)
    assert (ci.low, ci.high) == (float(expected.low), float(expected.high))
    one, wide = stats.mean_difference_interval(base, [1.4], 0.95)  # one candidate run: baseline spread only
    assert wide.low < one < wide.high and wide.high - wide.low > ci.high - ci.low


def test_runs_per_side_needed_confirms_the_change_nine_times_in_ten() -> None:
    """Simulated run-level tests: with the runs it names, the interval excludes no change >= 90 % of the time;
    with one run fewer, less often."""
    spread, effect = 0.1, float(np.log(1.2))  # runs scatter by 10 %, a +20 % change
    runs = stats.runs_per_side_needed(spread, effect, 0.95)
    assert runs is not None and runs > 2

    def confirmed(n: int) -> float:
        rng = np.random.default_rng(n)
        hits = 0
        for _ in range(4000):
            base, cand = rng.normal(0.0, spread, n), rng.normal(effect, spread, n)
            hits += stats.mean_difference_interval(base, cand, 0.95)[1].low > 0.0
        return hits / 4000

    assert confirmed(runs) >= 0.89 and confirmed(runs - 1) < 0.9
    assert stats.runs_per_side_needed(spread, -effect, 0.95) == runs  # either direction
    assert stats.runs_per_side_needed(spread, 0.01, 0.95) is None  # a 1 % change: over 100 runs a side
    assert stats.runs_per_side_needed(0.0, effect, 0.95) == 2  # identical runs
    assert stats.runs_per_side_needed(spread, 0.0, 0.95) is None  # no change to confirm


def test_mean_difference_interval_needs_three_runs() -> None:
    import pytest

    with pytest.raises(ValueError, match="three in all"):
        stats.mean_difference_interval([1.0], [2.0], 0.95)
