"""What the monitor keeps between requests (runs no longer written), and the page load's callback graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitor.app import create_app
from monitor.cache import RunCache, run_key, store_identity
from runstore.samples import SampleAggregator
from runstore.store import RunStore
from tests.monitor.conftest import Stores
from tests.monitor.test_app import _update
from tests.synthetic_runs import write_synthetic_run


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_is_bounded_least_recently_used_and_ages_out() -> None:
    clock = _Clock()
    cache = RunCache(entries=2, max_age_s=10.0, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    clock.now = 11.0
    assert cache.get("a") is None and len(cache) == 1
    assert cache.get_or_make(None, lambda: 5) == 5 and cache.get(None) is None  # a None key: never kept
    off = RunCache(0)
    off.put("a", 1)
    assert off.get("a") is None and off.get_or_make("a", lambda: 2) == 2 and len(off) == 0
    with pytest.raises(ValueError):
        RunCache(-1)


def test_keys_follow_the_run_record_and_the_store_file(stores: Stores, tmp_path: Path) -> None:
    identity = store_identity(stores.path)
    with RunStore.open(stores.path, readonly=True) as store:
        run = store.get_run(stores.run.run_id)
    key = run_key(identity, run)
    assert key is not None and key == run_key(store_identity(stores.path), run)
    assert run_key(identity, run, now=run.heartbeat_at - 1) == key  # finished: live at no time
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(stores.path, copy)
    assert store_identity(copy) != identity  # another file, even with the same bytes
    assert store_identity(tmp_path / "missing.sqlite3") is None
    assert run_key(None, run) is None
    live = write_synthetic_run(tmp_path / "live.sqlite3", seconds=5, rate=2, finished=False)
    with RunStore.open(tmp_path / "live.sqlite3") as store:
        store.heartbeat(live.run_id)
        record = store.get_run(live.run_id)
    assert run_key(store_identity(tmp_path / "live.sqlite3"), record) is None  # being written: never cached


def _select(client, search: str):  # type: ignore[no-untyped-def]
    deps = client.get("/_dash-dependencies").json
    select = next(d for d in deps if d["output"].startswith("..run-state.data"))
    reply = _update(client, select, [search, None, None], [["p50", "p99"], 0, None, None], "url.search")
    assert reply.status_code == 200
    return reply.json["response"]


def _sent_points(response: dict) -> int:
    traces = response["timeline"]["figure"]["data"]
    return next(len(t["x"]) for t in traces if t["meta"] == ["throughput/chat_message/sent"])


def test_a_finished_run_is_drawn_once_and_redrawn_when_written_again(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    run = write_synthetic_run(path, seconds=30, rate=3)
    cache = RunCache()
    client = create_app(path, run_cache=cache).server.test_client()
    first = _select(client, f"?run={run.run_id}")
    assert cache.misses and not cache.hits
    second = _select(client, f"?run={run.run_id}")
    assert cache.hits == 2  # the overview and the timeline
    assert second["timeline"]["figure"] == first["timeline"]["figure"]
    assert second["run-state"]["data"] == first["run-state"]["data"]
    # The run is written again (a writer resumed it): its heartbeat moves, and the page shows the new seconds.
    agg = SampleAggregator()
    for offset in range(30, 40):
        agg.incr("sent.chat_message", 5, at=run.start + offset + 0.5)
    samples, _ = agg.drain()
    with RunStore.open(path) as store:
        store.write_samples(run.run_id, samples)
    third = _select(client, f"?run={run.run_id}")
    assert _sent_points(third) > _sent_points(first)
    uncached = create_app(path, run_cache=0).server.test_client()
    assert _select(uncached, f"?run={run.run_id}")["timeline"]["figure"] == third["timeline"]["figure"]


def test_the_first_chart_waits_for_no_other_callback_of_the_page_load(stores: Stores) -> None:
    """Dash holds a callback back while another one that fires on the page load is to set one of its inputs:
    select_run (which draws the first chart) must not have such an input, or the chart is a round trip late.
    """
    deps = create_app(stores.path).server.test_client().get("/_dash-dependencies").json
    on_load = [d for d in deps if not d.get("prevent_initial_call")]
    select = next(d for d in deps if d["output"].startswith("..run-state.data"))
    inputs = {f"{i['id']}.{i['property']}" for i in select["inputs"]}
    for dep in on_load:
        if dep is select:
            continue
        outputs = {o.split("@")[0] for o in dep["output"].strip(".").split("...")}
        assert not inputs & outputs, f"select_run waits for {dep['output']}"
