"""The sans-I/O core driven directly: backoff, schedule, check matching, alert evaluation."""

from __future__ import annotations

import random

import pytest

from probe._alerts import ALERT_FIRING, ALERT_RESOLVED, AlertEvaluator
from probe._backoff import Backoff
from probe._checks import CheckDone, Notify, ProbeChecks, Send
from probe._rules import parse_rule
from probe._schedule import CheckScheduler
from runstore.samples import SampleAggregator

T0 = 1_800_000_000.0


# --- backoff ----------------------------------------------------------------------------------------------


def test_backoff_grows_to_the_cap_with_jitter_below_each_ceiling_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=4.0, factor=2.0, jitter=0.5, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered: no two probes retry in lockstep
    backoff.reset()
    assert backoff.next_delay() <= 0.5


@pytest.mark.parametrize("kwargs", [{"base": 0}, {"base": 2, "cap": 1}, {"factor": 0.5}, {"jitter": 2}])
def test_backoff_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


# --- schedule ---------------------------------------------------------------------------------------------


def test_schedule_runs_each_round_once_at_its_time_and_skips_rounds_missed_entirely() -> None:
    scheduler = CheckScheduler(5.0, T0)
    assert scheduler.poll(T0 - 0.1) is None
    due = scheduler.poll(T0 + 0.2)
    assert due is not None and due.at == T0 and due.skipped == 0
    assert scheduler.poll(T0 + 1) is None
    assert scheduler.next_at == T0 + 5
    due = scheduler.poll(T0 + 21)  # suspended: rounds at +5, +10, +15 missed, +20 is run (late)
    assert due is not None and due.at == T0 + 20 and due.skipped == 3
    with pytest.raises(ValueError):
        CheckScheduler(0, T0)


# --- checks -----------------------------------------------------------------------------------------------


class Harness:
    """A ProbeChecks with both users connected, recording what it reports."""

    def __init__(self, notify: bool = False, timeout: float = 2.0) -> None:
        self.agg = SampleAggregator(clock=lambda: T0)
        self.done: list[CheckDone] = []
        self.latencies: list[tuple[str, float]] = []
        self.checks = ProbeChecks(
            ["alice", "bob"],
            self.agg,
            timeout=timeout,
            notify=notify,
            observer=self.done.append,
            latency_observer=lambda metric, us, at: self.latencies.append((metric, us)),
        )
        self.checks.connection_up(0, T0, 1500.0)
        self.checks.connection_up(1, T0, 1700.0)

    def sample(self):
        samples, events = self.agg.drain()
        merged = samples[0]
        for other in samples[1:]:
            other.second = merged.second
            merged.merge(other)
        return merged, events


def _by_type(actions, kind: str):
    return [a for a in actions if isinstance(a, Send) and a.frame["type"] == kind]


def test_a_round_sends_ping_chat_progress_and_notify_and_every_reply_is_matched_and_timed() -> None:
    h = Harness(notify=True)
    actions = h.checks.start_round(T0 + 1)
    pings = _by_type(actions, "ping")
    [chat] = _by_type(actions, "chat_message")
    [progress] = _by_type(actions, "progress_update")
    [notify] = [a for a in actions if isinstance(a, Notify)]
    assert [p.user for p in pings] == [0, 1]
    assert chat.user == 0 and chat.frame["receiverId"] == "bob"
    assert notify.body["userId"] == "bob"

    for ping in pings:
        h.checks.receive(
            ping.user, {"type": "pong", "ts": 1, "requestId": ping.frame["requestId"]}, T0 + 1.002
        )
    h.checks.receive(0, {"type": "ack", "requestId": chat.frame["requestId"], "data": {}}, T0 + 1.003)
    content = chat.frame["message"]["content"]
    h.checks.receive(1, {"type": "new_message", "data": {"content": content}}, T0 + 1.004)
    completion = progress.frame["progress"]["completion"]
    h.checks.receive(0, {"type": "progress_sync", "data": {"completion": float(completion)}}, T0 + 1.005)
    h.checks.receive(0, {"type": "ack", "requestId": progress.frame["requestId"]}, T0 + 1.006)
    h.checks.http_done(notify.token, 201, T0 + 1.007)
    h.checks.receive(1, {"type": "notification_update", "data": {"title": notify.body["title"]}}, T0 + 1.008)

    assert h.checks.outstanding == 0
    assert all(isinstance(a, Notify) or a.scheduled == T0 + 1 for a in actions)
    metrics = dict(h.latencies)
    assert metrics["pong"] == pytest.approx(2000, abs=1)  # from the scheduled time, in µs
    assert metrics["ack:chat_message"] == pytest.approx(3000, abs=1)
    assert metrics["delivery:chat"] == pytest.approx(4000, abs=1)
    assert metrics["sync:progress"] == pytest.approx(5000, abs=1)
    assert metrics["ack:progress_update"] == pytest.approx(6000, abs=1)
    assert metrics["http:notification_create"] == pytest.approx(7000, abs=1)
    assert metrics["push:notification"] == pytest.approx(8000, abs=1)
    h.checks.frame_sent(chat.scheduled, T0 + 1.0005)  # the shell wrote it 0.5 ms late
    sample, _ = h.sample()
    assert sample.latency["send_lag"].get_total_count() == 1
    assert sample.latency["send_lag"].get_max_value() == pytest.approx(500, rel=0.01)
    assert sample.counters["sent.ping"] == 2 and sample.counters["sent.chat_message"] == 1
    assert sample.counters["recv.new_message"] == 1
    assert not any(name.startswith("errors.") for name in sample.counters)
    outcomes = [(d.request_type, d.ok) for d in h.done]
    assert outcomes == [
        ("connect", True),
        ("connect", True),
        ("ping", True),
        ("ping", True),
        ("chat_message", True),
        ("progress_update", True),
        ("notification_create", True),
    ]


