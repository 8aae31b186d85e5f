"""The open model's schedule, the think-time distributions, and the back end's rate shares."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from loadtest._schedule import OpenSchedule, ThinkTime, rate_shares, students_per_worker


class TestOpenSchedule:
    def test_deterministic_rate(self) -> None:
        s = OpenSchedule(10.0, start=100.0, rng=random.Random(1))
        times = [s.next_send_at() for _ in range(50)]
        assert 100.0 <= times[0] < 100.1  # random phase within one interval
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps == pytest.approx([0.1] * 49)
        assert s.count == 50

    def test_poisson_rate_and_seed(self) -> None:
        s = OpenSchedule(50.0, start=0.0, rng=random.Random(2), poisson=True)
        times = [s.next_send_at() for _ in range(5000)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert statistics.fmean(gaps) == pytest.approx(0.02, rel=0.05)
        assert statistics.stdev(gaps) == pytest.approx(0.02, rel=0.1)  # exponential: sd == mean
        again = OpenSchedule(50.0, start=0.0, rng=random.Random(2), poisson=True)
        assert [again.next_send_at() for _ in range(5000)] == times

    def test_never_skips_when_behind(self) -> None:
        s = OpenSchedule(100.0, start=0.0, rng=random.Random(3))
        first = s.peek()
        # The caller stalled for 1 s: every send of that second is still owed, back to back.
        assert s.behind(first + 1.0) == 101
        lags = [OpenSchedule.lag(first + 1.0, s.next_send_at()) for _ in range(101)]
        assert lags[0] == pytest.approx(1.0)
        assert lags[-1] == pytest.approx(0.0, abs=1e-9)
        assert lags == sorted(lags, reverse=True)
        assert s.behind(first + 1.0) == 0

    def test_lag_is_never_negative(self) -> None:
        assert OpenSchedule.lag(5.0, 6.0) == 0.0
        assert OpenSchedule.lag(6.5, 6.0) == 0.5

    def test_phases_spread_users(self) -> None:
        starts = {OpenSchedule(1.0, 0.0, random.Random(seed)).peek() for seed in range(100)}
        assert len(starts) == 100 and max(starts) - min(starts) > 0.8

    @pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
    def test_bad_rate(self, rate: float) -> None:
        with pytest.raises(ValueError):
            OpenSchedule(rate, 0.0, random.Random(0))


class TestThinkTime:
    def test_lognormal_median_and_scale(self) -> None:
        think = ThinkTime(random.Random(4), scale=2.0)
        values = [think.lognormal(1.5) for _ in range(4000)]
        assert statistics.median(values) == pytest.approx(3.0, rel=0.07)
        assert statistics.fmean(values) > statistics.median(values)  # right-skewed

    def test_exponential_mean(self) -> None:
        think = ThinkTime(random.Random(5))
        values = [think.exponential(2.0) for _ in range(4000)]
        assert statistics.fmean(values) == pytest.approx(2.0, rel=0.07)

    def test_scale_zero_means_no_thinking(self) -> None:
        think = ThinkTime(random.Random(6), scale=0.0)
        assert think.lognormal(5.0) == 0.0 and think.exponential(5.0) == 0.0

    def test_cap(self) -> None:
        think = ThinkTime(random.Random(7), cap=1.0)
        assert max(think.exponential(10.0) for _ in range(1000)) <= 1.0

    def test_seeded(self) -> None:
        a = ThinkTime(random.Random(8))
        b = ThinkTime(random.Random(8))
        assert [a.lognormal(1.0) for _ in range(10)] == [b.lognormal(1.0) for _ in range(10)]


def test_the_notification_rate_is_shared_in_proportion_to_students() -> None:
    shares = rate_shares(10.0, {"a": 3, "b": 1})
    assert shares == {"a": 7.5, "b": 2.5}
    assert sum(rate_shares(2.0, {"a": 5, "b": 4, "c": 0}).values()) == pytest.approx(2.0)
    # -u 1 on two workers: the worker with the student posts the whole rate
    assert rate_shares(4.0, {"a": 0, "b": 1}) == {"a": 0.0, "b": 4.0}
    assert rate_shares(4.0, {"a": 0, "b": 0}) == {"a": 0.0, "b": 0.0}
    assert rate_shares(0.0, {"a": 2}) == {"a": 0.0}
    assert rate_shares(4.0, {}) == {}


def test_students_per_worker_counts_only_student_classes() -> None:
    counts = {"w1": {"StudentUser": 4, "ChurnUser": 1, "Admin": 2}, "w2": {}}
    assert students_per_worker(counts, frozenset({"StudentUser", "ChurnUser"})) == {"w1": 5, "w2": 0}
