"""The JSON-RPC example for real: its locustfile under Locust against its server, then the run store,
the monitor, ``reports build`` and the gate on what it stored; bad input from a misbehaving server counted."""

from __future__ import annotations

from pathlib import Path

from runstore.store import RunStore
from tests.examples.checks import counter_totals, gate_and_report, monitor_draws
from tests.examples.conftest import RunExamples

METHODS = ("rpc:get_quote", "rpc:echo", "rpc:sum")


def test_per_method_latency_is_stored_and_read_by_the_monitor_the_report_and_the_gate(
    tmp_path: Path, example_runs: RunExamples
) -> None:
    done = example_runs("jsonrpc", times=2)
    store_path, seen, (first, second) = done.store_path, done.seen, done.runs
    assert first.returncode == 0, first.output
    assert second.returncode == 0, second.output
    assert first.run_id == 1 and second.run_id == 2
    assert "rpc:get_quote" in first.stdout  # the end-of-run summary

    sent = {name: 0 for name in ("get_quote", "echo", "sum", "subscribe")}
    with RunStore.open(store_path, readonly=True) as store:
        for run_id in (1, 2):
            assert store.get_run(run_id).status == "completed"
            assert {*METHODS, "rpc:subscribe", "push:ticker", "connect"} <= set(store.latency_metrics(run_id))
            totals = counter_totals(store, run_id)
            assert not {k: v for k, v in totals.items() if k.startswith("errors.")}, totals
            for metric in (*METHODS, "rpc:subscribe"):
                # every call sent got its reply, matched by id and recorded once
                assert (
                    store.merged_histogram(run_id, metric).get_total_count() == totals[f"sent.{metric}"] > 0
                )
                sent[metric.removeprefix("rpc:")] += totals[f"sent.{metric}"]
            assert totals["sent.rpc:subscribe"] == 5  # one ticker per user
            ticks = store.merged_histogram(run_id, "push:ticker").get_total_count()
            assert ticks == totals["recv.ticker"] > 0  # every notification timed from its ts
            # microseconds, per method: get_quote is served in ~5 ms (seeded lognormal), echo in ~0.2 ms
            quote, echo = (store.merged_histogram(run_id, m).get_value_at_percentile(50) for m in METHODS[:2])
            assert quote >= 2_000 and echo < quote
    assert seen["calls"] == sent  # what the server received is what the runs sent, per method

    monitor_draws(store_path, 1, {*METHODS, "push:ticker"})
    verdict = gate_and_report(store_path, (1, 2), tmp_path, {*METHODS, "push:ticker"}, "jsonrpc")
    subjects = {rule["subject"] for rule in verdict["rules"]}
    assert {*METHODS, "push:ticker"} <= subjects  # latency, error-rate and throughput rules of each method


def test_bad_input_from_the_server_is_counted_by_name_and_the_open_model_still_runs(
    example_runs: RunExamples,
) -> None:
    misbehave = ("--misbehave", "non_json,binary,unmatched,error", "--misbehave-every", "3")
    done = example_runs("jsonrpc", "--open-rate", "5", server=misbehave)
    store_path, run = done.store_path, done.run
    assert run.returncode == 1, run.output  # the error replies failed their calls (Locust's exit code)
    with RunStore.open(store_path, readonly=True) as store:
        assert store.get_run(run.run_id).status == "completed"
        assert "send_lag" in store.latency_metrics(run.run_id)  # the open model's scheduled quotes
        totals = counter_totals(store, run.run_id)
        answered = {m: store.merged_histogram(run.run_id, m).get_total_count() for m in METHODS}
    failed = {
        k: v for k, v in totals.items() if k.startswith("errors.") and not k.startswith("errors.frame.")
    }
    assert failed and set(failed) <= {f"errors.{m}.-32603" for m in METHODS}, totals  # the server's code
    for m in METHODS:
        # one outcome per call: its reply recorded, or its error reply counted
        assert answered[m] + totals.get(f"errors.{m}.-32603", 0) == totals[f"sent.{m}"]
    calls = sum(totals[f"sent.{m}"] for m in (*METHODS, "rpc:subscribe"))
    # every third call of a connection went wrong: each kind of bad frame, then the error reply
    for code in ("malformed_frame", "unexpected_frame", "unmatched_reply"):
        assert totals[f"errors.frame.{code}"] >= calls // 3 - 5, (code, totals)
    assert sum(failed.values()) >= calls // 3 - 5, totals
    assert "unmatched_reply" in run.stdout and "-32603" in run.stdout  # the summary's errors line


def test_a_close_mid_request_is_a_named_error_and_the_users_reconnect(example_runs: RunExamples) -> None:
    misbehave = ("--misbehave", "close", "--misbehave-every", "4")
    done = example_runs("jsonrpc", "--reconnect-base-ms", "20", server=misbehave)
    store_path, run = done.store_path, done.run
    assert run.returncode == 1, run.output  # calls failed (Locust's --exit-code-on-error), the run went on
    with RunStore.open(store_path, readonly=True) as store:
        assert store.get_run(run.run_id).status == "completed"
        totals = counter_totals(store, run.run_id)
        events = store.events(run.run_id)
    lost = {k: v for k, v in totals.items() if k.startswith("errors.") and k.endswith(".connection_lost")}
    failed = {k.removeprefix("errors.").removesuffix(".connection_lost") for k in lost}
    assert failed and failed <= {*METHODS, "rpc:subscribe"}, totals
    connected = int((events["kind"] == "connected").sum())
    assert connected > 5  # the users came back (and resubscribed) after each close
    assert totals["sent.rpc:subscribe"] == connected
