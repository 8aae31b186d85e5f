"""The probe on a PostgreSQL run store (real server on 127.0.0.1:5432, a database of the test's own)."""

from __future__ import annotations

from probe.__main__ import main
from runstore.store import RunStore


def test_the_probe_writes_and_continues_its_run_in_postgresql(reference_server, postgres_url, capsys) -> None:
    args = [
        *("--host", reference_server.ws_url, f"--secret={reference_server.secret}"),
        *("--interval", "0.25", "--timeout", "2", "--duration", "2", "--name", "pg"),
        *("--results", postgres_url),
    ]
    assert main(args) == 0
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(new)" in out and "(continued)" in out
    with RunStore.open(postgres_url, readonly=True) as store:
        [run] = store.list_runs()
        latency = store.latency(run.id, ["pong"])
    assert run.kind == "probe" and run.status == "stopped"
    assert latency["count"].sum() >= 4
