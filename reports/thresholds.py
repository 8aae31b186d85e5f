"""Gate thresholds: a TOML file of relative rules (baseline vs candidate) and absolute limits.

Example (every table and key is optional; what is left out keeps its default)::

    [gate]
    warmup = "5s"            # seconds excluded at the start of both runs
    stall_lag = "5ms"        # open model: drop seconds whose send_lag p95 is above (false: keep all)
    stall_factor = 2         # ... or above 2x the quiet level (lower median of the runs; false: off)
    min_quiet_seconds = 3    # fewer seconds left: the run is unusable evidence
    confidence = 0.95        # two-sided confidence intervals
    resamples = 2000         # bootstrap (one run per side)
    seed = 1
    single_run_allowance = "5%"   # added to latency tolerances when each side is ONE run (see below)
    paired = false           # several runs a side that took turns (A B A B ...): judge pair by pair

    [defaults]               # relative rules for every message type
    p50 = { tolerance = "10%", floor = "0.1ms" }
    p95 = { tolerance = "20%", floor = "0.25ms" }
    p99 = { tolerance = "20%", floor = "0.5ms" }
    error_rate = { tolerance = "0.5%" }     # percentage points of errors per request
    throughput = { tolerance = "10%" }      # drop of frames sent per second

    [types.chat_message]     # per-type overrides: a metric (ack:chat_message) or its short name
    p99 = { tolerance = "15%", floor = "0.5ms" }
    p95 = false              # switch a rule off for this type
    error_rate = { tolerance = "1%", optional = true }   # unjudged (too few samples): no INCONCLUSIVE

    [absolute]               # k6 / Gatling style limits on the candidate; usable without a baseline
    rules = ["chat_message.p99 < 50ms", "errors.rate < 0.1%",
             { rule = "connect.p95 < 200ms", optional = true }]

A rule that could not be judged (too few samples) makes the verdict INCONCLUSIVE unless it is ``optional``
(or the gate runs with ``allow_inconclusive``: ``compare --allow-inconclusive``).

Tolerances are the practical effect a regression must exceed. With several runs on a side the confidence
interval measures how runs of one build differ; with one run per side it cannot, so latency tolerances grow
by ``single_run_allowance`` (p50 then needs +15 %, p95 and p99 +25 %). ``paired`` (or ``compare
--paired``) pairs baseline run i with candidate run i in the order they ran and judges the pairs'
differences, so that drift between pairs (another hour, another day, a busy neighbour) cancels.

Short names: ``chat_message`` means the latency metric ``ack:chat_message`` when the run has it, otherwise the
metric of that exact name (``pong``, ``connect``, ``delivery:chat``). Error and throughput rules belong to
request types (``chat_message``, ``ping``, ``connect``); a metric name maps to its request type
(``pong`` -> ``ping``).

Errors name the line and the problem (:class:`ThresholdsError`).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from reports.errors import ReportError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "AbsoluteRule",
    "LatencyRule",
    "RateRule",
    "RelativeRules",
    "Thresholds",
    "ThresholdsError",
    "load_thresholds",
    "parse_absolute_rule",
    "parse_thresholds",
]

Comparison = Literal["<", "<=", ">", ">="]
Quantity = Literal["latency", "error_rate", "throughput"]


class ThresholdsError(ReportError):
    """A thresholds file that does not parse; ``str()`` names the file, the line and the problem."""


@dataclass(frozen=True)
class LatencyRule:
    """A percentile must not grow by more than ``tolerance`` (ratio - 1) *and* ``floor_us`` to fail."""

    stat: str
    percentile: float
    tolerance: float
    floor_us: float
    optional: bool = False
    """Too few samples to judge it leaves the verdict as it is instead of making it INCONCLUSIVE."""


@dataclass(frozen=True)
class RateRule:
    """Error rate: fail beyond ``tolerance`` (a fraction: percentage points); throughput: a drop beyond it."""

    tolerance: float
    optional: bool = False
    """Too few requests or frames to judge it leaves the verdict as it is (no INCONCLUSIVE)."""


@dataclass(frozen=True)
class RelativeRules:
    """The relative rules of one message type (or the defaults)."""

    latency: tuple[LatencyRule, ...]
    error_rate: RateRule | None
    throughput: RateRule | None


@dataclass(frozen=True)
class AbsoluteRule:
    """``<subject>.<stat> <op> <limit>``, checked on the candidate alone.

    ``subject`` is a metric or request type (``None``: all of them, for ``errors.rate``). ``limit`` is in
    microseconds for latency, a fraction for error rates, frames per second for throughput.
    """

    text: str
    line: int | None
    subject: str | None
    quantity: Quantity
    stat: str
    percentile: float | None
    op: Comparison
    limit: float
    optional: bool = False
    """Too few samples to judge it leaves the verdict as it is (no INCONCLUSIVE)."""

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the rule."""
        return {
            "<": value < self.limit,
            "<=": value <= self.limit,
            ">": value > self.limit,
            ">=": value >= self.limit,
        }[self.op]


