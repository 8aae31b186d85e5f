"""Metrics: a private registry whose exposition Prometheus can parse."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from reference_server.metrics import Histogram, ServerMetrics


def test_exposition_parses_and_carries_the_counts():
    m = ServerMetrics(buffer_sizes=lambda: [10, 30], pending_jobs=lambda: 4)
    m.connections_open = 2
    m.frame_in("chat_message")
    m.frame_in("chat_message")
    m.frame_out("ack", 3)
    m.error("rate_limited")
    m.handling.observe(0.0003)
    m.observe_commit(0.002, 50)
    m.observe_loop_lag(0.01)
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("wsgauge_connections_open", ())] == 2
    assert samples[("wsgauge_frames_in_total", (("type", "chat_message"),))] == 2
    assert samples[("wsgauge_frames_out_total", (("type", "ack"),))] == 3
    assert samples[("wsgauge_errors_total", (("code", "rate_limited"),))] == 1
    assert samples[("wsgauge_outbound_buffer_bytes", ())] == 40
    assert samples[("wsgauge_outbound_buffer_max_bytes", ())] == 30
    assert samples[("wsgauge_db_pending_jobs", ())] == 4
    assert samples[("wsgauge_handling_seconds_count", ())] == 1
    assert samples[("wsgauge_handling_seconds_bucket", (("le", "0.0005"),))] == 1
    assert samples[("wsgauge_handling_seconds_bucket", (("le", "0.00025"),))] == 0


def test_each_app_has_its_own_registry():
    a, b = ServerMetrics(), ServerMetrics()
    a.frame_in("ping")
    assert b"ping" in a.render() and b'type="ping"' not in b.render()


def test_histogram_buckets_are_inclusive_upper_bounds():
    h = Histogram((1.0, 2.0))
    for v in (1.0, 1.5, 2.0, 3.0):
        h.observe(v)
    assert h.counts == [1, 2, 1] and h.sum == 7.5
