"""``--processes 2``: two Locust workers, one master, one merged run whose counts are exactly the sum.

The reference server counts every frame it receives (``wsgauge_frames_in_total{type=...}``), and the master
scrapes it one last time after the workers' final samples are in: for every message type, the run's merged
``sent.<type>`` total equals what the server received -- nothing lost, nothing counted twice.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import gevent
import psutil

from loadtest._shipping import Outbox, StoreThread, parse_payload
from runstore.samples import SampleAggregator
from runstore.store import RunStore
from tests.loadtest.locust_runs import (
    own_master_port,
    reap,
    run_locust,
    start_locust,
    stored_run,
    wait_for_log,
)

FRAMES_IN = re.compile(r'^wsgauge_frames_in_total\{type="(?P<type>[a-z_]+)"\}$')


def test_two_workers_merge_into_one_run(tmp_path: Path) -> None:
    run = run_locust(
        tmp_path / "wsgauge.sqlite3",
        *("--processes", "2", *own_master_port(), "-u", "8", "-r", "8", "-t", "6s", "--think-scale", "0.3"),
        *("--run-name", "two-workers", "--report", "false"),
        timeout=120,
    )
    assert run.returncode == 0, run.output
    with RunStore.open(run.store_path, readonly=True) as store:
        runs = store.list_runs()
        assert len(runs) == 1  # the workers wrote nothing themselves
        record = runs[0]
        assert record.status == "completed" and record.options["role"] == "master"
        assert record.options["workers"] == 2

        events = store.events(record.id)
        tags = set(events["user"].str.extract(r"-(w\d+)-")[0])
        assert tags == {"w0", "w1"}  # users of both workers, with distinct ids

        sent = store.counters(record.id, prefix="sent.").groupby("name")["value"].sum()
        server = store.server_metrics(record.id)
        last = server[server["t"] == server["t"].max()]
        received = {
            m["type"]: int(v)
            for name, v in zip(last["name"], last["value"], strict=True)
            if (m := FRAMES_IN.match(name)) and m["type"] != "invalid"
        }
        assert received, "no frames_in counters scraped"
        assert "incomplete" not in record.summary, run.output[-3000:]
        for kind, count in received.items():
            assert sent.get(f"sent.{kind}", 0) == count, (kind, sent.to_dict(), received, run.output[-3000:])
        ws_sent = sum(v for n, v in sent.items() if n != "sent.notification_create")  # that one is HTTP
        assert ws_sent == sum(received.values())

        # the merged pong histogram holds exactly the pongs both workers received
        pongs = store.counters(record.id, prefix="recv.pong")["value"].sum()
        assert store.merged_histogram(record.id, "pong").get_total_count() == pongs > 0


def test_a_worker_that_dies_keeps_what_it_shipped(tmp_path: Path) -> None:
    """SIGKILL one of two workers mid-run: the run completes, keeps the dead worker's shipped seconds and is
    marked incomplete (its last, unshipped seconds are lost)."""
    store_path = tmp_path / "wsgauge.sqlite3"
    log = tmp_path / "locust.log"
    locust = start_locust(
        *("--results", str(store_path), "--processes", "2", *own_master_port(), "-u", "6", "-r", "6"),
        *("-t", "10s"),
        *("--think-scale", "0.3", "--report", "false"),
        log=log,
    )
    try:
        wait_for_log(log, "All users spawned")
        time.sleep(5.0)  # more than one report interval (3 s): the worker has shipped seconds
        master = psutil.Process(locust.pid)
        workers = [c for c in master.children() if c.cmdline() == master.cmdline()]
        assert len(workers) == 2
        killed_at = time.time()
        workers[1].kill()
        code = locust.wait(60)
    finally:
        reap(locust)
    text = log.read_text()
    assert code in (0, 1), text[-4000:]
    with RunStore.open(store_path, readonly=True) as store:
        record = store.get_run(stored_run(store_path))
        assert record.status == "completed", text[-3000:]
        # ... and says that the dead worker's unshipped seconds are missing
        assert record.summary["incomplete"].startswith("no last samples from 1 worker(s)"), record.summary
        assert "is incomplete: no last samples from 1 worker(s)" in text
        events = store.events(record.id)
        tags = set(events["user"].str.extract(r"-(w\d+)-")[0])
        assert tags == {"w0", "w1"}  # the dead worker's users are in the run
        sent = store.counters(record.id, prefix="sent.")
        assert sent[sent["t"] < int(killed_at) - 1]["value"].sum() > 0
        assert sent[sent["t"] > int(killed_at) + 1]["value"].sum() > 0  # the survivor carried on


def _sent(payload: dict) -> int:
    return sum(s.counters.get("sent.chat_message", 0) for s in parse_payload(payload).samples)


def _busy(thread: StoreThread) -> threading.Event:
    """Occupy the store thread until the returned event is set (a slow encode on a loaded machine)."""
    release = threading.Event()
    thread._pool.spawn(release.wait, 10)
    return release


def test_a_sampler_killed_while_its_second_is_encoded_still_ships_that_second() -> None:
    """The worker's stop kills its sampler (``block=False``) wherever it is; if that is while the outbox
    encodes a drained second on the store thread, the final take must still ship that second.

    This was the lost ``sent.chat_message`` of ``test_two_workers_merge_into_one_run`` on a loaded machine.
    """
    thread = StoreThread()
    try:
        outbox = Outbox(7, "w0", thread)
        aggregator = SampleAggregator()
        now = time.time()
        aggregator.incr("sent.chat_message", 3, at=now - 1)  # a closed second: the sampler's
        aggregator.incr("sent.chat_message", 2, at=now)  # the current one: the final drain's
        release = _busy(thread)
        sampler = gevent.spawn(lambda: outbox(*aggregator.drain(before=now)))
        gevent.sleep(0.05)  # the sampler has drained its second and waits for the encoding
        assert not sampler.dead
        sampler.kill(block=False)  # what _stop_sampling does
        gevent.sleep(0)
        release.set()
        outbox(*aggregator.drain(before=None))  # the final tick
        payload = outbox.take(final=True)
    finally:
        thread.close()
    assert sampler.dead
    assert _sent(payload) == 5
    assert outbox.take(final=True)["samples"] == []  # shipped once


def test_a_periodic_take_while_a_second_is_encoded_loses_nothing() -> None:
    """Locust's report greenlet takes the outbox while the sampler's encoding is in flight: that second
    ships with a later payload (the payload taken now is sent, i.e. serialised, at once)."""
    thread = StoreThread()
    try:
        outbox = Outbox(7, "w0", thread)
        aggregator = SampleAggregator()
        aggregator.incr("sent.chat_message", 4, at=time.time() - 1)
        release = _busy(thread)
        sampler = gevent.spawn(lambda: outbox(*aggregator.drain(before=None)))
        gevent.sleep(0.05)
        assert not sampler.dead
        periodic = _sent(outbox.take())  # report_to_master, then sent
        release.set()
        sampler.join(10)
        final = _sent(outbox.take(final=True))
    finally:
        thread.close()
    assert (periodic, final) == (0, 4)