@dataclass(frozen=True)
class Thresholds:
    """Everything the gate needs besides the two runs."""

    warmup_s: float = 5.0
    stall_lag_us: float | None = 5_000.0
    """Open model: seconds whose ``send_lag`` p95 exceeds this are excluded (the generator stalled; ``None``:
    keep every second)."""
    stall_factor: float | None = 2.0
    """Open model: a second also counts as stalled beyond this factor times the quiet level of ``send_lag``
    (the lower of both runs' median per-second p95; ``None``: only ``stall_lag``)."""
    min_quiet_seconds: int = 3
    """Fewer seconds left than this after excluding stalls: the run is not usable evidence."""
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 1
    single_run_allowance: float = 0.05
    """Added to every latency tolerance when each side is one run: the between-run noise that one pair of
    runs cannot measure (medians of 14 s runs of one build differ by ~6 % here, ``docs/performance.md``).
    With several runs on a side the t interval measures that noise and the tolerances apply as written."""
    paired: bool = False
    """Several runs a side that took turns: baseline run i and candidate run i (in the order they ran) make
    a pair, and the t interval is over the pairs' differences (drift between pairs cancels)."""
    allow_inconclusive: bool = False
    """A rule that could not be judged passes instead of making the verdict INCONCLUSIVE (``compare
    --allow-inconclusive``): for those who accept a gate that judged less than it was asked to."""
    defaults: RelativeRules = field(
        default_factory=lambda: RelativeRules(
            latency=(
                LatencyRule("p50", 50.0, 0.10, 100.0),
                LatencyRule("p95", 95.0, 0.20, 250.0),
                LatencyRule("p99", 99.0, 0.20, 500.0),
            ),
            error_rate=RateRule(0.005),
            throughput=RateRule(0.10),
        )
    )
    overrides: Mapping[str, RelativeRules] = field(default_factory=dict)
    absolute: tuple[AbsoluteRule, ...] = ()

    def rules_for(self, *names: str | None) -> RelativeRules:
        """The relative rules of a type: its override (first of ``names`` that has one) or the defaults."""
        for name in names:
            if name is not None and name in self.overrides:
                return self.overrides[name]
        return self.defaults

    def with_warmup(self, warmup_s: float | None) -> Thresholds:
        """A copy with another warm-up (``None`` keeps this one)."""
        return self if warmup_s is None else replace(self, warmup_s=float(warmup_s))


DEFAULT_THRESHOLDS = Thresholds()

_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_DURATION_RE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>us|µs|ms|s|m)?\s*$")
_FRACTION_RE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>%)?\s*$")
_RULE_RE = re.compile(
    rf"^\s*(?P<path>[A-Za-z0-9_:.\-]+)\s*(?P<op><=|>=|<|>)\s*(?P<num>{_NUMBER})\s*(?P<unit>us|µs|ms|s|%|/s)?\s*$"
)
_STAT_RE = re.compile(r"^(?P<subject>.+)\.(?P<stat>p[0-9]+(?:\.[0-9]+)?|max|mean|min|rate|throughput)$")
_US_PER = {"us": 1.0, "µs": 1.0, "ms": 1000.0, "s": 1_000_000.0, "m": 60_000_000.0}
_PERCENTILE_STAT = re.compile(r"^p(?P<p>[0-9]+(?:\.[0-9]+)?)$")


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


