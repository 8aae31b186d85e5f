"""The release gate: compare a candidate run with a baseline, rule by rule, without crying wolf.

:func:`evaluate_gate` is pure: two :class:`~reports.data.RunData` snapshots and :class:`Thresholds` in, a
frozen :class:`GateResult` out. Rendering it (table, HTML, JSON, JUnit) is another module's job. Its parts,
in the order data flows through them:

* :mod:`~reports.gate.evidence` -- each side's usable runs, frozen: warm-up and last second cut, seconds
  where the open-model generator stalled dropped, unusable runs (and their pair partners) dropped;
* :mod:`~reports.gate.estimators` -- each quantity (latency percentile, error rate, throughput) on both
  sides with the confidence interval of its change: over seconds with one run per side, over runs
  otherwise (the choice is made once per comparison);
* :mod:`~reports.gate.judge` -- a relative rule fails only with a practical effect (beyond tolerance and,
  for latency, an absolute floor) *and* an interval that excludes no change (``docs/reports.md``);
* :mod:`~reports.gate.absolute` -- limits on the candidate alone, usable without a baseline;
* :mod:`~reports.gate.result` -- the frozen outcome.
"""

from reports.gate.absolute import resolve_metric
from reports.gate.estimators import MIN_SAMPLES, MIN_TAIL_SAMPLES, MIN_THROUGHPUT_FRAMES
from reports.gate.evaluate import evaluate_gate
from reports.gate.evidence import COOLDOWN_S, STALL_FLOOR_US
from reports.gate.result import GateResult, RuleResult, Status, Verdict

__all__ = [
    "COOLDOWN_S",
    "MIN_SAMPLES",
    "MIN_TAIL_SAMPLES",
    "MIN_THROUGHPUT_FRAMES",
    "STALL_FLOOR_US",
    "GateResult",
    "RuleResult",
    "Status",
    "Verdict",
    "evaluate_gate",
    "resolve_metric",
]
