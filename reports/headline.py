"""The headline of a report: whether the run was healthy, in the numbers a reader looks for first.

Before any chart a report says, per key message type, p50 / p99 and the error rate; peak users; messages sent
and received; and the verdict of the built-in health rules (:data:`HEALTH_RULES`), judged by the gate's own
absolute rules (:func:`reports.gate.evaluate_gate` without a baseline), so that the headline and
``reports check`` can never disagree about the same rule. Pure: a :class:`~reports.data.RunData` in, a
:class:`Headline` out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from charts.health import GeneratorHealth
from charts.load import LoadDescription, describe_load
from reports.data import RunData, error_rates, latency_summary
from reports.errors import ReportError
from reports.gate import evaluate_gate
from reports.gate.generator import run_health
from reports.thresholds import Thresholds, parse_absolute_rule
from runstore.names import (
    COUNTER_RECEIVED,
    COUNTER_SENT,
    METRIC_ACK_PREFIX,
    METRIC_SEND_LAG,
    request_type,
    state_gauge,
)

__all__ = ["HEALTH_RULES", "MAX_TYPES", "Headline", "RuleLine", "TypeLine", "headline", "key_metrics"]

HEALTH_RULES: Final = ("errors.rate < 1%", "{metric}.p99 < 250ms")
"""The built-in absolute rules of the headline: under 1 % errors over all request types, and a p99 under
250 ms for every key metric (``{metric}`` is filled in). A release gate sets its own in a thresholds file."""
MAX_TYPES: Final = 8
"""Key message types shown at most (acks first)."""


@dataclass(frozen=True)
class TypeLine:
    """One key message type: samples, p50 / p99 (µs) over the whole run, its request type's errors."""

    metric: str
    count: int
    p50_us: int
    p99_us: int
    error_rate: float | None
    """Errors / requests of ``request_type(metric)``; ``None`` for metrics that answer no request."""


@dataclass(frozen=True)
class RuleLine:
    """One built-in rule as judged: its text, ``pass`` / ``regression`` / ..., and why."""

    rule: str
    status: str
    reason: str


@dataclass(frozen=True)
class Headline:
    """The five-second summary of a run."""

    label: str
    duration_s: int
    peak_users: int | None
    """Most users connected in one second (in one window's mean for a report of a long run)."""
    sent: int
    received: int
    errors: int
    error_rate: float
    """All errors / all requests of the run (0 when nothing was requested)."""
    types: tuple[TypeLine, ...]
    verdict: str
    """``pass`` (healthy), ``regression`` (a rule broken) or ``not judged``."""
    rules: tuple[RuleLine, ...]
    note: str = ""
    """Why the rules could not be judged, when they could not."""
    load: LoadDescription = field(default_factory=lambda: describe_load(None, None))
    """How the load was set: a shape (class, stages) or ``-u`` / ``-r``."""
    health: GeneratorHealth | None = None
    """The load generator's own health over the run; ``None`` for runs recorded without it."""
    incomplete: str | None = None
    """Why the run lacks some worker's last samples (its summary's ``incomplete``); ``None`` when complete."""


def key_metrics(data: RunData) -> list[str]:
    """The run's latency metrics in reading order (acks first, ``connect`` last), ``send_lag`` left out."""
    metrics = [m for m in data.metrics if m != METRIC_SEND_LAG]
    ordered = sorted(metrics, key=lambda m: (not m.startswith(METRIC_ACK_PREFIX), m == "connect", m))
    return ordered[:MAX_TYPES]


def _peak_users(data: RunData) -> int | None:
    rows = data.gauges[data.gauges["name"] == state_gauge("connected")]
    if not rows.empty:  # a row sums its seconds: per second at resolution 1, a window's mean beyond
        return round(float(np.nanmax(rows["sum"].to_numpy(dtype=np.float64))) / data.resolution)
    options = data.run.get("options") or {}
    users = options.get("users", options.get("num_users"))
    return int(users) if isinstance(users, int | float) and not isinstance(users, bool) else None


def _verdict(data: RunData, metrics: list[str]) -> tuple[str, tuple[RuleLine, ...], str]:
    texts = [HEALTH_RULES[0]] + [HEALTH_RULES[1].format(metric=m) for m in metrics if m != "connect"]
    try:
        rules = tuple(parse_absolute_rule(text, source="built-in rule") for text in texts)
        result = evaluate_gate(None, data, Thresholds(absolute=rules))
    except ReportError as exc:
        return "not judged", (), str(exc)
    lines = tuple(RuleLine(r.rule, r.status, r.reason) for r in result.rules)
    return str(result.verdict), lines, ""


def headline(data: RunData) -> Headline:
    """Read the headline of a run (percentiles off merged histograms, errors per request type).

    Raises:
        ReportError: a damaged histogram.
    """
    rates = error_rates(data)
    metrics = key_metrics(data)
    types = []
    for metric in metrics:
        summary = latency_summary(data, metric)
        kind = request_type(metric)
        rate = rates.get(kind) if kind else None
        types.append(
            TypeLine(
                metric=metric,
                count=int(summary["count"]),
                p50_us=int(summary["p50_us"]),
                p99_us=int(summary["p99_us"]),
                error_rate=None if rate is None else float(rate["rate"]),
            )
        )
    errors = sum(int(r["errors"]) for r in rates.values())
    requests = sum(int(r["requests"]) for r in rates.values())
    verdict, rules, note = _verdict(data, metrics)
    return Headline(
        label=data.label,
        duration_s=data.duration_s,
        peak_users=_peak_users(data),
        sent=int(data.counter_totals(COUNTER_SENT).sum()),
        received=int(data.counter_totals(COUNTER_RECEIVED).sum()),
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        types=tuple(types),
        verdict=verdict,
        rules=rules,
        note=note,
        load=describe_load(data.run.get("options"), data.run.get("summary")),
        health=run_health(data),
        incomplete=(data.run.get("summary") or {}).get("incomplete"),
    )
