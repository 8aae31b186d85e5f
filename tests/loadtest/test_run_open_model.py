"""The open model measures from the scheduled send time: a slowed or stalled server shows, it is not hidden.

A reference server with ``--test-delay-ms 50`` handles every frame 50 ms late; halfway through the run it is
also frozen (SIGSTOP) for 1.5 s, so frames queue up in the socket buffers. Students send chat messages on a
fixed schedule (``--open-rate``), so:

* the rate holds: as many messages are sent as were scheduled, stall or not (no coordinated omission);
* every ack latency includes the 50 ms, and the ones queued behind the stall include the queueing delay;
* the send lag stays small: the generator itself kept up, so the latency is the server's.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

from runstore.store import RunStore
from tests.loadtest.locust_runs import reap, start_locust, stored_run

USERS = 3
RATE = 10.0
RUN_S = 8
DELAY_MS = 50
STALL_S = 1.5


def test_open_model_latency_includes_server_delay_and_queueing(
    tmp_path: Path, reference_server_factory
) -> None:
    # explicit secret: a random token may start with "-", which argparse takes for an option
    server = reference_server_factory("--test-delay-ms", str(DELAY_MS), secret="s" + secrets.token_hex(16))
    store_path = tmp_path / "wsgauge.sqlite3"
    log = tmp_path / "locust.log"
    locust = start_locust(
        *("--results", str(store_path), "StudentUser", "-u", str(USERS), "-r", str(USERS), "-t", f"{RUN_S}s"),
        *("--host", server.ws_url, f"--secret={server.secret}", "--open-rate", str(RATE)),
        *("--request-timeout", "20", "--report", "false", "--run-name", "open-model-stall"),
        log=log,
    )
    try:
        time.sleep(4.0)  # Locust starts (~1 s), then about 3 s of steady traffic
        os.kill(server.proc.pid, signal.SIGSTOP)
        time.sleep(STALL_S)
        os.kill(server.proc.pid, signal.SIGCONT)
        assert locust.wait(60) == 0, log.read_text()[-5000:]
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        reap(locust)

    run_id = stored_run(store_path)
    with RunStore.open(store_path, readonly=True) as store:
        record = store.get_run(run_id)
        assert record.status == "completed"
        acks = store.merged_histogram(run_id, "ack:chat_message")
        assert acks.get_total_count() > 0
        assert acks.get_min_value() >= DELAY_MS * 1000 * 0.95  # every ack includes the server's delay
        assert acks.get_max_value() >= STALL_S * 1e6 * 0.6  # ... and the queue behind the stall
        assert acks.get_value_at_percentile(50) < 200_000  # most messages were not behind it

        sent = store.counters(run_id, prefix="sent.chat_message")["value"].sum()
        scheduled = USERS * RATE * RUN_S
        assert 0.75 * scheduled <= sent <= 1.1 * scheduled, (sent, scheduled)  # the rate held

        lag = store.merged_histogram(run_id, "send_lag")
        assert lag.get_total_count() == sent
        # the generator kept up (the 2-core test machine is shared: allow the odd scheduling hiccup)
        assert lag.get_value_at_percentile(90) < 100_000