def test_timeouts_connection_loss_not_connected_and_server_errors_fail_checks_with_their_codes() -> None:
    h = Harness(timeout=2.0)
    actions = h.checks.start_round(T0)
    [chat] = _by_type(actions, "chat_message")
    [progress] = _by_type(actions, "progress_update")
    h.checks.receive(0, {"type": "ack", "requestId": chat.frame["requestId"]}, T0 + 0.01)  # no delivery
    h.checks.receive(
        0, {"type": "error", "requestId": progress.frame["requestId"], "code": "rate_limited"}, T0
    )
    h.checks.expire(T0 + 1.9)
    assert h.checks.outstanding > 0
    h.checks.expire(T0 + 2.0)  # pings to bob and alice, the delivery, the sync: all time out now
    assert h.checks.outstanding == 0
    h.checks.connection_down(1, T0 + 3, "close 1006")
    h.checks.start_round(T0 + 5)  # bob is away: his ping and the chat are not connected
    sample, events = h.sample()
    errors = {n: v for n, v in sample.counters.items() if n.startswith("errors.")}
    assert errors == {
        "errors.ping.timeout": 2,
        "errors.chat_message.delivery_timeout": 1,
        "errors.progress_update.rate_limited": 1,
        "errors.progress_update.sync_timeout": 1,
        "errors.ping.not_connected": 1,
        "errors.chat_message.not_connected": 1,
    }
    assert [e.kind for e in events][-2:] == ["disconnected", "reconnecting"]
    failed = [d.request_type for d in h.done if not d.ok]
    assert sorted(failed) == ["chat_message", "chat_message", "ping", "ping", "ping", "progress_update"]
    # alice's ping of the last round is outstanding; losing her connection fails it as connection_lost
    h.checks.connection_down(0, T0 + 6, "close 1001")
    sample, _ = h.sample()
    assert sample.counters["errors.ping.connection_lost"] == 1
    assert h.checks.states() == ["reconnecting", "reconnecting"]


def test_late_replies_and_backlog_pushes_are_counted_apart_never_timed() -> None:
    h = Harness(timeout=1.0)
    actions = h.checks.start_round(T0)
    [chat] = _by_type(actions, "chat_message")
    h.checks.expire(T0 + 5)
    h.latencies.clear()
    h.checks.receive(0, {"type": "ack", "requestId": chat.frame["requestId"]}, T0 + 6)
    h.checks.receive(
        1, {"type": "new_message", "data": {"content": chat.frame["message"]["content"]}}, T0 + 6
    )
    h.checks.receive(1, {"type": "mystery"}, T0 + 6)
    sample, _ = h.sample()
    assert h.latencies == []
    assert sample.counters["errors.frame.late_reply"] == 1
    assert sample.counters["missed.new_message"] == 1
    assert sample.counters["errors.frame.unexpected_frame"] == 1


def test_a_failed_notification_post_fails_the_check_without_waiting_for_the_push() -> None:
    h = Harness(notify=True)
    [notify] = [a for a in h.checks.start_round(T0) if isinstance(a, Notify)]
    h.checks.http_done(notify.token, 401, T0 + 0.01)
    sample, _ = h.sample()
    assert sample.counters["errors.notification_create.http_401"] == 1
    assert [d.ok for d in h.done if d.request_type == "notification_create"] == [False]
    assert not any(k[0] == "push" for k in h.checks._pending)


