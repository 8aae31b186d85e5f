"""The evidence a comparison may use: each side's runs without warm-up, last second and stalled seconds.

Prepared once and frozen, so that every estimator and rule judges the very same seconds and runs. In the
open model a second in which the load generator itself fell behind its schedule (``send_lag`` p95 beyond
the stall limit) measured the neighbours on a shared runner, not the build: it is dropped, and a run left
with too few quiet seconds is not usable at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reports.data import RunData
from reports.errors import ReportError
from reports.thresholds import Thresholds
from runstore.names import METRIC_CONNECT, METRIC_SEND_LAG

__all__ = ["COOLDOWN_S", "STALL_FLOOR_US", "Evidence", "gather_evidence", "metric_names"]

COOLDOWN_S = 1.0
"""Seconds dropped at the end of each run (the last second is usually partial)."""
STALL_FLOOR_US = 1000.0
"""The relative stall limit is never below 1 ms."""


@dataclass(frozen=True)
class Evidence:
    """Both sides' usable runs: ``kept_*`` (warm-up, last second and stalls dropped) and ``whole_*`` (the
    same runs uncut), index by index; with ``paired``, baseline run i and candidate run i make pair i."""

    kept_b: tuple[RunData, ...]
    whole_b: tuple[RunData, ...]
    kept_c: tuple[RunData, ...]
    whole_c: tuple[RunData, ...]
    notes: tuple[str, ...]
    paired: bool

    @property
    def one_run_each(self) -> bool:
        """No side has more than one run: intervals from the bootstrap over seconds; otherwise over runs."""
        return len(self.whole_b) <= 1 and len(self.whole_c) <= 1

    def judged_over(self, metric: str | None) -> tuple[list[RunData], list[RunData]]:
        """Both sides' data a latency metric is judged on: the kept seconds, except ``connect`` (the whole
        runs: handshakes happen during the ramp-up, and the warm-up would leave none)."""
        if metric == METRIC_CONNECT:
            return list(self.whole_b), list(self.whole_c)
        return list(self.kept_b), list(self.kept_c)


def metric_names(metrics: set[str]) -> str:
    """``a, b, c`` (or ``none``), for messages."""
    return ", ".join(sorted(metrics)) or "none"


def gather_evidence(bases: Sequence[RunData], cands: Sequence[RunData], th: Thresholds) -> Evidence:
    """Check both sides measure the same things, cut every run to what may be judged and drop what is not
    usable (with paired runs, a pair loses both runs).

    Raises:
        ReportError: no candidate run, message types present on one side only, nothing left after the
            warm-up, a lone run (or every run of a side) not usable evidence, too few pairs.
    """
    bases, cands = list(bases), list(cands)
    if not cands:
        raise ReportError("no candidate run")
    _check_types(bases, cands)
    notes: list[str] = []
    if th.paired:
        bases, cands = _in_pairs(bases, cands, notes)
    pairs = list(zip(bases, cands, strict=True)) if th.paired else []
    kept_c = [run.window(th.warmup_s, COOLDOWN_S) for run in cands]
    kept_b = [run.window(th.warmup_s, COOLDOWN_S) for run in bases]
    limit = _stall_limit(kept_b + kept_c, th)
    kept_c, cands = _usable(kept_c, cands, "candidate", limit, th, notes)
    kept_b, bases = _usable(kept_b, bases, "baseline", limit, th, notes)
    if th.paired:
        kept_b, bases, kept_c, cands = _whole_pairs(pairs, kept_b, bases, kept_c, cands, notes)
    return Evidence(tuple(kept_b), tuple(bases), tuple(kept_c), tuple(cands), tuple(notes), th.paired)


def _check_types(bases: list[RunData], cands: list[RunData]) -> None:
    """Every run must measure the same message types: a gate cannot compare what one side lacks."""
    for role, runs in (("baseline", bases), ("candidate", cands)):
        first = set(runs[0].metrics) if runs else set()
        for run in runs[1:]:
            if set(run.metrics) != first:
                raise ReportError(
                    f"the {role} runs differ in message types ({runs[0].label}: {metric_names(first)}; "
                    f"{run.label}: {metric_names(set(run.metrics))})"
                )
    if not bases:
        return
    b, c = set(bases[0].metrics), set(cands[0].metrics)
    if b != c:
        parts = []
        if b - c:
            parts.append(f"only in the baseline: {', '.join(sorted(b - c))}")
        if c - b:
            parts.append(f"only in the candidate: {', '.join(sorted(c - b))}")
        raise ReportError(f"message types present in only one run ({'; '.join(parts)})")


def _stall_limit(runs: list[RunData], th: Thresholds) -> float | None:
    """Per-second ``send_lag`` p95 above which a second counts as stalled, or ``None`` (no filter).

    ``stall_lag`` caps it; with ``stall_factor`` it is also at most that factor times the quiet level: the
    lower of the runs' median per-second ``send_lag`` p95 (never below :data:`STALL_FLOOR_US`).
    """
    if th.stall_lag_us is None:
        return None
    levels = [
        float(data.metric_rows(METRIC_SEND_LAG)["p95_us"].median())
        for data in runs
        if METRIC_SEND_LAG in data.metrics
    ]
    if not levels:
        return None
    if th.stall_factor is None:
        return th.stall_lag_us
    return min(th.stall_lag_us, max(th.stall_factor * min(levels), STALL_FLOOR_US))


def _without_stalls(
    data: RunData, role: str, limit_us: float | None, th: Thresholds, notes: list[str]
) -> RunData:
    """Drop the seconds where the open-model generator fell behind its schedule (``send_lag`` p95)."""
    if limit_us is None or METRIC_SEND_LAG not in data.metrics:
        return data
    lag = data.metric_rows(METRIC_SEND_LAG)
    stalled = {int(t) for t in lag.loc[lag["p95_us"] > limit_us, "t"]}
    quiet = data.duration_s - len(stalled)
    if quiet < th.min_quiet_seconds:
        raise ReportError(
            f"the {role} {data.label} is not usable evidence: its load generator fell behind its schedule "
            f"(send_lag p95 > {limit_us / 1000:.3g} ms) in {len(stalled)} of {data.duration_s} seconds, "
            "so the machine, not the build, set its latencies; rerun it on a quieter machine"
        )
    if stalled:
        notes.append(
            f"{role}: {len(stalled)} of {data.duration_s} seconds excluded, the load generator stalled "
            f"(send_lag p95 > {limit_us / 1000:.3g} ms)"
        )
    return data.without_seconds(stalled)


def _usable(
    kept: list[RunData], whole: list[RunData], role: str, limit_us: float | None, th: Thresholds,
    notes: list[str],
) -> tuple[list[RunData], list[RunData]]:  # fmt: skip
    """Drop stalled seconds from every run; with several runs, drop a run that is not usable evidence.

    A lone run that is not usable is an error (exit 2): nothing is left to judge that side on.
    """
    left: list[tuple[RunData, RunData]] = []
    problem: ReportError | None = None
    for k, w in zip(kept, whole, strict=True):
        try:
            left.append((_without_stalls(k, role, limit_us, th, notes), w))
        except ReportError as exc:
            problem = exc
            if len(kept) > 1:
                notes.append(f"{role} {w.label} dropped: {exc}")
    if not left and problem is not None:
        raise problem
    return [k for k, _ in left], [w for _, w in left]


def _in_pairs(
    bases: list[RunData], cands: list[RunData], notes: list[str]
) -> tuple[list[RunData], list[RunData]]:
    """Both sides in the order they ran, so that baseline run i and candidate run i make pair i.

    Pairing cancels what drifts between pairs only if the two builds took turns (A B A B ...): a note says
    when they did not.
    """
    if len(bases) != len(cands) or len(bases) < 2:
        raise ReportError(
            f"paired comparison needs two or more pairs: as many baseline runs as candidate runs, not "
            f"{len(bases)} + {len(cands)}"
        )
    bases, cands = sorted(bases, key=lambda run: run.start), sorted(cands, key=lambda run: run.start)
    firsts = [min(b.start, c.start) for b, c in zip(bases, cands, strict=True)]
    lasts = [max(b.start, c.start) for b, c in zip(bases, cands, strict=True)]
    if any(last > first for last, first in zip(lasts, firsts[1:], strict=False)):
        notes.append(
            "paired runs did not take turns (baseline, candidate, baseline, ...): "
            "pairs cancel less of what drifted between runs"
        )
    return bases, cands


def _whole_pairs(
    pairs: list[tuple[RunData, RunData]], kept_b: list[RunData], bases: list[RunData], kept_c: list[RunData],
    cands: list[RunData], notes: list[str],
) -> tuple[list[RunData], list[RunData], list[RunData], list[RunData]]:  # fmt: skip
    """The pairs whose two runs are both usable: a run dropped as stalled takes its partner with it."""
    usable_b = {id(whole): kept for kept, whole in zip(kept_b, bases, strict=True)}
    usable_c = {id(whole): kept for kept, whole in zip(kept_c, cands, strict=True)}
    left = []
    for b, c in pairs:
        if id(b) in usable_b and id(c) in usable_c:
            left.append((b, c))
        elif id(b) in usable_b or id(c) in usable_c:
            notes.append(f"{b.label} / {c.label}: pair dropped with its stalled run")
    if len(left) < 2:
        raise ReportError(f"fewer than 2 pairs of usable runs ({len(left)} left after dropping stalled runs)")
    return (
        [usable_b[id(b)] for b, _ in left],
        [b for b, _ in left],
        [usable_c[id(c)] for _, c in left],
        [c for _, c in left],
    )
