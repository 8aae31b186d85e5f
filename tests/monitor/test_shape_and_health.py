"""The run picker describes shape runs by their shape; the generator's health is charted and flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor import data, figures, layout
from tests.health_runs import TWO_STEPS, HealthRun, write_health_run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, HealthRun]]:
    path = tmp_path_factory.mktemp("monitor-health") / "runs.sqlite3"
    runs = {
        "shape": write_health_run(
            path, name="shape", shape=TWO_STEPS, peak_users=4, gc_seconds={3, 9, 17}, lag_seconds={9, 30}
        ),
        "old": write_health_run(path, name="old", users=3, health=False, seed=3),
    }
    return path, runs


def _rows(path: Path) -> dict[str, data.RunRow]:
    with data.open_store(path) as store:
        return {row.name: row for row in data.list_runs(store)}


def _text(component: object) -> str:
    return json.dumps(component.to_plotly_json(), default=lambda c: c.to_plotly_json())  # type: ignore[attr-defined]


def test_the_run_list_shows_a_shapes_class_stages_and_observed_peak(store) -> None:
    rows = _rows(store[0])
    shape, old = rows["shape"], rows["old"]
    assert shape.users is None and shape.load.shape_class == "TwoSteps" and shape.load.peak_users == 4
    assert shape.load.stages == "to 3 s: 2 users @10/s · to 8 s: 4 users @10/s"
    assert old.load.shape_class is None and old.load.short == "-u 3 -r 2"
    picker = "".join(_text(item) for item in layout.runs_list(list(rows.values()), None))
    assert "TwoSteps shape, peak 4 users" in picker and "to 3 s: 2 users @10/s" in picker
    assert "3 users" in picker  # the ordinary run keeps its -u


def test_the_run_header_shows_the_shape(store) -> None:
    path, runs = store
    with data.open_store(path) as reader:
        header = "".join(_text(c) for c in layout.run_header(data.overview(reader, runs["shape"].run_id)))
    assert '"shape"' in header and '"TwoSteps"' in header and '"peak users"' in header


def test_the_timeline_charts_the_generator_and_shades_its_bound_seconds(store) -> None:
    path, runs = store
    run = runs["shape"]
    with data.open_store(path) as reader:
        view = data.overview(reader, run.run_id)
        window = data.plan_window(view.span[0], view.span[1] + 1)
        series = data.read_timeline(reader, run.run_id, window, span=view.span, metrics=list(view.metrics))
    generator = series[series["family"] == "generator"]
    assert set(generator["name"]) == {"loop lag ms", "GC pause ms", "CPU %"}
    assert generator[generator["name"] == "GC pause ms"]["value"].max() == 20.0
    bound = series[series["family"] == "generator_bound"]["t"] - 0.5 - run.start
    assert sorted(bound.astype(int)) == [3, 9, 17, 30]
    fig = figures.make_timeline(
        series, rows=figures.timeline_rows(server=False, send_lag=False, generator=True), bucket=1
    )
    titles = [a.text for a in fig.layout.annotations]
    assert any("Load generator" in t for t in titles)
    shaded = [s for s in fig.layout.shapes if s.name == "generator-bound"]
    assert len(shaded) == 2 * 4  # four separate seconds, on the latency row and the generator row
    assert {s.yref for s in shaded} == {"y domain", "y2 domain"}


def test_older_runs_have_no_generator_row_and_no_flag(store) -> None:
    path, runs = store
    run = runs["old"]
    with data.open_store(path) as reader:
        view = data.overview(reader, run.run_id)
        window = data.plan_window(view.span[0], view.span[1] + 1)
        series = data.read_timeline(reader, run.run_id, window, span=view.span, metrics=list(view.metrics))
        assert data.range_health(reader, run.run_id, None, None) is None
    assert not series["family"].isin(["generator", "generator_bound"]).any()
    fig = figures.make_timeline(
        series, rows=figures.timeline_rows(server=False, send_lag=False, generator=True), bucket=1
    )
    assert not any("Load generator" in a.text for a in fig.layout.annotations) and not fig.layout.shapes
    assert layout.generator_flag(None) == ("", "generator-flag hidden", "")


def test_the_flag_counts_the_selected_ranges_bound_seconds(store) -> None:
    path, runs = store
    run = runs["shape"]
    with data.open_store(path) as reader:
        whole = data.range_health(reader, run.run_id, None, None)
        part = data.range_health(reader, run.run_id, run.start + 5, run.start + 20)
        quiet = data.range_health(reader, run.run_id, run.start + 20, run.start + 29)
        buckets = data.range_health(reader, run.run_id, None, None, width=10)
    assert whole is not None and (whole.bound, whole.judged) == (4, 39)  # the last second is not judged
    assert whole.reasons == (("GC", 3), ("loop lag", 2))
    text, classes, title = layout.generator_flag(whole)
    assert text == "⚠ generator-bound 4 of 39 s (10%)" and classes == "generator-flag"
    assert title == "latency in 4 of 39 seconds is the load generator's, not the target's: GC 3, loop lag 2"
    assert part is not None and (part.bound, part.judged) == (2, 15)
    assert (
        quiet is not None and quiet.bound == 0 and layout.generator_flag(quiet)[1] == "generator-flag hidden"
    )
    assert buckets is not None and (buckets.bound, buckets.judged) == (3, 4)  # 10-s buckets 0, 1 and 3
