"""What drove a run, in words: a ``LoadTestShape`` (its class, stage table, observed peak) or ``-u`` / ``-r``.

With a shape Locust's ``-u`` / ``-r`` are not what ran (the store keeps them null), so the report header and
the monitor's run picker describe the shape instead. Pure: a run's ``options`` and ``summary`` in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LoadDescription", "describe_load", "stages_text"]


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _plain(value: float) -> str:
    return f"{value:g}"


def stages_text(stages: Any) -> str:
    """A stage table in one line: ``to 3 s: 2 users @10/s · to 8 s: 4 users @10/s``.

    Locust's stage ``duration`` is the run time at which the stage ends; entries without ``users`` are shown
    as they are. Empty for no table.
    """
    if not isinstance(stages, list | tuple) or not stages:
        return ""
    parts = []
    for stage in stages:
        if not isinstance(stage, Mapping):
            parts.append(str(stage))
            continue
        users, until, rate = (_number(stage.get(k)) for k in ("users", "duration", "spawn_rate"))
        if users is None:
            parts.append(", ".join(f"{k}={v}" for k, v in stage.items()))
            continue
        text = f"{_plain(users)} users"
        if until is not None:
            text = f"to {_plain(until)} s: {text}"
        if rate is not None:
            text += f" @{_plain(rate)}/s"
        parts.append(text)
    return " · ".join(parts)


@dataclass(frozen=True)
class LoadDescription:
    """How a run's load was set, as the report header and the run picker show it."""

    shape_class: str | None
    """The ``LoadTestShape``'s class name; ``None``: an ordinary ``-u`` / ``-r`` run."""
    stages: str
    """The shape's stage table in one line (:func:`stages_text`); empty without one."""
    peak_users: int | None
    """Observed peak users (``summary.peak_users``); for ordinary runs ``-u`` when no summary says more."""
    users: int | None
    """``-u`` (``None`` for shape runs, whose ``-u`` did not drive the run)."""
    spawn_rate: float | None
    """``-r``."""

    @property
    def short(self) -> str:
        """One short phrase: ``TwoSteps shape, peak 4 users`` or ``-u 3 -r 1``."""
        if self.shape_class is not None:
            peak = "" if self.peak_users is None else f", peak {self.peak_users:,} users"
            return f"{self.shape_class} shape{peak}"
        parts = []
        if self.users is not None:
            parts.append(f"-u {self.users:,}")
        if self.spawn_rate is not None:
            parts.append(f"-r {_plain(self.spawn_rate)}")
        return " ".join(parts)


def describe_load(options: Mapping[str, Any] | None, summary: Mapping[str, Any] | None) -> LoadDescription:
    """Read how a stored run's load was set from its ``options`` and (when it ended) ``summary``."""
    options = options or {}
    summary = summary or {}
    peak = _number(summary.get("peak_users"))
    shape = options.get("shape")
    if isinstance(shape, Mapping) and shape.get("class"):
        use_common = bool(shape.get("use_common_options"))
        users = _number(options.get("num_users")) if use_common else None
        rate = _number(options.get("spawn_rate")) if use_common else None
        return LoadDescription(
            shape_class=str(shape["class"]),
            stages=stages_text(shape.get("stages")),
            peak_users=None if peak is None else int(peak),
            users=None if users is None else int(users),
            spawn_rate=rate,
        )
    users = _number(options.get("users", options.get("num_users")))
    rate = _number(options.get("spawn_rate"))
    return LoadDescription(
        shape_class=None,
        stages="",
        peak_users=int(peak) if peak is not None else (None if users is None else int(users)),
        users=None if users is None else int(users),
        spawn_rate=rate,
    )
