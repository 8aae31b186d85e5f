"""``sleep_until``: scheduled wake-ups on a timerfd, in due order, never early."""

from __future__ import annotations

import threading
import time

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
    monkeypatch.setattr(_clock, "_wheels", threading.local())
    at = time.time() + 0.02
    sleep_until(at)
    assert time.time() >= at
    assert _clock._wheels.wheel is None