def test_state_gauges_have_one_observation_per_user_and_close_drops_outstanding_checks_unjudged() -> None:
    h = Harness()
    h.checks.connection_down(1, T0, "close 1006")
    h.checks.snapshot(T0, [3, 0])
    h.checks.start_round(T0)
    h.checks.close(T0 + 1)
    sample, events = h.sample()
    assert sample.gauges["users.connected"].sum == 1 and sample.gauges["users.connected"].count == 2
    assert sample.gauges["users.reconnecting"].sum == 1
    assert sample.gauges["queue_size"].max == 3
    assert h.checks.outstanding == 0 and "errors.ping.connection_lost" not in sample.counters
    assert events[-1].kind == "disconnected" and events[-1].detail == "probe stopped"
    assert h.checks.states() == ["disconnected", "disconnected"]


# --- alerts -----------------------------------------------------------------------------------------------


def test_latency_alert_fires_on_the_window_percentile_and_resolves_when_slow_samples_leave_it() -> None:
    evaluator = AlertEvaluator([parse_rule("p99 ack:chat_message < 50ms over 10s")])
    for i in range(20):
        evaluator.observe_latency("ack:chat_message", 2_000.0, T0 + i * 0.1)
    assert evaluator.evaluate(T0 + 2) == []
    evaluator.observe_latency("ack:chat_message", 80_000.0, T0 + 2.5)
    [firing] = evaluator.evaluate(T0 + 3)
    assert firing.kind == ALERT_FIRING and firing.value == pytest.approx(80, rel=0.01)
    assert firing.threshold == 50 and firing.window_s == 10
    assert evaluator.evaluate(T0 + 4) == []  # still breached: nothing repeated
    evaluator.observe_latency("ack:chat_message", 2_000.0, T0 + 11)
    [resolved] = evaluator.evaluate(T0 + 12.6)  # the slow sample (T0 + 2.5) left the 10 s window
    assert resolved.kind == ALERT_RESOLVED and resolved.value == pytest.approx(2, rel=0.01)
    assert set(resolved.detail()) >= {"rule", "value", "threshold", "window_s"}


def test_error_rate_alert_counts_failed_checks_over_the_window_per_type_or_all() -> None:
    every = parse_rule("error rate < 10% over 10s")
    chat = parse_rule("chat_message.errors.rate < 10% over 10s")
    evaluator = AlertEvaluator([every, chat])
    for i in range(9):
        evaluator.observe_check(CheckDone("ping", True, T0 + i))
    evaluator.observe_check(CheckDone("chat_message", False, T0 + 9))
    transitions = evaluator.evaluate(T0 + 9.5)
    assert [(t.rule, t.kind) for t in transitions] == [(every.name, ALERT_FIRING), (chat.name, ALERT_FIRING)]
    assert transitions[0].value == pytest.approx(0.1)
    evaluator.observe_check(CheckDone("chat_message", True, T0 + 19.5))
    transitions = evaluator.evaluate(T0 + 19.6)  # the failure (T0 + 9) left the window
    assert [t.kind for t in transitions] == [ALERT_RESOLVED, ALERT_RESOLVED]


def test_disconnected_alert_fires_after_the_limit_and_resolves_on_reconnect() -> None:
    evaluator = AlertEvaluator([parse_rule("disconnected > 30s")])
    evaluator.observe_states(["connected", "connected"], T0)
    assert evaluator.evaluate(T0) == []
    evaluator.observe_states(["connected", "reconnecting"], T0 + 1)
    assert evaluator.evaluate(T0 + 31) == []  # exactly 30 s: not more than 30 s
    evaluator.observe_states(["connected", "reconnecting"], T0 + 31.5)
    [firing] = evaluator.evaluate(T0 + 31.5)
    assert firing.kind == ALERT_FIRING and firing.value == pytest.approx(30.5)
    evaluator.observe_states(["connected", "connected"], T0 + 40)
    [resolved] = evaluator.evaluate(T0 + 40)
    assert resolved.kind == ALERT_RESOLVED and evaluator.firing == {"disconnected > 30s": False}


def test_no_samples_in_the_window_leaves_a_latency_alert_as_it_is() -> None:
    evaluator = AlertEvaluator([parse_rule("pong.max < 1ms over 5s")])
    evaluator.observe_latency("pong", 5_000.0, T0)
    assert [t.kind for t in evaluator.evaluate(T0 + 1)] == [ALERT_FIRING]
    assert evaluator.evaluate(T0 + 60) == []  # an outage: no pongs, no verdict (the error-rate rule speaks)
    assert evaluator.firing["pong.max < 1ms over 5s"] is True
