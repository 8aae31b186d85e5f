"""Alert rules: the gate's absolute-limit syntax, plus a rolling window, plus the disconnected rule.

Accepted forms (``docs/probe.md``)::

    p99 ack:chat_message < 50ms over 5m     # the statistic first, as people say it
    ack:chat_message.p99 < 50ms over 5m     # the gate's own form (reports/thresholds.py)
    chat_message.p99 < 50ms                 # a short name, as in the gate; the default window
    error rate < 1% over 5m                 # failed checks / checks, every type
    chat_message.errors.rate < 1%           # ... of one type
    disconnected > 30s                      # a probe user not connected for longer than that

Latency and error-rate rules state what must *hold* (as in the gate); the ``disconnected`` rule states the
condition that raises the alert. The part before ``over`` is parsed by the gate's
:func:`reports.thresholds.parse_absolute_rule`, so both tools read one rule language.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe._checks import PROBE_METRICS, PROBE_REQUEST_TYPES
from reports.thresholds import AbsoluteRule, ThresholdsError, parse_absolute_rule

__all__ = [
    "DEFAULT_WINDOW_S",
    "AlertRule",
    "RuleError",
    "load_rules_file",
    "parse_duration_s",
    "parse_rule",
]

DEFAULT_WINDOW_S = 300.0
"""The rolling window of a rule that names none (5 minutes)."""

_NUMBER = r"[0-9]*\.?[0-9]+"
_DURATION = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>ms|s|m|min|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, None: 1.0}
_OVER = re.compile(r"^(?P<rule>.*?)\s+over\s+(?P<window>\S+(?:\s*\S+)?)\s*$")
_STAT_FIRST = re.compile(
    r"^\s*(?P<stat>p[0-9]+(?:\.[0-9]+)?|max|min|mean)\s+(?P<subject>[A-Za-z0-9_:\-]+)\s*(?P<rest>(?:<|>).*)$"
)
_ERROR_RATE = re.compile(r"^\s*(?:(?P<subject>[A-Za-z0-9_:\-]+)\s+)?error\s+rate\s*(?P<rest>(?:<|>).*)$")
_DOWN = re.compile(r"^\s*disconnected\s*(?P<op>>=|>)\s*(?P<limit>.+?)\s*$")


class RuleError(ValueError):
    """A rule that does not parse; ``str()`` names the rule (and file and line) and the problem."""


@dataclass(frozen=True)
class AlertRule:
    """One alert rule.

    ``kind`` ``latency``: ``metric``'s ``stat`` over the window must satisfy ``gate`` (limit in µs);
    ``error_rate``: failed checks over checks (of ``request_type``, or all) must satisfy ``gate``;
    ``disconnected``: fires while a probe user has not been connected for more than ``limit_s``.
    """

    name: str
    """The rule as written (normalised spaces): the alert's name in events, webhooks and metrics."""
    kind: str
    window_s: float
    gate: AbsoluteRule | None = None
    metric: str | None = None
    request_type: str | None = None
    limit_s: float = 0.0
    inclusive: bool = False
    """``disconnected >= 30s`` instead of ``>``."""


def parse_duration_s(text: str, what: str = "duration") -> float:
    """``5m`` -> 300.0, ``30s``, ``250ms``, ``1h``; a bare number is seconds.

    Raises:
        RuleError: not such a duration, or not positive.
    """
    match = _DURATION.match(text)
    if match is None or float(match["num"]) <= 0:
        raise RuleError(f"{what} must be a positive duration like '30s', '5m' or '1h', not {text!r}")
    return float(match["num"]) * _SECONDS[match["unit"]]


def _metric(subject: str, rule: str) -> str:
    if subject in PROBE_METRICS:
        return subject
    if "ack:" + subject in PROBE_METRICS:
        return "ack:" + subject
    if subject == "ping":
        return "pong"
    raise RuleError(
        f"rule {rule!r}: the probe records no latency {subject!r} (one of {', '.join(PROBE_METRICS)})"
    )


def _request_type(subject: str | None, rule: str) -> str | None:
    if subject is None:
        return None
    for candidate in (subject, subject.removeprefix("ack:")):
        if candidate in PROBE_REQUEST_TYPES:
            return candidate
    if subject == "pong":
        return "ping"
    raise RuleError(
        f"rule {rule!r}: the probe checks no {subject!r} (one of {', '.join(PROBE_REQUEST_TYPES)})"
    )


