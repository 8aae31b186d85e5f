"""The server dies mid-run and comes back: users reconnect, the run completes with the outage visible.

A reference server (fixed port and database) is SIGKILLed while Locust drives it with ``--host``, then
restarted on the same port and database two seconds later. The users go ``reconnecting``, back off, and are
``connected`` again once it is back; the stored run shows the outage in the ``users.*`` gauges and in the
connection events, and is ``completed``. Locust's exit code is 1 (its convention: some requests failed).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from runstore.names import state_gauge
from runstore.store import RunStore
from tests.loadtest.locust_runs import reap, start_locust, stored_run

USERS = 6


def test_server_outage_is_survived_and_stored(tmp_path: Path, reference_server_factory) -> None:
    # explicit credentials: a random token may start with "-", which argparse takes for an option
    server = reference_server_factory(
        secret="s" + secrets.token_hex(16), admin_token="a" + secrets.token_hex(8)
    )
    store_path = tmp_path / "wsgauge.sqlite3"
    log = tmp_path / "locust.log"
    locust = start_locust(
        *("--results", str(store_path), "-u", str(USERS), "-r", str(USERS), "-t", "13s"),
        *("--host", server.ws_url, f"--secret={server.secret}", f"--admin-token={server.admin_token}"),
        *("--reconnect-base-ms", "100", "--reconnect-max-ms", "800", "--think-scale", "0.5"),
        *("--report", "false", "--run-name", "outage"),
        log=log,
    )
    try:
        time.sleep(5.0)
        killed_at = time.time()
        server.kill()
        time.sleep(2.0)
        again = reference_server_factory(
            "--port",
            str(server.port),
            db_path=server.db_path,
            secret=server.secret,
            admin_token=server.admin_token,
        )
        back_at = time.time()
        assert again.port == server.port
        assert locust.wait(60) in (0, 1), log.read_text()[-5000:]  # 1: requests failed during the outage
    finally:
        reap(locust)

    run_id = stored_run(store_path)
    with RunStore.open(store_path, readonly=True) as store:
        record = store.get_run(run_id)
        assert record.status == "completed", log.read_text()[-3000:]
        assert record.summary["users"]["peak_reconnecting"] >= 1

        gauges = store.gauges(run_id, [state_gauge("connected"), state_gauge("reconnecting")])
        connected = gauges[gauges["name"] == state_gauge("connected")].set_index("t")["sum"]
        reconnecting = gauges[gauges["name"] == state_gauge("reconnecting")].set_index("t")["sum"]
        ws_users = connected.max()
        assert ws_users >= USERS - 2  # everyone but the back end (and perhaps a churning student)
        before = connected[connected.index < int(killed_at)]
        during = reconnecting[(reconnecting.index > int(killed_at)) & (reconnecting.index < int(back_at))]
        after = connected[connected.index > int(back_at) + 2]
        assert before.max() == ws_users
        assert during.max() >= ws_users - 1, reconnecting.to_dict()  # the outage is visible
        assert after.max() >= ws_users - 1, connected.to_dict()  # ... and so is the recovery

        events = store.events(run_id)
        lost = events[(events["kind"] == "reconnecting") & (events["ts"] >= killed_at - 0.5)]
        regained = events[(events["kind"] == "connected") & (events["ts"] >= back_at - 0.5)]
        assert lost["user"].nunique() >= ws_users - 1
        assert regained["user"].nunique() >= ws_users - 1

        errors = store.counters(run_id, prefix="errors.")
        assert errors["value"].sum() > 0  # connect failures (refused) while it was down
