"""The monitor over a PostgreSQL run store: a run drawn, and an unreachable server or a database that is not
a run store said in one line, never a traceback. Each test has a database of its own, dropped after it."""

from __future__ import annotations

import logging

import psycopg
import pytest

from monitor import data
from monitor.app import create_app
from runstore.store import RunStore, StoreCorrupt, StoreError
from tests.monitor.test_app import _update
from tests.runstore.conftest import postgres_url  # noqa: F401  (the fixture)
from tests.synthetic_runs import write_synthetic_run

UNREACHABLE = "postgresql://postgres:hunter2@127.0.0.1:1/nothing"
"""Nothing listens on port 1 of loopback; the password must never reach the page."""


def _deps(client):  # type: ignore[no-untyped-def]
    deps = client.get("/_dash-dependencies").json
    runs = next(d for d in deps if d["output"].startswith("..runs-list.children"))
    select = next(d for d in deps if d["output"].startswith("..run-state.data"))
    return runs, select


def _page(url: str, search: str = "") -> tuple[dict, dict]:
    """What the runs refresh and the run selection answer on a page load of ``url``'s monitor."""
    client = create_app(url).server.test_client()
    runs, select = _deps(client)
    listed = _update(client, runs, [search, None, None, None, None], [], "url.search")
    chosen = _update(client, select, [search, None, None], [["p50", "p99"], 0, None, None], "url.search")
    assert listed.status_code == 200 and chosen.status_code == 200
    return listed.json["response"], chosen.json["response"]


def test_a_run_in_postgresql_is_listed_and_drawn(postgres_url: str) -> None:  # noqa: F811
    run = write_synthetic_run(postgres_url, seconds=20, rate=2)  # type: ignore[arg-type]
    listed, chosen = _page(postgres_url, f"?run={run.run_id}")
    assert listed["banner"]["className"] == "banner hidden"
    assert chosen["run-state"]["data"]["run"] == run.run_id
    assert any(t["meta"] == ["throughput/chat_message/sent"] for t in chosen["timeline"]["figure"]["data"])


def test_an_unreachable_server_is_said_in_the_banner(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(StoreError, match="cannot connect to the run store"), data.open_store(UNREACHABLE):
        pass
    with caplog.at_level(logging.ERROR):
        listed, chosen = _page(UNREACHABLE)
    banner = listed["banner"]["children"]
    assert "cannot connect to the run store postgresql://postgres:***@127.0.0.1:1/nothing" in banner
    assert listed["banner"]["className"] == "banner banner-error"
    assert "hunter2" not in str(listed) + str(chosen)
    assert chosen["run-state"]["data"]["error"].startswith("cannot connect")
    assert not [r for r in caplog.records if r.exc_info]  # a known problem: no traceback in the log


def test_a_database_that_is_not_a_run_store_is_said_in_one_line(
    postgres_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    with RunStore.open(postgres_url):
        pass  # a real store's schema ...
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("DROP TABLE runs CASCADE")  # ... that lost the table of runs
    not_a_store = pytest.raises(StoreCorrupt, match="is not a wsgauge run store")
    with not_a_store, data.open_store(postgres_url) as store:
        data.list_runs(store)
    with caplog.at_level(logging.ERROR):
        listed, chosen = _page(postgres_url)
    banner = listed["banner"]["children"]
    assert "is not a wsgauge run store this wsgauge can read" in banner and 'relation "runs"' in banner
    assert "\n" not in banner
    assert "is not a wsgauge run store" in chosen["run-state"]["data"]["error"]
    assert not [r for r in caplog.records if r.exc_info]