def parse_rule(text: str, *, default_window_s: float = DEFAULT_WINDOW_S, where: str = "--rule") -> AlertRule:
    """Parse one rule (the forms in the module docstring).

    Raises:
        RuleError: naming ``where``, the rule and the problem.
    """
    name = " ".join(text.split())
    try:
        down = _DOWN.match(name)
        if down is not None:
            return AlertRule(
                name,
                "disconnected",
                0.0,
                limit_s=parse_duration_s(down["limit"], f"rule {name!r}: the limit"),
                inclusive=down["op"] == ">=",
            )
        window_s = default_window_s
        body = name
        over = _OVER.match(name)
        if over is not None:
            body = over["rule"]
            window_s = parse_duration_s(over["window"], f"rule {name!r}: the window after 'over'")
        stat_first = _STAT_FIRST.match(body)
        if stat_first is not None:
            body = f"{stat_first['subject']}.{stat_first['stat']} {stat_first['rest']}"
        errors = _ERROR_RATE.match(body)
        if errors is not None:
            subject = errors["subject"]
            body = f"{subject + '.' if subject else ''}errors.rate {errors['rest']}"
        try:
            gate = parse_absolute_rule(body, source=f"rule {name!r}")
        except ThresholdsError as exc:
            raise RuleError(str(exc)) from exc
        if gate.quantity == "throughput":
            raise RuleError(
                f"rule {name!r}: the probe sends at a fixed rate; a throughput rule means nothing"
            )
        if gate.quantity == "error_rate":
            return AlertRule(
                name, "error_rate", window_s, gate, request_type=_request_type(gate.subject, name)
            )
        assert gate.subject is not None
        return AlertRule(name, "latency", window_s, gate, metric=_metric(gate.subject, name))
    except RuleError as exc:
        raise RuleError(f"{where}: {exc}") from None


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


def load_rules_file(path: str | Path, *, default_window_s: float = DEFAULT_WINDOW_S) -> list[AlertRule]:
    """Rules from a TOML file in the gate's threshold format.

    ``[absolute] rules = [...]`` (strings, or ``{ rule = "...", optional = true }`` tables, as the gate reads
    them) and ``[probe] window = "5m"`` (the default window) / ``[probe] rules = [...]``. The gate's other
    tables (``[gate]``, ``[defaults]``, ``[types.*]``) are allowed and ignored, so one file serves both.

    Raises:
        RuleError: the file cannot be read, is not TOML, or a rule does not parse (with its line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"--rules-file {path}: cannot read it ({exc})") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"--rules-file {path}: not valid TOML: {exc}") from exc
    unknown = set(document) - {"gate", "defaults", "types", "absolute", "probe"}
    if unknown:
        raise RuleError(
            f"--rules-file {path}: unknown table {sorted(unknown)[0]!r} (absolute, probe, gate ...)"
        )
    probe = document.get("probe", {})
    if not isinstance(probe, dict) or set(probe) - {"window", "rules"}:
        raise RuleError(f'--rules-file {path}: [probe] holds only window = "5m" and rules = [...]')
    if "window" in probe:
        default_window_s = parse_duration_s(str(probe["window"]), f"--rules-file {path}: [probe] window")
    items: list[Any] = []
    for section in (document.get("absolute", {}), probe):
        rules = section.get("rules", []) if isinstance(section, dict) else None
        if not isinstance(rules, list):
            raise RuleError(f"--rules-file {path}: rules must be a list of strings")
        items += rules
    parsed: list[AlertRule] = []
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else item
        if not isinstance(rule, str):
            raise RuleError(
                f'--rules-file {path}: a rule must be a string like "ping.p99 < 50ms", not {item!r}'
            )
        line = _line_of(text, rule)
        where = f"--rules-file {path}" + (f" line {line}" if line else "")
        parsed.append(parse_rule(rule, default_window_s=default_window_s, where=where))
    if not parsed:
        raise RuleError(f"--rules-file {path}: no rules in it ([absolute] rules = [...] or [probe] rules)")
    return parsed


def check_unique(rules: Sequence[AlertRule]) -> None:
    """Raise :class:`RuleError` if two rules have the same name (their alerts would be one)."""
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError(f"rule {rule.name!r} is given twice")
        seen.add(rule.name)
