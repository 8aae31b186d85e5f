"""What the gate decided: each rule's outcome and the verdict, frozen and JSON-ready."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["GateResult", "RuleResult", "Status"]

Status = Literal["pass", "regression", "improved", "skipped"]


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome.

    ``change`` is the candidate / baseline ratio (latency, throughput) or the difference in percentage points
    (error rate); ``interval`` its confidence interval. With several runs on a side, ``baseline`` and
    ``candidate`` are the geometric means of the runs' statistics (arithmetic means for error rates) and
    ``baseline_runs`` / ``candidate_runs`` hold each run's value.
    """

    rule: str
    kind: Literal["relative", "absolute"]
    subject: str
    stat: str
    unit: str
    baseline: float | None
    candidate: float | None
    change: float | None
    interval: tuple[float, float] | None
    limit: str
    status: Status
    reason: str
    baseline_runs: tuple[float, ...] | None = None
    candidate_runs: tuple[float, ...] | None = None
    unconfirmed: bool = False
    """A pass with a change beyond the limit that the confidence interval could not confirm."""
    runs_needed: int | None = None
    """Unconfirmed over runs: the runs a side that would confirm it 9 times in 10 (None: over 100)."""


@dataclass(frozen=True)
class GateResult:
    """The verdict and every rule's outcome.

    ``method`` says what the confidence intervals measure: ``bootstrap`` (one run per side: the seconds of
    each run resampled; noise within a run) or ``runs`` (several runs on a side: a Student-t interval over
    the runs' statistics; noise between runs). ``baseline`` / ``candidate`` describe the first run of each
    side, ``baseline_runs`` / ``candidate_runs`` every run judged.
    """

    verdict: Literal["pass", "regression"]
    rules: tuple[RuleResult, ...]
    baseline: Mapping[str, Any] | None
    candidate: Mapping[str, Any]
    warmup_s: float
    confidence: float
    resamples: int
    notes: tuple[str, ...] = field(default=())
    method: Literal["bootstrap", "runs"] = "bootstrap"
    baseline_runs: tuple[Mapping[str, Any], ...] = field(default=())
    candidate_runs: tuple[Mapping[str, Any], ...] = field(default=())
    paired: bool = False
    """Over runs, in pairs: baseline run i with candidate run i, in the order they ran."""

    @property
    def regressions(self) -> tuple[RuleResult, ...]:
        """The rules that failed."""
        return tuple(rule for rule in self.rules if rule.status == "regression")

    @property
    def method_text(self) -> str:
        """``95% bootstrap CI, 2000 resamples``, ``95% t intervals over 5 + 5 runs`` or ``95% paired t
        intervals over 5 pairs of runs``, for people."""
        if self.method == "runs" and self.paired:
            return f"{self.confidence:.0%} paired t intervals over {len(self.baseline_runs)} pairs of runs"
        if self.method == "runs":
            return (
                f"{self.confidence:.0%} t intervals over {len(self.baseline_runs)} + "
                f"{len(self.candidate_runs)} runs"
            )
        return f"{self.confidence:.0%} bootstrap CI, {self.resamples} resamples"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (``--json``)."""
        result = asdict(self)
        result["rules"] = [asdict(rule) for rule in self.rules]
        return result
