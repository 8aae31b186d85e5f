"""The Live view of a probe run (``kind`` ``probe``: open-ended, months long): windows, status, alerts.

A probe (``wsgauge-probe``, ``docs/probe.md``) writes one run that never ends, in the same per-second samples
as a load test, plus ``alert_firing`` / ``alert_resolved`` events (``user`` = the rule, ``detail`` = JSON).
The Live view draws the last 15 minutes, 24 hours or 7 days of it, ending now, with badges for the probe
users' connection state and for each alert that is firing. The pure parts (:func:`live_range`,
:func:`connection_status`, :func:`alert_intervals`) take plain values; :func:`read_status` is the one read.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd

from runstore.names import CONNECTION_STATES, state_gauge
from runstore.store import RunRecord, RunStore

__all__ = [
    "ALERT_FIRING",
    "ALERT_RESOLVED",
    "DEFAULT_WINDOW",
    "LIVE_WINDOWS",
    "AlertInterval",
    "ConnectionStatus",
    "LiveStatus",
    "alert_intervals",
    "connection_status",
    "is_probe",
    "live_range",
    "parse_window",
    "read_status",
]

LIVE_WINDOWS: Final[dict[str, tuple[str, int]]] = {
    "15m": ("last 15 min", 900),
    "24h": ("last 24 h", 86_400),
    "7d": ("last 7 days", 7 * 86_400),
}
"""The Live view's windows: key (also ``?window=``), label, seconds."""
DEFAULT_WINDOW: Final = "24h"
ALERT_FIRING: Final = "alert_firing"
ALERT_RESOLVED: Final = "alert_resolved"
ALERT_LOOKBACK_S: Final = 30 * 86_400
"""How far back the view looks for the alert events that say which rules are firing now: an alert that has
been firing for longer (and never resolved) is not badged. Bounded so a months-long probe's reads stay
small."""
STATUS_SECONDS: Final = 30
"""The connection badge is the newest second of the ``users.*`` gauges within this many seconds of the end."""


def is_probe(run: RunRecord) -> bool:
    """Whether ``run`` is a probe's (schema v2 ``runs.kind``; a v1 store's runs are all load tests)."""
    return getattr(run, "kind", "load") == "probe"


def parse_window(value: str | None) -> str:
    """A :data:`LIVE_WINDOWS` key from ``?window=`` or the picker; anything else is the default."""
    return value if value in LIVE_WINDOWS else DEFAULT_WINDOW


def live_range(span: tuple[int, int], window: str, *, live: bool, now: float) -> tuple[float, float]:
    """The ``[start, end)`` seconds the Live view draws for ``window``.

    It ends now while the probe is writing (a probe that stopped writing a minute ago shows the minute as
    a gap), at its last second otherwise, and starts ``window`` earlier, but not before the first sample.
    """
    seconds = LIVE_WINDOWS[parse_window(window)][1]
    end = float(span[1] + 1)
    if live:
        end = max(end, math.floor(now))
    return max(float(span[0]), end - seconds), end


@dataclass(frozen=True)
class ConnectionStatus:
    """The probe users' connection state in one second: users per state, and the worst state present."""

    t: float | None
    users: Mapping[str, float]

    @property
    def state(self) -> str:
        """``disconnected`` if any user is, else ``reconnecting`` if any is, else ``connected``; ``unknown``
        when nothing was recorded."""
        if self.t is None:
            return "unknown"
        for state in ("disconnected", "reconnecting"):
            if self.users.get(state, 0.0) > 0:
                return state
        return "connected" if self.users.get("connected", 0.0) > 0 else "unknown"

    @property
    def text(self) -> str:
        """``connected 3`` or ``reconnecting 1 · connected 2``."""
        parts = [f"{s} {round(self.users[s]):,}" for s in reversed(CONNECTION_STATES) if self.users.get(s)]
        return " · ".join(parts) if parts else "no connection state recorded"


def connection_status(gauges: pd.DataFrame) -> ConnectionStatus:
    """The newest second of ``users.*`` gauge rows (``name, t, sum``; ``sum`` = users in that state)."""
    names = {state_gauge(s): s for s in CONNECTION_STATES}
    rows = gauges[gauges["name"].isin(list(names))]
    if rows.empty:
        return ConnectionStatus(None, {})
    last = float(rows["t"].max())
    newest = rows[rows["t"] == last]
    users = {names[n]: float(v) for n, v in zip(newest["name"], newest["sum"], strict=True)}
    return ConnectionStatus(last, users)


@dataclass(frozen=True)
class AlertInterval:
    """One breach of an alert rule: its ``alert_firing`` event to its ``alert_resolved`` (or still firing)."""

    rule: str
    start: float
    end: float | None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def firing(self) -> bool:
        return self.end is None


def _detail(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"detail": text}
    return value if isinstance(value, dict) else {"detail": value}


def alert_intervals(events: Iterable[Mapping[str, Any]]) -> list[AlertInterval]:
    """Fold ``alert_firing`` / ``alert_resolved`` events (time-ordered ``ts, user, kind, detail``) into one
    interval per breach and rule, in start order. A repeated ``firing`` of a rule already firing keeps the
    first start; a ``resolved`` without a ``firing`` in the events read (it began before them) is dropped."""
    open_: dict[str, AlertInterval] = {}
    done: list[AlertInterval] = []
    for event in events:
        kind, rule, ts = event["kind"], str(event["user"]), float(event["ts"])
        if kind == ALERT_FIRING and rule not in open_:
            open_[rule] = AlertInterval(rule, ts, None, _detail(event.get("detail")))
        elif kind == ALERT_RESOLVED and rule in open_:
            began = open_.pop(rule)
            done.append(AlertInterval(rule, began.start, ts, began.detail))
    return sorted([*done, *open_.values()], key=lambda a: (a.start, a.rule))


@dataclass(frozen=True)
class LiveStatus:
    """What the Live view's badges say."""

    connection: ConnectionStatus
    alerts: tuple[AlertInterval, ...]
    """Every breach in the look-back, firing or resolved (the timeline shades them)."""
    writing: bool
    """Whether the probe is still writing (its run is live)."""

    @property
    def firing(self) -> list[AlertInterval]:
        return [a for a in self.alerts if a.firing]


def read_status(store: RunStore, run: RunRecord, end: float, now: float | None = None) -> LiveStatus:
    """Read what the badges of the probe ``run`` say at ``end``: the newest connection state, the alerts."""
    now = time.time() if now is None else now
    gauges = store.gauges(
        run.id, [state_gauge(s) for s in CONNECTION_STATES], start=end - STATUS_SECONDS, end=end + 1
    )
    events = store.events(run.id, start=end - ALERT_LOOKBACK_S, end=end + 1)
    alerts = events[events["kind"].isin([ALERT_FIRING, ALERT_RESOLVED])]
    return LiveStatus(
        connection_status(gauges),
        tuple(alert_intervals(alerts.to_dict("records"))),
        run.is_live(now),
    )
