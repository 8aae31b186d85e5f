"""What the gate decided: each rule's outcome and the verdict, frozen and JSON-ready."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["GateResult", "RuleResult", "Status", "Verdict"]

Status = Literal["pass", "regression", "improved", "skipped"]
Verdict = Literal["pass", "regression", "inconclusive"]


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
    samples: int | None = None
    """The evidence the rule had in the run with the least (in ``sample_unit``: samples, frames ...)."""
    min_samples: int | None = None
    """The least evidence the rule is judged on; fewer: ``skipped``."""
    sample_unit: str | None = None
    run_s_needed: float | None = None
    """Skipped: roughly how long a run (warm-up included) at the observed rate would give ``min_samples``
    (``None``: a longer run would not help, e.g. ``connect``: one sample per connection)."""
    optional: bool = False
    """Marked optional in the thresholds: skipped, it does not make the verdict inconclusive."""

    @property
    def unjudged(self) -> bool:
        """Skipped and not optional: the comparison is inconclusive (unless inconclusive is allowed)."""
        return self.status == "skipped" and not self.optional

    @property
    def evidence_text(self) -> str:
        """``4900 (≥ 200)`` -- what the rule had and needs, for the verdict table."""
        if self.min_samples is None:
            return "-"
        return f"{'-' if self.samples is None else self.samples} (≥ {self.min_samples})"

    @property
    def hint(self) -> str:
        """For a skipped rule: how to get the evidence it lacks, where that can be said (else ``""``)."""
        if self.run_s_needed is not None:
            seconds = f"{self.run_s_needed:.0f} s"
            return f"at the observed rate a run of ≈ {seconds} (warm-up included) would give them"
        if self.subject == "connect" and self.sample_unit == "samples" and self.min_samples:
            return f"one sample per connection: a run with ≥ {self.min_samples} connections would give them"
        return ""

    @property
    def shortfall(self) -> str:
        """For a skipped rule: what it had, what it needs and how long a run would give it."""
        unit = self.sample_unit or "samples"
        had = f"{self.samples} of {self.min_samples} {unit} needed" if self.min_samples else "not judged"
        return f"{had}; {self.hint}" if self.hint else had

    @property
    def why(self) -> str:
        """The reason, and for a skipped rule how to get what it lacks."""
        return f"{self.reason}; {self.hint}" if self.status == "skipped" and self.hint else self.reason


@dataclass(frozen=True)
class GateResult:
    """The verdict and every rule's outcome.

    ``method`` says what the confidence intervals measure: ``bootstrap`` (one run per side: the seconds of
    each run resampled; noise within a run) or ``runs`` (several runs on a side: a Student-t interval over
    the runs' statistics; noise between runs). ``baseline`` / ``candidate`` describe the first run of each
    side, ``baseline_runs`` / ``candidate_runs`` every run judged.
    """

    verdict: Verdict
    """``regression`` if any rule failed; else ``inconclusive`` if any rule that is not optional could not be
    judged (unless ``allow_inconclusive``); else ``pass``."""
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
    allow_inconclusive: bool = False
    """Rules that could not be judged were let pass (``--allow-inconclusive``)."""

    @property
    def regressions(self) -> tuple[RuleResult, ...]:
        """The rules that failed."""
        return tuple(rule for rule in self.rules if rule.status == "regression")

    @property
    def unjudged(self) -> tuple[RuleResult, ...]:
        """The rules that could not be judged and are not optional."""
        return tuple(rule for rule in self.rules if rule.unjudged)

    @property
    def summary(self) -> str:
        """``2 of 32 rules failed`` / ``3 of 32 rules could not be judged`` / ``0 of 32 rules failed``."""
        if self.verdict == "inconclusive":
            return f"{len(self.unjudged)} of {len(self.rules)} rules could not be judged"
        allowed = (
            f", {len(self.unjudged)} not judged (allowed)"
            if self.unjudged and self.allow_inconclusive
            else ""
        )
        return f"{len(self.regressions)} of {len(self.rules)} rules failed{allowed}"

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
        result["rules"] = [
            {**asdict(rule), "shortfall": rule.shortfall if rule.status == "skipped" else None}
            for rule in self.rules
        ]
        result["unjudged"] = [rule.rule for rule in self.unjudged]
        return result
