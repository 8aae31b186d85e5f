"""The report header describes a shape run by its shape, and warns when the load generator set the latency."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.build import build_report
from reports.data import load_run
from reports.figures import report_figures
from tests.health_runs import TWO_STEPS, HealthRun, write_health_run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, HealthRun]]:
    path = tmp_path_factory.mktemp("health") / "runs.sqlite3"
    runs = {
        "shape": write_health_run(
            path, name="shape", shape=TWO_STEPS, peak_users=4, gc_seconds={3, 9, 17, 30}, cpu_seconds={30, 31}
        ),
        "plain": write_health_run(path, name="plain", users=3, seed=2),
        "old": write_health_run(path, name="old", users=3, health=False, seed=3),
    }
    return path, runs


def _report(store: tuple[Path, dict[str, HealthRun]], name: str, tmp_path: Path) -> str:
    path, runs = store
    return build_report(path, runs[name].run_id, tmp_path / f"{name}.html").read_text()


def test_a_shape_run_is_described_by_its_class_stages_and_observed_peak(store, tmp_path: Path) -> None:
    text = _report(store, "shape", tmp_path)
    assert '<p class="load muted" data-shape="TwoSteps">load: TwoSteps shape · stages ' in text
    assert "to 3 s: 2 users @10/s · to 8 s: 4 users @10/s" in text
    assert "<tr><th>shape</th><td>TwoSteps</td></tr>" in text
    assert "<tr><th>peak users</th><td>4 observed</td></tr>" in text
    assert "<tr><th>users</th>" not in text


def test_an_ordinary_run_keeps_its_u_and_r(store, tmp_path: Path) -> None:
    text = _report(store, "plain", tmp_path)
    assert "<tr><th>users</th><td>-u 3 -r 2</td></tr>" in text
    assert "data-shape=" not in text


def test_the_banner_counts_generator_bound_seconds_and_names_why(store, tmp_path: Path) -> None:
    text = _report(store, "shape", tmp_path)
    assert 'class="generator-bound" role="alert" data-bound="5" data-judged="39"' in text
    sentence = "latency in 5 of 39 seconds is the load generator&#x27;s, not the target&#x27;s: GC 4, CPU 2"
    assert sentence in text


def test_healthy_and_older_runs_show_no_banner(store, tmp_path: Path) -> None:
    for name in ("plain", "old"):
        assert 'class="generator-bound"' not in _report(store, name, tmp_path)


def test_the_generator_panel_charts_health_and_shades_bound_windows(store) -> None:
    path, runs = store
    data = load_run(path, runs["shape"].run_id)
    figures = report_figures([("run", data)])
    assert list(figures)[:2] == ["fig-latency-time", "fig-generator"]  # beside latency
    panel = figures["fig-generator"]
    assert {t.name for t in panel.data} == {"loop lag", "GC pause", "CPU"}
    assert max(y for t in panel.data if t.name == "GC pause" for y in t.y if y == y) == 20.0
    assert max(y for t in panel.data if t.name == "CPU" for y in t.y if y == y) == pytest.approx(97.0)
    # seconds 3, 9, 17 (GC) and 30, 31 (CPU): four separate stretches, on both charts
    for figure in (panel, figures["fig-latency-time"]):
        spans = sorted((s.x0, s.x1) for s in figure.layout.shapes if s.name == "generator-bound")
        assert spans == [(3, 4), (9, 10), (17, 18), (30, 32)]


def test_runs_without_health_gauges_have_no_panel_and_no_shading(store) -> None:
    path, runs = store
    figures = report_figures([("run", load_run(path, runs["old"].run_id))])
    assert "fig-generator" not in figures and not figures["fig-latency-time"].layout.shapes
