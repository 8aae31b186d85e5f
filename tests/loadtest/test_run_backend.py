"""The back end in real runs: it takes no student's slot, and it reaches every student on every worker.

``-u 1`` (or a shape that drops to one user) runs one student, who gets notifications. With ``--processes 2``
the reference server's own database shows notifications created for, and read by, students of both workers,
and the run store shows the total ``--notification-rate`` held.
"""

from __future__ import annotations

import re
import socket
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from runstore.store import RunStore
from tests.conftest import RunningServer
from tests.loadtest.locust_runs import LocustRun, run_locust

pytestmark = pytest.mark.timeout(180)


def totals(run: LocustRun, prefix: str) -> dict[str, int]:
    with RunStore.open(run.store_path, readonly=True) as store:
        return store.counters(run.run_id, prefix=prefix).groupby("name")["value"].sum().to_dict()


def test_one_user_is_one_student_who_gets_notifications(tmp_path: Path) -> None:
    run = run_locust(
        tmp_path / "wsgauge.sqlite3",
        *("-u", "1", "-r", "1", "-t", "4s", "--think-scale", "0.2", "--notification-rate", "5"),
        *("--report", "false"),
    )
    assert run.returncode == 0, run.output
    record = run.record()
    assert record.summary["users"]["peak_connected"] == 1
    with RunStore.open(run.store_path, readonly=True) as store:
        events = store.events(run.run_id)
    assert set(events[events["kind"] == "connected"]["user"]) == {"student-w0-0"}
    assert totals(run, "sent.notification_create")["sent.notification_create"] >= 10
    assert record.summary["latency"]["push:notification"]["count"] >= 10


SHAPE = """
import loadtest.backend  # noqa: F401
from loadtest.students import ChurnUser, StudentUser  # noqa: F401
from locust import LoadTestShape


class ThreeThenOne(LoadTestShape):
    def tick(self):
        t = self.get_run_time()
        return (3, 10) if t < 3 else (1, 10) if t < 8 else None
"""


def test_a_shape_that_drops_to_one_user_keeps_one_notified_student(tmp_path: Path) -> None:
    locustfile = tmp_path / "shape_run.py"
    locustfile.write_text(SHAPE)
    store_path = tmp_path / "wsgauge.sqlite3"
    run = run_locust(
        store_path,
        *("--think-scale", "0.2", "--notification-rate", "5", "--report", "false"),
        *("--churn-away", "0.2", "-f", str(locustfile)),
    )
    assert run.returncode == 0, run.output
    with RunStore.open(store_path, readonly=True) as store:
        start = store.get_run(run.run_id).started_at
        late = store.counters(run.run_id, prefix="recv.notification_update", start=start + 5.0)
        connected = store.gauges(run.run_id, ["users.connected"], start=start + 5.0)
    assert late["value"].sum() >= 5  # the one student left still receives notifications
    assert connected["max"].max() == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_workers_each_get_notifications_at_the_total_rate(
    tmp_path: Path, reference_server_factory: Callable[..., RunningServer]
) -> None:
    rate = 10.0
    server = reference_server_factory()
    run = run_locust(
        tmp_path / "wsgauge.sqlite3",
        *("--processes", "2", "-u", "6", "-r", "6", "-t", "10s", "--think-scale", "0.1"),
        # not Locust's default master port: another run on this machine would take our workers (or we its)
        *("--master-bind-port", str(port := free_port()), "--master-port", str(port)),
        *("--host", server.ws_url, f"--secret={server.secret}", f"--admin-token={server.admin_token}"),
        *("--notification-rate", str(rate), "--report", "false"),
        timeout=150,
    )
    assert run.returncode == 0, run.output

    # the target's own record: notifications for students of both workers, and read by both
    with sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT user_id, read, created_at FROM notifications ORDER BY seq").fetchall()
    created: dict[str, int] = {}
    read: dict[str, int] = {}
    for user_id, was_read, _ in rows:
        tag = re.fullmatch(r"student-(w\d+)-\d+", user_id)
        assert tag, user_id
        created[tag[1]] = created.get(tag[1], 0) + 1
        read[tag[1]] = read.get(tag[1], 0) + int(was_read)
    assert set(created) == {"w0", "w1"} and min(created.values()) >= 10, created
    assert set(read) == {"w0", "w1"} and min(read.values()) >= 1, read  # the pushes reached both

    # the total rate held, as the target saw it: over the steady part (both workers have their shares)
    times = [datetime.fromisoformat(at).timestamp() for _, _, at in rows]
    start, end = times[0] + 2.0, times[-1] - 1.0
    assert end - start >= 4.0, (times[0], times[-1])
    steady = sum(1 for t in times if start <= t < end) / (end - start)
    assert abs(steady - rate) <= 0.1 * rate, (steady, created)

    with RunStore.open(run.store_path, readonly=True) as store:
        sent = store.counters(run.run_id, prefix="sent.notification_create")["value"].sum()
        pushes = store.merged_histogram(run.run_id, "push:notification").get_total_count()
    assert 0 < pushes <= sent <= len(rows), (pushes, sent, len(rows))  # the run measured them


def test_an_external_target_without_admin_token_runs_without_back_end(
    tmp_path: Path, reference_server_factory: Callable[..., RunningServer]
) -> None:
    server = reference_server_factory()
    run = run_locust(
        tmp_path / "wsgauge.sqlite3",
        *("-u", "1", "-r", "1", "-t", "3s", "--host", server.ws_url, f"--secret={server.secret}"),
        *("--report", "false"),
    )
    assert run.returncode == 0, run.output  # not a run failed by 401s
    assert "no --admin-token for --host: the back end creates no notifications" in run.stderr
    assert totals(run, "sent.notification_create") == {}
    assert run.record().summary["users"]["peak_connected"] == 1
