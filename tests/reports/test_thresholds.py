"""Thresholds files: TOML relative defaults, per-type overrides, absolute rules; errors name the line."""

from __future__ import annotations

import pytest

from reports.thresholds import DEFAULT_THRESHOLDS, ThresholdsError, parse_absolute_rule, parse_thresholds

EXAMPLE = """\
[gate]
warmup = "10s"
stall_lag = "2ms"
min_quiet_seconds = 5
confidence = 0.99
resamples = 500
single_run_allowance = "2%"
paired = true

[defaults]
p50 = { tolerance = "5%", floor = "0.3ms" }
p99.9 = { tolerance = "50%", floor = "5ms" }
error_rate = { tolerance = "0.2%" }

[types.chat_message]
p99 = { tolerance = "10%" }
p95 = false
throughput = false

[absolute]
rules = [
  "chat_message.p99 < 50ms",
  "errors.rate < 0.1%",
  "connect.p95 <= 0.2s",
  "pong.p99.9 < 900us",
  "ping.rate > 1/s",
  "chat_message.errors.rate < 1%",
]
"""


def test_parse_example() -> None:
    th = parse_thresholds(EXAMPLE.replace("p99.9 =", '"p99.9" ='))
    assert (th.warmup_s, th.confidence, th.resamples) == (10.0, 0.99, 500)
    assert (th.stall_lag_us, th.min_quiet_seconds) == (2000.0, 5)
    assert th.single_run_allowance == pytest.approx(0.02) and DEFAULT_THRESHOLDS.single_run_allowance == 0.05
    assert th.paired and not DEFAULT_THRESHOLDS.paired
    stats = {r.stat: r for r in th.defaults.latency}
    assert stats["p50"].tolerance == pytest.approx(0.05) and stats["p50"].floor_us == pytest.approx(300.0)
    assert stats["p99.9"].percentile == 99.9 and stats["p99"] == next(
        r for r in DEFAULT_THRESHOLDS.defaults.latency if r.stat == "p99"
    )
    assert th.defaults.error_rate.tolerance == pytest.approx(0.002)
    chat = th.rules_for("ack:chat_message", "chat_message")
    assert [r.stat for r in chat.latency] == ["p50", "p99", "p99.9"]
    assert chat.latency[1].tolerance == pytest.approx(0.10) and chat.throughput is None
    assert th.rules_for("pong", "ping") is th.defaults
    rules = {r.text: r for r in th.absolute}
    assert rules["chat_message.p99 < 50ms"].limit == 50_000 and rules["chat_message.p99 < 50ms"].line == 22
    assert rules["errors.rate < 0.1%"].subject is None
    assert rules["errors.rate < 0.1%"].limit == pytest.approx(0.001)
    assert rules["connect.p95 <= 0.2s"].limit == 200_000
    assert rules["pong.p99.9 < 900us"].percentile == 99.9
    assert rules["ping.rate > 1/s"].quantity == "throughput"
    assert rules["chat_message.errors.rate < 1%"].subject == "chat_message"


def test_optional_rules_and_allow_inconclusive() -> None:
    """A rule may be optional (too few samples then leave the verdict alone); neither that nor
    allow_inconclusive is the default."""
    assert not DEFAULT_THRESHOLDS.allow_inconclusive
    assert not any(rule.optional for rule in DEFAULT_THRESHOLDS.defaults.latency)
    th = parse_thresholds(
        "[gate]\nallow_inconclusive = true\n"
        "[defaults]\np99 = { optional = true }\nerror_rate = { optional = true }\n"
        '[types.connect]\np99 = { tolerance = "50%" }\np50 = { optional = true }\n'
        '[absolute]\nrules = ["pong.p50 < 1ms", { rule = "connect.p95 < 200ms", optional = true }]\n'
    )
    assert th.allow_inconclusive
    p99 = next(rule for rule in th.defaults.latency if rule.stat == "p99")
    assert p99.optional and p99.tolerance == 0.20 and th.defaults.error_rate.optional
    assert not th.defaults.throughput.optional
    connect = {rule.stat: rule for rule in th.overrides["connect"].latency}
    assert connect["p99"].optional and connect["p99"].tolerance == 0.5  # inherited from [defaults]
    assert connect["p50"].optional and not connect["p95"].optional
    assert [(rule.text, rule.optional) for rule in th.absolute] == [
        ("pong.p50 < 1ms", False),
        ("connect.p95 < 200ms", True),
    ]


def test_absolute_rule_holds() -> None:
    rule = parse_absolute_rule("x.p99 < 5")
    assert rule.limit == 5000 and rule.holds(4999) and not rule.holds(5000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gate\nwarmup = 1", r"line 1.*not valid TOML|not valid TOML.*line 1"),
        ("[gate]\nwarmup = 1\nspeed = 2\n", r"line 3: \[gate\] unknown setting 'speed'"),
        ('[defaults]\np50 = { tolerance = "ten" }\n', r"line 2: p50 tolerance must be a percentage"),
        ('[defaults]\np42x = { tolerance = "1%" }\n', r"line 2: \[defaults\] unknown rule 'p42x'"),
        ('[types.pong]\np50 = { floor = "fast" }\n', r"line 2: p50 floor must be a duration"),
        ('[gate]\nsingle_run_allowance = "lots"\n', r"line 2: single_run_allowance must be a percentage"),
        ('[gate]\npaired = "yes"\n', r"line 2: paired must be true or false, not 'yes'"),
        ('\n\n[absolute]\nrules = ["chat_message.p99 < 50 parsecs"]\n', r"line 4: cannot parse rule"),
        ('[absolute]\nrules = ["chat_message.p101 < 5ms"]\n', r"line 2: .*percentile 'p101'"),
        ('[absolute]\nrules = ["errors.rate < 5ms"]\n', r"line 2: .*error rate takes '%'"),
        ("[thresholds]\n", r"line 1: unknown table or key 'thresholds'"),
        ("[gate]\nconfidence = 2\n", r"line 2: confidence must be"),
        (
            '[defaults]\np99 = { optional = "yes" }\n',
            r"line 2: \[defaults\] p99: optional must be true or false",
        ),
        ("[gate]\nallow_inconclusive = 1\n", r"line 2: allow_inconclusive must be true or false"),
        (
            '[absolute]\nrules = [{ rule = "x.p99 < 5", often = true }]\n',
            r"line 2: \[absolute\] rules must be",
        ),
    ],
)
def test_errors_name_the_line_and_problem(text: str, message: str) -> None:
    with pytest.raises(ThresholdsError, match=message) as info:
        parse_thresholds(text, "gate.toml")
    assert str(info.value).startswith("gate.toml")
    assert "\n" not in str(info.value)
