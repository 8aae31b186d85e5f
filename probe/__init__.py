"""wsgauge-probe: watch a live deployment around the clock with a few authenticated probe users.

The sans-I/O core (``probe._backoff``, ``probe._schedule``, ``probe._checks``, ``probe._rules``,
``probe._alerts``) decides what to send, matches replies, and evaluates alert rules; the asyncio shell
(``probe._connection``, ``probe._runner``) only moves frames, and a writer thread (``probe._writer``) keeps
store writes off the event loop. ``docs/probe.md`` describes the command.
"""

from __future__ import annotations

__all__: list[str] = []
