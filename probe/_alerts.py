"""Alert evaluation over rolling windows, sans I/O.

The shell feeds :class:`AlertEvaluator` every latency (:meth:`~AlertEvaluator.observe_latency`), every
finished check (:meth:`~AlertEvaluator.observe_check`) and the probe users' connection states
(:meth:`~AlertEvaluator.observe_states`), and calls :meth:`~AlertEvaluator.evaluate` about once a second.
A rule
that starts to be breached gives a ``firing`` :class:`AlertTransition`, one that holds again a ``resolved``
one; nothing is repeated while the state stays the same.

Percentiles are read off an HdrHistogram of the window's latencies with the run store's layout
(``runstore.histogram``), so an alert and the store's own figures for the same seconds agree.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from probe._checks import CheckDone
from probe._rules import AlertRule
from runstore import histogram as hdr
from runstore.names import EVENT_ALERT_FIRING, EVENT_ALERT_RESOLVED

__all__ = ["ALERT_FIRING", "ALERT_RESOLVED", "AlertEvaluator", "AlertTransition"]

ALERT_FIRING = EVENT_ALERT_FIRING
ALERT_RESOLVED = EVENT_ALERT_RESOLVED


@dataclass(frozen=True)
class AlertTransition:
    """A rule started (``alert_firing``) or stopped (``alert_resolved``) being breached at ``at``."""

    kind: str
    rule: str
    value: float
    threshold: float
    window_s: float
    unit: str
    at: float

    def detail(self) -> dict[str, object]:
        """The JSON detail of the store event and the webhook body: ``{rule, value, threshold, window_s}``."""
        return {
            "rule": self.rule,
            "value": self.value,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "unit": self.unit,
        }

    def detail_json(self) -> str:
        return json.dumps(self.detail(), sort_keys=True)

    def line(self) -> str:
        """The line printed for operators."""
        state = "FIRING" if self.kind == ALERT_FIRING else "resolved"
        window = f" over {self.window_s:g}s" if self.window_s else ""
        return (
            f"alert {state}: {self.rule} (value {self.value:g} {self.unit}{window}, limit {self.threshold:g})"
        )


class AlertEvaluator:
    """Evaluates alert rules over what the probe observed.

    Args:
        rules: the rules (``probe._rules.parse_rule``).
    """

    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.rules = tuple(rules)
        self.firing: dict[str, bool] = {rule.name: False for rule in self.rules}
        self.last_value: dict[str, float | None] = {rule.name: None for rule in self.rules}
        self._latency: dict[str, deque[tuple[float, float]]] = {}
        self._checks: deque[CheckDone] = deque()
        self._down_since: float | None = None
        self._horizon = max((r.window_s for r in self.rules), default=0.0)
        for rule in self.rules:
            if rule.kind == "latency" and rule.metric is not None:
                self._latency.setdefault(rule.metric, deque())

    # --- observations -----------------------------------------------------------------------------------

    def observe_latency(self, metric: str, value_us: float, at: float) -> None:
        """One latency of ``metric`` (µs), completed at ``at``. Metrics no rule names are ignored."""
        window = self._latency.get(metric)
        if window is not None:
            window.append((at, value_us))

    def observe_check(self, done: CheckDone) -> None:
        """One finished check (ok or failed)."""
        self._checks.append(done)

    def observe_states(self, states: Iterable[str], at: float) -> None:
        """The probe users' connection states at ``at``: any user not ``connected`` counts as down."""
        down = any(state != "connected" for state in states)
        if not down:
            self._down_since = None
        elif self._down_since is None:
            self._down_since = at

    # --- evaluation -------------------------------------------------------------------------------------

    def evaluate(self, now: float) -> list[AlertTransition]:
        """Evaluate every rule at ``now``; return the transitions (in rule order)."""
        self._trim(now)
        out: list[AlertTransition] = []
        for rule in self.rules:
            value, breached, threshold, unit = self._judge(rule, now)
            self.last_value[rule.name] = value
            if breached is None or breached == self.firing[rule.name]:
                continue
            self.firing[rule.name] = breached
            kind = ALERT_FIRING if breached else ALERT_RESOLVED
            out.append(
                AlertTransition(kind, rule.name, float(value or 0.0), threshold, rule.window_s, unit, now)
            )
        return out

    def _trim(self, now: float) -> None:
        for metric, window in self._latency.items():
            horizon = max(r.window_s for r in self.rules if r.metric == metric)
            while window and window[0][0] <= now - horizon:
                window.popleft()
        while self._checks and self._checks[0].at <= now - self._horizon:
            self._checks.popleft()

    def _judge(self, rule: AlertRule, now: float) -> tuple[float | None, bool | None, float, str]:
        """``(value, breached, threshold, unit)``; ``breached`` is ``None`` when there is nothing to judge."""
        if rule.kind == "disconnected":
            down_s = 0.0 if self._down_since is None else now - self._down_since
            breached = down_s >= rule.limit_s if rule.inclusive else down_s > rule.limit_s
            return down_s, breached, rule.limit_s, "s"
        gate = rule.gate
        assert gate is not None
        start = now - rule.window_s
        if rule.kind == "error_rate":
            checks = [
                c
                for c in self._checks
                if c.at > start and (rule.request_type is None or c.request_type == rule.request_type)
            ]
            if not checks:
                return None, None, gate.limit, "fraction"
            rate = sum(not c.ok for c in checks) / len(checks)
            return rate, not gate.holds(rate), gate.limit, "fraction"
        assert rule.metric is not None
        values = [v for t, v in self._latency[rule.metric] if t > start]
        if not values:
            return None, None, gate.limit / 1000.0, "ms"
        histogram = hdr.new_histogram()
        for value in values:
            hdr.record_us(histogram, value)
        if gate.percentile is not None:
            value_us = float(hdr.percentiles(histogram, [gate.percentile])[gate.percentile])
        else:
            summary = hdr.summarize(histogram)
            value_us = float(summary[{"max": "max_us", "min": "min_us", "mean": "mean_us"}[gate.stat]])
        return value_us / 1000.0, not gate.holds(value_us), gate.limit / 1000.0, "ms"
