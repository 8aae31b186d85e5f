"""``sleep_until``: scheduled wake-ups on a timerfd, in due order, never early."""

from __future__ import annotations

import time
import weakref

import gevent
import pytest

from loadtest import _clock
from loadtest._clock import sleep_until


def test_greenlets_wake_in_due_order_and_never_early() -> None:
    start = time.time() + 0.05
    woke: list[tuple[int, float, float]] = []

    def sleeper(i: int, at: float) -> None:
        sleep_until(at)
        woke.append((i, at, time.time()))

    # spawned latest-first, and two at the same instant: they wake by time, ties in call order
    offsets = [0.040, 0.030, 0.010, 0.020, 0.020, 0.0]
    gevent.joinall([gevent.spawn(sleeper, i, start + o) for i, o in enumerate(offsets)], timeout=5)
    assert [i for i, _, _ in woke] == [5, 2, 3, 4, 1, 0]
    assert all(now >= at for _, at, now in woke)


def test_a_time_already_past_returns_without_yielding() -> None:
    ran: list[str] = []
    gevent.spawn(ran.append, "other")
    sleep_until(time.time() - 1.0)
    assert ran == []  # no switch happened: a late schedule catches up back to back
    gevent.sleep(0)
    assert ran == ["other"]


def test_a_killed_sleeper_does_not_disturb_the_others() -> None:
    at = time.time() + 0.03
    woke: list[str] = []

    def sleeper(name: str, when: float) -> None:
        sleep_until(when)
        woke.append(name)

    doomed = gevent.spawn(sleeper, "doomed", at)
    later = gevent.spawn(sleeper, "later", at + 0.02)
    gevent.sleep(0.005)
    doomed.kill()
    later.join(timeout=5)
    assert woke == ["later"]
    sleep_until(time.time() + 0.01)  # the wheel still works afterwards
    assert woke == ["later"]


def test_without_timerfd_it_falls_back_to_gevent_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_clock, "_libc", None)
    monkeypatch.setattr(_clock, "_wheels", weakref.WeakKeyDictionary())
    at = time.time() + 0.02
    sleep_until(at)
    assert time.time() >= at
    assert list(_clock._wheels.values()) == [None]


def test_one_wheel_per_hub_shared_by_all_greenlets() -> None:
    wheels = []
    gevent.joinall([gevent.spawn(lambda: wheels.append(_clock._wheel())) for _ in range(3)])
    assert wheels[0] is not None and all(w is wheels[0] for w in wheels)
    assert _clock._wheel() is wheels[0]


def test_above_the_precise_rate_it_sleeps_on_gevent_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_clock, "PRECISE_MAX_RATE", 100.0)
    monkeypatch.setattr(_clock, "_wheels", weakref.WeakKeyDictionary())

    def user() -> None:
        at = time.time()
        for _ in range(60):  # 6 users x 300/s = 1,800 requests/s, far above 100/s
            at += 1 / 300
            sleep_until(at)

    gevent.joinall([gevent.spawn(user) for _ in range(6)], timeout=5)
    assert _clock._wheel().busy
