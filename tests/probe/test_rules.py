"""Alert rules: the gate's rule language with windows, the disconnected rule, and rules files."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe._rules import RuleError, load_rules_file, parse_rule


@pytest.mark.parametrize(
    ("text", "kind", "metric", "limit", "window"),
    [
        ("p99 ack:chat_message < 50ms over 5m", "latency", "ack:chat_message", 50_000, 300),
        ("ack:chat_message.p99 < 50ms over 5m", "latency", "ack:chat_message", 50_000, 300),
        ("chat_message.p99 < 50ms", "latency", "ack:chat_message", 50_000, 300),
        ("p50 ping < 2 over 30s", "latency", "pong", 2_000, 30),
        ("delivery:chat.max < 1s over 1h", "latency", "delivery:chat", 1_000_000, 3600),
        ("error rate < 1% over 5m", "error_rate", None, 0.01, 300),
        ("chat_message error rate < 0.5% over 2m", "error_rate", None, 0.005, 120),
        ("ping.errors.rate < 0.02", "error_rate", None, 0.02, 300),
    ],
)
def test_rule_forms(text: str, kind: str, metric: str | None, limit: float, window: float) -> None:
    rule = parse_rule(text)
    assert rule.kind == kind and rule.window_s == window
    assert rule.gate is not None and rule.gate.limit == pytest.approx(limit)
    assert rule.metric == metric
    assert rule.name == " ".join(text.split())


def test_error_rate_rules_name_their_request_type() -> None:
    assert parse_rule("chat_message error rate < 1%").request_type == "chat_message"
    assert parse_rule("pong.errors.rate < 1%").request_type == "ping"
    assert parse_rule("error rate < 1%").request_type is None


def test_disconnected_rule() -> None:
    rule = parse_rule("disconnected > 30s")
    assert rule.kind == "disconnected" and rule.limit_s == 30 and not rule.inclusive
    assert parse_rule("disconnected >= 2m").limit_s == 120


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p99 pong < 50 parsecs", "cannot parse rule"),
        ("p99 nothing < 50ms", "records no latency 'nothing'"),
        ("p99 pong < 5% over 5m", "a latency takes ms"),
        ("error rate < 1ms", "an error rate takes '%'"),
        ("p99 pong < 5ms over 0s", "the window after 'over' must be a positive duration"),
        ("disconnected > soon", "must be a positive duration"),
        ("ping.rate > 3/s", "throughput rule means nothing"),
        ("nothing.errors.rate < 1%", "the probe checks no 'nothing'"),
    ],
)
def test_rule_errors_name_the_rule_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=r"^--rule: ") as caught:
        parse_rule(text)
    assert message in str(caught.value)


def test_rules_file_in_the_gate_format_with_a_probe_window(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        "[gate]\nwarmup = '5s'\n\n[defaults]\np99 = { tolerance = '20%' }\n\n"
        "[absolute]\nrules = ['chat_message.p99 < 50ms', { rule = 'errors.rate < 1%', optional = true }]\n\n"
        "[probe]\nwindow = '2m'\nrules = ['disconnected > 30s', 'p99 pong < 5ms over 10s']\n"
    )
    rules = load_rules_file(path)
    assert [(r.name, r.window_s) for r in rules] == [
        ("chat_message.p99 < 50ms", 120),
        ("errors.rate < 1%", 120),
        ("disconnected > 30s", 0),
        ("p99 pong < 5ms over 10s", 10),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not = [toml", "not valid TOML"),
        ("[nonsense]\nx = 1\n", "unknown table 'nonsense'"),
        ("[probe]\nwindow = 'x'\n", "[probe] window must be a positive duration"),
        ("[absolute]\nrules = [\n 'pong.p99 < 5ms',\n 'pong.p99 <> 5ms',\n]\n", "line 4"),
        ("[gate]\nwarmup = '5s'\n", "no rules in it"),
        ("[absolute]\nrules = [3]\n", "a rule must be a string"),
    ],
)
def test_rules_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RuleError) as caught:
        load_rules_file(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_rules_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read it"):
        load_rules_file(tmp_path / "missing.toml")