class _Context:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text

    def error(self, needle: str | None, problem: str) -> ThresholdsError:
        line = _line_of(self.text, needle) if needle else None
        where = f"{self.source} line {line}" if line else self.source
        return ThresholdsError(f"{where}: {problem}")


def _duration_us(value: Any, what: str, ctx: _Context, needle: str, *, bare_unit: str = "ms") -> float:
    if isinstance(value, bool):
        raise ctx.error(needle, f"{what} must be a duration like '0.5ms', not {value!r}")
    if isinstance(value, int | float):
        return float(value) * _US_PER[bare_unit]
    match = _DURATION_RE.match(str(value))
    if match is None:
        raise ctx.error(needle, f"{what} must be a duration like '0.5ms' or '2s', not {value!r}")
    return float(match["num"]) * _US_PER[match["unit"] or bare_unit]


def _fraction(value: Any, what: str, ctx: _Context, needle: str) -> float:
    if isinstance(value, bool):
        raise ctx.error(needle, f"{what} must be a percentage like '10%', not {value!r}")
    if isinstance(value, int | float):
        result = float(value)
    else:
        match = _FRACTION_RE.match(str(value))
        if match is None:
            raise ctx.error(needle, f"{what} must be a percentage like '10%' or a fraction, not {value!r}")
        result = float(match["num"]) / (100.0 if match["unit"] else 1.0)
    if not math.isfinite(result) or result < 0:
        raise ctx.error(needle, f"{what} must be a non-negative percentage, not {value!r}")
    return result


def _percentile_of(stat: str) -> float | None:
    match = _PERCENTILE_STAT.match(stat)
    if match is None:
        return None
    value = float(match["p"])
    return value if 0 < value < 100 else None


_RULE_KEYS = {"tolerance", "floor", "optional"}


def _optional(value: Mapping[str, Any], old: bool, ctx: _Context, needle: str, section: str) -> bool:
    if "optional" not in value:
        return old
    if not isinstance(value["optional"], bool):
        raise ctx.error(
            needle, f"[{section}] {needle}: optional must be true or false, not {value['optional']!r}"
        )
    return value["optional"]


def _relative(table: Mapping[str, Any], base: RelativeRules, ctx: _Context, section: str) -> RelativeRules:
    latency = {rule.stat: rule for rule in base.latency}
    error_rate, throughput = base.error_rate, base.throughput
    for key, value in table.items():
        needle = f"{key}"
        if value is False:
            if key == "error_rate":
                error_rate = None
            elif key == "throughput":
                throughput = None
            elif _percentile_of(key) is not None:
                latency.pop(key, None)
            else:
                raise ctx.error(
                    needle, f"[{section}] unknown rule {key!r} (p50, p95, p99 ..., error_rate, throughput)"
                )
            continue
        if not isinstance(value, dict):
            raise ctx.error(
                needle, f'[{section}] {key} must be a table like {{ tolerance = "10%" }} or false'
            )
        unknown = set(value) - _RULE_KEYS
        if unknown:
            raise ctx.error(
                needle, f"[{section}] {key}: unknown setting {sorted(unknown)[0]!r} (tolerance, floor)"
            )
        if key in ("error_rate", "throughput"):
            if "floor" in value:
                raise ctx.error(needle, f"[{section}] {key} takes only a tolerance")
            old = error_rate if key == "error_rate" else throughput
            tolerance = (
                _fraction(value["tolerance"], f"{key} tolerance", ctx, needle)
                if "tolerance" in value
                else (old.tolerance if old else DEFAULT_THRESHOLDS.defaults.error_rate.tolerance)  # type: ignore[union-attr]
            )
            optional = _optional(value, old.optional if old else False, ctx, needle, section)
            if key == "error_rate":
                error_rate = RateRule(tolerance, optional)
            else:
                throughput = RateRule(tolerance, optional)
            continue
        percentile = _percentile_of(key)
        if percentile is None:
            raise ctx.error(
                needle, f"[{section}] unknown rule {key!r} (p50, p95, p99 ..., error_rate, throughput)"
            )
        old_rule = latency.get(key) or LatencyRule(key, percentile, 0.10, 200.0)
        latency[key] = LatencyRule(
            key,
            percentile,
            _fraction(value["tolerance"], f"{key} tolerance", ctx, needle)
            if "tolerance" in value
            else old_rule.tolerance,
            _duration_us(value["floor"], f"{key} floor", ctx, needle)
            if "floor" in value
            else old_rule.floor_us,
            _optional(value, old_rule.optional, ctx, needle, section),
        )
    ordered = tuple(sorted(latency.values(), key=lambda rule: rule.percentile))
    return RelativeRules(ordered, error_rate, throughput)


