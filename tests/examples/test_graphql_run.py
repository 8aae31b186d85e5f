"""The GraphQL example for real: its locustfile under Locust against its server, then the run store, the
monitor, ``reports build`` and the gate on what it stored; bad input from a misbehaving server counted."""

from __future__ import annotations

from pathlib import Path

from runstore.store import RunStore
from tests.examples.checks import counter_totals, gate_and_report, monitor_draws
from tests.examples.conftest import RunExamples
from tests.examples.runs import locustfile

QUERIES = ("gql:quote", "gql:echo")


def test_subscription_delivery_and_query_latency_are_stored_and_read_everywhere(
    tmp_path: Path, example_runs: RunExamples
) -> None:
    done = example_runs("graphql", times=2)
    store_path, seen, (first, second) = done.store_path, done.seen, done.runs
    assert first.returncode == 0, first.output
    assert second.returncode == 0, second.output
    assert "push:tick" in first.stdout  # the end-of-run summary

    started = {"quote": 0, "echo": 0, "ticks": 0}
    nexts = 0
    with RunStore.open(store_path, readonly=True) as store:
        for run_id in (first.run_id, second.run_id):
            assert run_id is not None and store.get_run(run_id).status == "completed"
            metrics = set(store.latency_metrics(run_id))
            assert {*QUERIES, "gql:connection_init", "push:tick", "connect"} <= metrics
            totals = counter_totals(store, run_id)
            assert not {k: v for k, v in totals.items() if k.startswith("errors.")}, totals
            for metric in (*QUERIES, "gql:connection_init"):
                # each query's next matched by its operation id (the complete after it is no reply)
                assert (
                    store.merged_histogram(run_id, metric).get_total_count() == totals[f"sent.{metric}"] > 0
                )
            assert totals["recv.next"] == totals["sent.gql:quote"] + totals["sent.gql:echo"]
            # each query's complete follows its next; a user's last may still be in flight when it closes
            assert totals["recv.next"] - 5 <= totals["recv.complete"] <= totals["recv.next"]
            assert totals["sent.gql:subscribe_ticks"] == totals["recv.connection_ack"] == 5  # one per user
            # the subscription's delivery latency, in microseconds, from the sentAt in each payload
            ticks = store.merged_histogram(run_id, "push:tick")
            assert ticks.get_total_count() == totals["recv.tick"] > 0
            started["quote"] += totals["sent.gql:quote"]
            started["echo"] += totals["sent.gql:echo"]
            started["ticks"] += totals["sent.gql:subscribe_ticks"]
            nexts += totals["recv.next"] + totals["recv.tick"]
    assert seen["operations"] == started  # what the server started is what the runs sent
    assert seen["next"] >= nexts  # ... and it sent every next the runs received (the last ones in flight)

    monitor_draws(store_path, 1, {*QUERIES, "push:tick"})
    verdict = gate_and_report(store_path, (1, 2), tmp_path, {*QUERIES, "push:tick"}, "graphql")
    assert {*QUERIES, "push:tick"} <= {rule["subject"] for rule in verdict["rules"]}


def test_bad_input_from_the_server_is_counted_by_name(example_runs: RunExamples) -> None:
    misbehave = ("--misbehave", "non_json,binary,unmatched,error", "--misbehave-every", "2")
    done = example_runs("graphql", server=misbehave)
    store_path, run = done.store_path, done.run
    assert run.returncode == 1, run.output  # the refused queries failed (Locust's exit code)
    with RunStore.open(store_path, readonly=True) as store:
        assert store.get_run(run.run_id).status == "completed"
        totals = counter_totals(store, run.run_id)
        answered = {m: store.merged_histogram(run.run_id, m).get_total_count() for m in QUERIES}
    failed = {
        k: v for k, v in totals.items() if k.startswith("errors.") and not k.startswith("errors.frame.")
    }
    assert failed and set(failed) <= {f"errors.{m}.graphql_error" for m in QUERIES}, totals
    for m in QUERIES:
        # one outcome per query: its next recorded, or its error message counted
        assert answered[m] + totals.get(f"errors.{m}.graphql_error", 0) == totals[f"sent.{m}"]
    assert totals["sent.gql:subscribe_ticks"] == 5 and totals["recv.tick"] > 0  # subscribe #1: never refused
    subscribes = sum(totals[f"sent.{m}"] for m in (*QUERIES, "gql:subscribe_ticks"))
    for code in ("malformed_frame", "unexpected_frame", "unmatched_reply"):
        assert totals[f"errors.frame.{code}"] >= subscribes // 2 - 5, (code, totals)
    assert sum(failed.values()) >= subscribes // 2 - 5, totals
    assert "unmatched_reply" in run.stdout and "graphql_error" in run.stdout


def test_a_close_mid_query_is_a_named_error_and_the_users_reconnect_and_resubscribe(
    example_runs: RunExamples,
) -> None:
    misbehave = ("--misbehave", "close", "--misbehave-every", "4")
    done = example_runs("graphql", "--reconnect-base-ms", "20", server=misbehave)
    store_path, run = done.store_path, done.run
    assert run.returncode == 1, run.output  # queries failed (Locust's --exit-code-on-error), the run went on
    with RunStore.open(store_path, readonly=True) as store:
        assert store.get_run(run.run_id).status == "completed"
        totals = counter_totals(store, run.run_id)
        events = store.events(run.run_id)
    lost = {k for k in totals if k.startswith("errors.") and k.endswith(".connection_lost")}
    assert lost and lost <= {f"errors.{m}.connection_lost" for m in QUERIES}, totals
    connected = int((events["kind"] == "connected").sum())
    assert connected > 5
    # every (re)connect opened the protocol again: connection_init acked, ticks subscribed
    assert totals["recv.connection_ack"] == totals["sent.gql:subscribe_ticks"] == connected


NO_SUBPROTOCOL = """
import importlib.util

spec = importlib.util.spec_from_file_location("graphql_example", {path!r})
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


class NoSubprotocolUser(example.GraphQLUser):
    subprotocols = ()
"""


def test_without_the_subprotocol_the_servers_refusal_is_counted_and_named(
    tmp_path: Path, example_runs: RunExamples
) -> None:
    user_file = tmp_path / "no_subprotocol.py"
    user_file.write_text(NO_SUBPROTOCOL.format(path=str(locustfile("graphql"))))
    done = example_runs("graphql", "NoSubprotocolUser", locustfile=user_file)
    store_path, run = done.store_path, done.run
    assert run.returncode == 1, run.output
    assert "4406 Subprotocol not acceptable" in run.stdout + run.stderr  # Locust's error report
    with RunStore.open(store_path, readonly=True) as store:
        assert store.get_run(run.run_id).status == "completed"
        totals = counter_totals(store, run.run_id)
        events = store.events(run.run_id)
    assert {k for k in totals if k.startswith("errors.")} == {"errors.gql:connection_init.connection_lost"}
    assert totals["sent.gql:connection_init"] == totals["errors.gql:connection_init.connection_lost"] > 0
    refused = events[events["detail"].str.contains("4406 Subprotocol not acceptable")]
    assert set(refused["kind"]) == {"disconnected", "reconnecting"}  # every connection refused, retried
