"""The client strategies, driven directly with an explicit clock."""

from __future__ import annotations

import random

import pytest

from loadtest._strategies import Backoff, Batcher, Debouncer, OfflineCache, batch_envelope


class TestDebouncer:
    def test_latest_per_key_wins_within_the_window(self) -> None:
        d: Debouncer[str] = Debouncer(0.5)
        d.offer(("Math", "Algebra"), "m10", now=0.0)
        d.offer(("Math", "Algebra"), "m20", now=0.2)
        d.offer(("Art", "Color"), "a5", now=0.3)
        d.offer(("Math", "Algebra"), "m30", now=0.4)
        assert len(d) == 2
        assert d.superseded == 2
        assert d.next_deadline() == 0.5
        assert d.due(0.49) == []
        assert d.due(0.5) == ["m30"]
        assert d.next_deadline() == pytest.approx(0.8)
        assert d.due(1.0) == ["a5"]
        assert len(d) == 0 and d.next_deadline() is None

    def test_other_keys_are_never_replaced(self) -> None:
        # The seed debounced every message through one function: a second subject replaced the first.
        d: Debouncer[str] = Debouncer(1.0)
        for i, subject in enumerate(["Math", "Physics", "Art"]):
            d.offer((subject, "t"), subject, now=i * 0.1)
        assert d.due(5.0) == ["Math", "Physics", "Art"]

    def test_a_steady_stream_does_not_starve(self) -> None:
        d: Debouncer[int] = Debouncer(1.0)
        released = []
        t = 0.0
        for i in range(100):  # an update every 0.1 s for 10 s
            d.offer("k", i, now=t)
            released += d.due(t)
            t += 0.1
        released += d.drain()
        assert 9 <= len(released) <= 11
        assert released[-1] == 99
        assert released == sorted(released)

    def test_window_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            Debouncer(0)


class TestBatcher:
    def test_flushes_by_size(self) -> None:
        b: Batcher[int] = Batcher(3, 1.0)
        assert b.add(1, 0.0) is None
        assert b.add(2, 0.1) is None
        assert b.add(3, 0.2) == [1, 2, 3]
        assert len(b) == 0 and b.next_deadline() is None

    def test_flushes_by_age(self) -> None:
        b: Batcher[int] = Batcher(10, 0.1)
        b.add(1, 0.0)
        b.add(2, 0.05)
        assert b.next_deadline() == pytest.approx(0.1)
        assert b.due(0.09) is None
        assert b.due(0.1) == [1, 2]
        assert b.due(1.0) is None

    def test_requeue_keeps_order_and_loses_nothing(self) -> None:
        b: Batcher[int] = Batcher(3, 1.0)
        b.add(1, 0.0)
        b.add(2, 0.0)
        batch = b.add(3, 0.0)
        assert batch == [1, 2, 3]
        b.add(4, 0.1)
        b.requeue(batch, 0.2)  # the send failed
        assert b.drain() == [1, 2, 3, 4]

    def test_no_message_lost_over_a_long_run(self) -> None:
        rng = random.Random(7)
        b: Batcher[int] = Batcher(5, 0.05)
        out: list[int] = []
        t = 0.0
        for i in range(1000):
            t += rng.expovariate(100)
            full = b.add(i, t)
            if full:
                out += full
            late = b.due(t)
            if late:
                out += late
        out += b.drain()
        assert out == list(range(1000))

    def test_envelope(self) -> None:
        msgs = [{"type": "ping", "ts": 1}]
        assert batch_envelope(msgs) == {"type": "batch", "messages": msgs}

    @pytest.mark.parametrize(("size", "age"), [(1, 1.0), (0, 1.0), (2, 0.0)])
    def test_bad_parameters(self, size: int, age: float) -> None:
        with pytest.raises(ValueError):
            Batcher(size, age)


class TestOfflineCache:
    def test_flush_sends_all_in_order(self) -> None:
        cache: OfflineCache[int] = OfflineCache()
        cache.extend(range(50))
        sent: list[int] = []
        assert cache.flush(sent.append) == 50
        assert sent == list(range(50))
        assert len(cache) == 0

    def test_failed_send_keeps_itself_and_the_rest(self) -> None:
        cache: OfflineCache[int] = OfflineCache()
        cache.extend(range(10))
        sent: list[int] = []

        def send(m: int) -> None:
            if m == 4:
                raise ConnectionError("gone")
            sent.append(m)

        with pytest.raises(ConnectionError):
            cache.flush(send)
        assert sent == [0, 1, 2, 3]
        assert len(cache) == 6
        cache.push(99)  # queued after reconnecting failed again
        assert cache.flush(sent.append) == 7
        assert sent == [*range(10), 99]

    def test_send_returning_false_stops_without_loss(self) -> None:
        cache: OfflineCache[str] = OfflineCache()
        cache.extend("abc")
        calls: list[str] = []

        def send(m: str) -> bool:
            calls.append(m)
            return m != "b"

        assert cache.flush(send) == 1
        assert len(cache) == 2
        assert cache.flush(lambda m: None) == 2

    def test_bounded_cache_counts_what_it_drops(self) -> None:
        cache: OfflineCache[int] = OfflineCache(limit=3)
        cache.extend(range(5))
        assert cache.dropped == 2
        out: list[int] = []
        cache.flush(out.append)
        assert out == [2, 3, 4]


class TestBackoff:
    def test_full_jitter_within_exponential_ceilings(self) -> None:
        b = Backoff(0.25, 10.0, 20, random.Random(1))
        ceilings = [min(10.0, 0.25 * 2**n) for n in range(20)]
        delays = [b.next_delay() for _ in range(20)]
        assert all(d is not None and 0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
        assert b.next_delay() is None and b.exhausted

    def test_jitter_spreads_and_is_seeded(self) -> None:
        first = [Backoff(1.0, 1.0, 1, random.Random(s)).next_delay() for s in range(200)]
        assert len(set(first)) == 200  # no lock step
        assert min(first) < 0.1 and max(first) > 0.9  # spread over the whole [0, ceiling]
        again = [Backoff(1.0, 1.0, 1, random.Random(s)).next_delay() for s in range(200)]
        assert first == again

    def test_mean_grows_then_caps(self) -> None:
        rng = random.Random(3)
        samples: dict[int, list[float]] = {n: [] for n in range(8)}
        for _ in range(2000):
            b = Backoff(0.1, 2.0, 8, rng)
            for n in range(8):
                delay = b.next_delay()
                assert delay is not None
                samples[n].append(delay)
        avg = [sum(v) / len(v) for v in samples.values()]
        expected = [min(2.0, 0.1 * 2**n) / 2 for n in range(8)]
        assert avg == pytest.approx(expected, rel=0.1)

    def test_reset_after_success(self) -> None:
        b = Backoff(0.5, 5.0, 2, random.Random(0))
        b.next_delay()
        b.next_delay()
        assert b.next_delay() is None
        b.reset()
        d = b.next_delay()
        assert d is not None and d <= 0.5

    def test_zero_retries_never_retries(self) -> None:
        assert Backoff(1.0, 2.0, 0, random.Random(0)).next_delay() is None

    def test_bad_parameters(self) -> None:
        with pytest.raises(ValueError):
            Backoff(2.0, 1.0, 3, random.Random(0))
        with pytest.raises(ValueError):
            Backoff(1.0, 2.0, -1, random.Random(0))