def parse_absolute_rule(text: str, line: int | None = None, source: str = "rule") -> AbsoluteRule:
    """Parse ``chat_message.p99 < 50ms``, ``errors.rate < 0.1%``, ``ping.rate > 10/s`` ...

    Latency limits without a unit are milliseconds; error rates take ``%`` or a fraction.

    Raises:
        ThresholdsError: naming the rule and what is wrong with it.
    """
    where = f"{source} line {line}" if line else source
    match = _RULE_RE.match(text)
    if match is None:
        raise ThresholdsError(
            f"{where}: cannot parse rule {text!r} "
            "(expected e.g. 'chat_message.p99 < 50ms' or 'errors.rate < 0.1%')"
        )
    path, op, number, unit = match["path"], match["op"], float(match["num"]), match["unit"]
    if path in ("errors.rate", "error_rate"):
        subject, stat = None, "errors.rate"
    elif path.endswith((".errors.rate", ".error_rate")):
        subject, stat = (
            path.rsplit(".errors.rate", 1)[0] if path.endswith(".errors.rate") else path[:-11],
            "errors.rate",
        )
    else:
        parts = _STAT_RE.match(path)
        if parts is None:
            raise ThresholdsError(
                f"{where}: rule {text!r} names no statistic (p50, p99.9, max, mean, rate, errors.rate)"
            )
        subject, stat = parts["subject"], parts["stat"]
    if stat == "errors.rate":
        if unit not in (None, "%"):
            raise ThresholdsError(
                f"{where}: rule {text!r}: an error rate takes '%' or a fraction, not {unit!r}"
            )
        limit = number / 100.0 if unit == "%" else number
        return AbsoluteRule(text.strip(), line, subject, "error_rate", stat, None, op, limit)  # type: ignore[arg-type]
    if stat in ("rate", "throughput"):
        if unit not in (None, "/s"):
            raise ThresholdsError(f"{where}: rule {text!r}: a throughput takes '/s', not {unit!r}")
        return AbsoluteRule(text.strip(), line, subject, "throughput", "rate", None, op, number)  # type: ignore[arg-type]
    if stat in ("max", "min", "mean"):
        percentile = None
    else:
        percentile = _percentile_of(stat)
        if percentile is None:
            raise ThresholdsError(f"{where}: rule {text!r}: percentile {stat!r} must lie between p0 and p100")
    if unit in ("%", "/s"):
        raise ThresholdsError(f"{where}: rule {text!r}: a latency takes ms, us or s, not {unit!r}")
    limit = number * _US_PER[unit or "ms"]
    return AbsoluteRule(text.strip(), line, subject, "latency", stat, percentile, op, limit)  # type: ignore[arg-type]


