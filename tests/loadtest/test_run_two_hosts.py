"""``--master`` on one host, ``--worker`` on another: the worker's users reach the embedded server.

Two hosts on one machine: two network namespaces of our own joined by a veth pair, with private test
addresses (10.199.N.1 and .2), removed after the test. Needs root and ``ip netns``; skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runstore.store import RunStore
from tests.loadtest.locust_runs import REPO_ROOT, locust_command, locust_env, reap, stored_run


def _why_no_namespaces() -> str | None:
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2) for network namespaces"
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    return None


pytestmark = pytest.mark.skipif(_why_no_namespaces() is not None, reason=_why_no_namespaces() or "")


@dataclass(frozen=True)
class TwoHosts:
    master_ns: str
    worker_ns: str
    master_ip: str
    worker_ip: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def two_hosts() -> Iterator[TwoHosts]:
    tag = f"{os.getpid() % 100000}"
    subnet = f"10.199.{os.getpid() % 250 + 1}"
    hosts = TwoHosts(f"wsgm{tag}", f"wsgw{tag}", f"{subnet}.1", f"{subnet}.2")
    veth_m, veth_w = f"wsgm{tag}v", f"wsgw{tag}v"
    created: list[str] = []
    try:
        for ns in (hosts.master_ns, hosts.worker_ns):
            _ip("netns", "add", ns)
            created.append(ns)
        _ip("link", "add", veth_m, "type", "veth", "peer", "name", veth_w)
        ends = ((hosts.master_ns, veth_m, hosts.master_ip), (hosts.worker_ns, veth_w, hosts.worker_ip))
        for ns, dev, addr in ends:
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=10)
        pytest.skip(f"cannot create network namespaces here: {exc.stderr.decode(errors='replace').strip()}")
    try:
        yield hosts
    finally:
        for ns in created:  # deleting a namespace deletes the veth end in it, and so the pair
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=10)


def _in_namespace(ns: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            cwd=REPO_ROOT,
            env=locust_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.parametrize("bind", ["address", "wildcard"])
def test_worker_on_another_host_reaches_the_embedded_server(
    tmp_path: Path, two_hosts: TwoHosts, bind: str
) -> None:
    store_path = tmp_path / "wsgauge.sqlite3"
    bind_args = ("--master-bind-host", two_hosts.master_ip) if bind == "address" else ()
    master = _in_namespace(
        two_hosts.master_ns,
        locust_command(
            *("--master", *bind_args, "--expect-workers", "1", "--results", str(store_path)),
            *("-u", "6", "-r", "6", "-t", "8s", "--think-scale", "0.3", "--report", "false"),
        ),
        tmp_path / "master.log",
    )
    worker = _in_namespace(
        two_hosts.worker_ns,
        locust_command("--worker", "--master-host", two_hosts.master_ip),
        tmp_path / "worker.log",
    )
    try:
        code = master.wait(90)
        worker.wait(30)
    finally:
        reap(master)
        reap(worker)
    output = (tmp_path / "master.log").read_text() + (tmp_path / "worker.log").read_text()
    assert code == 0, output[-6000:]
    with RunStore.open(store_path, readonly=True) as store:
        record = store.get_run(stored_run(store_path))
        assert record.status == "completed", output[-4000:]
        assert record.options["role"] == "master" and record.options["workers"] == 1
        summary = record.summary
        assert summary is not None
        assert summary["latency"]["connect"]["count"] >= 5, summary  # the students connected
        assert not [k for k in summary["errors"] if k.startswith("errors.connect.")], summary["errors"]
        assert summary["sent_by_type"].get("notification_create", 0) > 0  # the back end's POSTs went through
        assert not [k for k in summary["errors"] if k.startswith("errors.notification_create.")]
