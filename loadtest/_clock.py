"""Sleeping until a scheduled instant, to the tens of microseconds, under gevent.

The open model measures latency from the *scheduled* send time, so every microsecond the generator wakes
late is added to every latency it reports. ``gevent.sleep`` wakes up to a millisecond late: libev waits in
``epoll_wait``, whose timeout has millisecond resolution, and rounds it up. At the sub-millisecond round
trips of a fast server that was half of every reported median (send lag p50 ≈ 0.6 ms inside an
``ack`` p50 of 1.2 ms), and its run-to-run drift was the largest noise source of the release gate.

:func:`sleep_until` instead arms one Linux ``timerfd`` (nanosecond clock, absolute wall time) for the
earliest instant any greenlet of this hub waits for, and watches it like a socket: the kernel makes the fd
readable at that instant and ``epoll_wait`` returns at once, whatever its timeout. The woken greenlets are
switched to in due order. Where there is no ``timerfd`` (not Linux), it falls back to ``gevent.sleep``.

A ``timerfd`` wake-up costs a loop iteration of its own (tens of microseconds of CPU), where
``gevent.sleep`` lets one iteration wake every greenlet due in the same millisecond. So the precise path is
for the rates where precision matters: above :data:`PRECISE_MAX_RATE` scheduled sends per second in this
process, the generator is busy, libev's loop turns over constantly and its timers fire close to on time
anyway (send lag p50 ≈ 0.2-0.3 ms at 8,000-14,000/s), and ``gevent.sleep`` spends the CPU better.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import itertools
import logging
import os
import time
import weakref
from typing import Any

import gevent
from gevent.hub import Waiter, get_hub

__all__ = ["sleep_until"]

log = logging.getLogger(__name__)

#: Scheduled sends per second (in this process) above which :func:`sleep_until` uses ``gevent.sleep``.
PRECISE_MAX_RATE = 2000.0

_CLOCK_REALTIME = 0  # time.time()'s clock, the one the schedules use
_TFD_TIMER_ABSTIME = 1
_TFD_FLAGS = os.O_NONBLOCK | os.O_CLOEXEC  # TFD_NONBLOCK and TFD_CLOEXEC share these values


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _load_libc() -> Any | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.POINTER(_Itimerspec),
        ]
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()


class _TimerWheel:
    """One timerfd per gevent hub, armed for the earliest waiter."""

    def __init__(self) -> None:
        assert _libc is not None
        fd = _libc.timerfd_create(_CLOCK_REALTIME, _TFD_FLAGS)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd = fd
        self._heap: list[tuple[float, int, Waiter]] = []
        self._order = itertools.count()  # ties wake in the order they were asked for
        self._spec = _Itimerspec()
        self._watcher = get_hub().loop.io(fd, 1)  # 1: readable
        self._watcher.start(self._fire)
        self._window_start = time.monotonic()
        self._requests = 0
        self.busy = False  #: more than PRECISE_MAX_RATE requests/s in the last full 0.1 s window

    def count_request(self) -> None:
        now = time.monotonic()
        if now - self._window_start >= 0.1:
            self.busy = self._requests > PRECISE_MAX_RATE * (now - self._window_start)
            self._window_start, self._requests = now, 0
        self._requests += 1

    def wait(self, at: float) -> None:
        waiter = Waiter()
        heapq.heappush(self._heap, (at, next(self._order), waiter))
        if self._heap[0][2] is waiter:
            self._arm(at)
        waiter.get()

    def _arm(self, at: float) -> None:
        sec = int(at)
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = sec, max(1, int((at - sec) * 1e9))  # 0 would disarm
        if _libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def _fire(self) -> None:
        with contextlib.suppress(BlockingIOError):  # the fd is non-blocking
            os.read(self._fd, 8)  # clear the expiry count
        heap = self._heap
        now = time.time()
        due: list[Waiter] = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        if heap:
            self._arm(heap[0][0])
        for waiter in due:  # a greenlet killed while it waited is gone: its waiter just keeps the value
            waiter.switch(None)


#: One wheel per gevent hub (per OS thread), or ``None`` where timerfd is unavailable. Keyed by the hub
#: itself: ``threading.local`` is per *greenlet* once gevent has monkey-patched ``threading``.
_wheels: weakref.WeakKeyDictionary[Any, _TimerWheel | None] = weakref.WeakKeyDictionary()


def _wheel() -> _TimerWheel | None:
    hub = get_hub()
    try:
        return _wheels[hub]
    except KeyError:
        pass
    wheel = None
    if _libc is not None:
        try:
            wheel = _TimerWheel()
        except OSError as exc:
            log.warning("no timerfd (%s): scheduled sends may wake up to 1 ms late", exc)
    _wheels[hub] = wheel
    return wheel


def sleep_until(at: float) -> None:
    """Block this greenlet until wall-clock time ``at`` (``time.time()`` seconds), then return.

    Returns at once if ``at`` has passed (without yielding: a late schedule catches up back to back).
    """
    if at <= time.time():
        return
    wheel = _wheel()
    if wheel is not None:
        wheel.count_request()
        if not wheel.busy:
            wheel.wait(at)
            return
    gevent.sleep(max(0.0, at - time.time()))
