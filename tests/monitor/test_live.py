"""Live updates without a browser: what one tick of the live callback sends (a Patch, or a redraw)."""

from __future__ import annotations

import time
from pathlib import Path

from dash import Patch, no_update

from monitor import callbacks, data
from runstore.samples import SampleAggregator
from runstore.store import RunStore
from tests.synthetic_runs import write_synthetic_run


def _state(path: Path, run_id: int) -> dict:
    with data.open_store(path) as store:
        view = data.overview(store, run_id)
    return {
        "run": run_id,
        "compare": None,
        "shift": 0.0,
        "span": list(view.span),
        "metrics": list(view.metrics),
        "compare_metrics": [],
        "server_names": [],
        "live": view.live,
        "empty": False,
    }


def _append(path: Path, run_id: int, seconds: range, error_code: str | None = None) -> None:
    agg = SampleAggregator()
    for second in seconds:
        agg.record_latency("pong", 800.0, at=second + 0.5)
        agg.incr("sent.chat_message", 10, at=second + 0.5)
        if error_code:
            agg.incr(f"errors.chat_message.{error_code}", 1, at=second + 0.5)
    samples, _ = agg.drain()
    with RunStore.open(path) as store:
        store.write_samples(run_id, samples)


def _live_timeline(path: Path) -> tuple[int, int, dict, dict, dict]:
    """A live 20-second run started 40 s ago, drawn once: ``(start, run_id, state, figure, view)``."""
    start = int(time.time()) - 40
    run = write_synthetic_run(path, start=start, seconds=20, rate=5, finished=False, metrics=("pong",))
    state = _state(path, run.run_id)
    selection = {"metrics": ["pong"], "percentiles": ["p50"], "server": []}
    figure, view = callbacks._build_timeline(path, state, selection, None, "u")
    view["selection"] = selection
    return start, run.run_id, state, figure, view


def test_a_tick_extends_traces_and_a_new_series_redraws(tmp_path: Path) -> None:
    path = tmp_path / "live.sqlite3"
    start, run_id, state, figure, view = _live_timeline(path)
    assert view["live"] and view["cursor"] == start + 19
    sent = view["keys"].index("throughput/chat_message/sent")
    assert len(figure["data"][sent]["x"]) == 19

    _append(path, run_id, range(start + 20, start + 25))
    patch, new_view, disabled, label = callbacks._live_update(path, state, view)
    assert isinstance(patch, Patch) and disabled is no_update
    operations = patch.to_plotly_json()["operations"]
    extended = {tuple(op["location"]) for op in operations if op["operation"] == "Extend"}
    assert ("data", sent, "x") in extended
    sent_x = next(op for op in operations if op["location"] == ["data", sent, "x"])["params"]["value"]
    assert len(sent_x) == 5  # seconds 19..23; 24 is the newest second and may still grow
    assert new_view["cursor"] == start + 24 and "live" in label

    _append(path, run_id, range(start + 25, start + 27), error_code="timeout")  # a new error code
    figure, newer, disabled, _ = callbacks._live_update(path, state, new_view)
    assert isinstance(figure, dict)  # redrawn in full, with the new series
    assert "errors/chat_message.timeout/rate" in newer["keys"] and disabled is False


def test_the_end_of_a_run_is_drawn_once_more_and_stops_the_ticks(tmp_path: Path) -> None:
    path = tmp_path / "ending.sqlite3"
    _, run_id, state, _, view = _live_timeline(path)
    with RunStore.open(path) as store:
        store.finish_run(run_id, "completed")
    figure, final, disabled, _ = callbacks._live_update(path, state, view)
    assert isinstance(figure, dict) and disabled is True and final["cursor"] is None
    sent = final["keys"].index("throughput/chat_message/sent")
    assert len(figure["data"][sent]["x"]) == 20  # now with the run's last second
