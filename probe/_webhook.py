"""Alert webhook delivery: a JSON POST per alert transition, retried with backoff, never in the probe's way.

Transitions wait in a bounded queue; one task posts them in order. A failed POST (no answer, a 5xx, a 429)
is retried with exponential backoff for up to ``give_up_after_s``; a 4xx other than 408/429 is final. The
probing tasks only ever call :meth:`WebhookSender.send`, which never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from typing import Any, TextIO

import aiohttp

from probe._alerts import AlertTransition
from probe._backoff import Backoff

__all__ = ["WebhookSender", "webhook_body"]

log = logging.getLogger(__name__)


def webhook_body(transition: AlertTransition, probe: str, target: str) -> dict[str, Any]:
    """The JSON body: the store event's detail plus who, where and when."""
    return {
        "kind": transition.kind,
        "status": "firing" if transition.kind == "alert_firing" else "resolved",
        "probe": probe,
        "target": target,
        "at": transition.at,
        **transition.detail(),
    }


class WebhookSender:
    """Posts alert transitions to ``url`` from a background task.

    Args:
        url: the webhook (``http://`` or ``https://``).
        probe, target: put in every body.
        max_queued: transitions kept while the receiver is down (oldest dropped).
        give_up_after_s: how long one transition is retried.
    """

    def __init__(
        self,
        url: str,
        probe: str,
        target: str,
        *,
        max_queued: int = 1000,
        give_up_after_s: float = 3600.0,
        timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        err: TextIO = sys.stderr,
    ) -> None:
        self.url = url
        self._probe = probe
        self._target = target
        self._queue: deque[dict[str, Any]] = deque(maxlen=max_queued)
        self._wake = asyncio.Event()
        self._give_up = give_up_after_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._backoff = backoff or Backoff(base=0.5, cap=60.0)
        self._err = err
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0

    def send(self, transition: AlertTransition) -> None:
        """Queue ``transition`` for delivery; returns at once."""
        self._queue.append(webhook_body(transition, self._probe, self._target))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="wsgauge-probe-webhook")

    async def stop(self, grace_s: float = 2.0) -> None:
        """Give queued deliveries ``grace_s`` to finish, then stop."""
        if self._task is None:
            return
        deadline = time.monotonic() + grace_s
        while self._queue and time.monotonic() < deadline and not self._task.done():
            await asyncio.sleep(0.05)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                body = self._queue[0]
                first_try = time.monotonic()
                while True:
                    outcome = await self._post(session, body)
                    if outcome is None:
                        self.delivered += 1
                        self._backoff.reset()
                        break
                    if outcome.startswith("final") or time.monotonic() - first_try > self._give_up:
                        self.failed += 1
                        print(f"wsgauge-probe: alert webhook {self.url}: gave up: {outcome}", file=self._err)
                        break
                    delay = self._backoff.next_delay()
                    log.info("webhook %s failed (%s); retrying in %.1f s", self.url, outcome, delay)
                    await asyncio.sleep(delay)
                if self._queue and self._queue[0] is body:
                    self._queue.popleft()

    async def _post(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> str | None:
        """``None`` when delivered; otherwise why not (``final: ...`` when retrying cannot help)."""
        try:
            async with session.post(self.url, json=body) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                if 400 <= response.status < 500 and response.status not in (408, 429):
                    return f"final: HTTP {response.status}"
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