def parse_thresholds(text: str, source: str = "thresholds") -> Thresholds:
    """Parse a thresholds file's text.

    Raises:
        ThresholdsError: invalid TOML, an unknown table or key, a value that does not parse -- with the line.
    """
    ctx = _Context(source, text)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(document) - {"gate", "defaults", "types", "absolute"}
    if unknown:
        name = sorted(unknown)[0]
        raise ctx.error(name, f"unknown table or key {name!r} (gate, defaults, types, absolute)")
    thresholds = DEFAULT_THRESHOLDS
    gate = document.get("gate", {})
    if not isinstance(gate, dict):
        raise ctx.error("gate", "'gate' must be a table")
    for key, value in gate.items():
        if key == "warmup":
            thresholds = replace(
                thresholds, warmup_s=_duration_us(value, "warmup", ctx, key, bare_unit="s") / 1e6
            )
        elif key == "stall_lag":
            limit = None if value is False else _duration_us(value, "stall_lag", ctx, key)
            thresholds = replace(thresholds, stall_lag_us=limit)
        elif key == "stall_factor":
            if value is not False and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 1
            ):
                raise ctx.error(key, f"stall_factor must be a number >= 1 or false, not {value!r}")
            thresholds = replace(thresholds, stall_factor=None if value is False else float(value))
        elif key == "min_quiet_seconds":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ctx.error(key, f"min_quiet_seconds must be a positive integer, not {value!r}")
            thresholds = replace(thresholds, min_quiet_seconds=value)
        elif key == "confidence":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 <= value < 1:
                raise ctx.error(key, f"confidence must be a number in [0.5, 1), not {value!r}")
            thresholds = replace(thresholds, confidence=float(value))
        elif key == "single_run_allowance":
            thresholds = replace(thresholds, single_run_allowance=_fraction(value, key, ctx, key))
        elif key in ("paired", "allow_inconclusive"):
            if not isinstance(value, bool):
                raise ctx.error(key, f"{key} must be true or false, not {value!r}")
            thresholds = replace(thresholds, **{key: value})
        elif key in ("resamples", "seed"):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (100 if key == "resamples" else 0)
            ):
                raise ctx.error(
                    key, f"{key} must be an integer{' >= 100' if key == 'resamples' else ''}, not {value!r}"
                )
            thresholds = replace(thresholds, **{key: value})
        else:
            raise ctx.error(
                key,
                f"[gate] unknown setting {key!r} "
                "(warmup, stall_lag, stall_factor, min_quiet_seconds, confidence, resamples, seed, "
                "single_run_allowance, paired, allow_inconclusive)",
            )
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ctx.error("defaults", "'defaults' must be a table")
    base = _relative(defaults, DEFAULT_THRESHOLDS.defaults, ctx, "defaults")
    overrides: dict[str, RelativeRules] = {}
    types = document.get("types", {})
    if not isinstance(types, dict):
        raise ctx.error("types", "'types' must be a table of message types")
    for name, table in types.items():
        if not isinstance(table, dict):
            raise ctx.error(name, f"[types.{name}] must be a table of rules")
        overrides[name] = _relative(table, base, ctx, f"types.{name}")
    absolute: list[AbsoluteRule] = []
    section = document.get("absolute", {})
    if not isinstance(section, dict) or set(section) - {"rules"}:
        raise ctx.error("absolute", '[absolute] must hold only rules = ["...", ...]')
    rules = section.get("rules", [])
    if not isinstance(rules, list) or not all(_absolute_item(r) for r in rules):
        raise ctx.error(
            "rules",
            '[absolute] rules must be a list of strings like "chat_message.p99 < 50ms" '
            '(or tables like { rule = "connect.p95 < 200ms", optional = true })',
        )
    for rule in rules:
        if isinstance(rule, str):
            absolute.append(parse_absolute_rule(rule, _line_of(text, rule), source))
        else:
            parsed = parse_absolute_rule(rule["rule"], _line_of(text, rule["rule"]), source)
            absolute.append(replace(parsed, optional=rule.get("optional", False)))
    return replace(thresholds, defaults=base, overrides=overrides, absolute=tuple(absolute))


def _absolute_item(item: Any) -> bool:
    """A rule string, or ``{ rule = "...", optional = true|false }``."""
    if isinstance(item, str):
        return True
    return (
        isinstance(item, dict)
        and isinstance(item.get("rule"), str)
        and set(item) <= {"rule", "optional"}
        and isinstance(item.get("optional", False), bool)
    )


def load_thresholds(path: str | os.PathLike[str] | None) -> Thresholds:
    """Read a thresholds file (``None``: the defaults).

    Raises:
        ThresholdsError: the file cannot be read or does not parse.
    """
    if path is None:
        return DEFAULT_THRESHOLDS
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ThresholdsError(f"no thresholds file {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ThresholdsError(f"cannot read thresholds file {path}: {exc}") from exc
    return parse_thresholds(text, str(path))
