"""The report of one run: one self-contained file, every figure drawn, the data block round-trips."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from reports.build import build_report
from reports.data import SUMMARY_PERCENTILES, error_rates, load_run
from reports.embed import BLOCK_ID, SCHEMA_VERSION, extract_block, read_report
from reports.figures import FIGURE_TITLES
from runstore import histogram as hdr
from runstore.store import RunStore
from tests.reports.conftest import CHAT, Runs

_NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"(?P<id>[^"]+)",\s*')


def values(array: object) -> list:
    """A trace's ``x``/``y`` as a list: plotly writes numpy arrays as ``{"dtype", "bdata"}`` (base64)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array or [])


def figures_in(html: str) -> dict[str, list[dict]]:
    """Figure id -> its traces, parsed out of every ``Plotly.newPlot("id", [traces], ...)`` call."""
    decoder = json.JSONDecoder()
    figures = {}
    for match in _NEW_PLOT.finditer(html):
        traces, _ = decoder.raw_decode(html, match.end())
        figures[match["id"]] = traces
    return figures


def check_report(html: str, store_path: Path, run_id: int) -> None:
    """Everything a report must hold, checked against the store it came from."""
    # plotly.js embedded exactly once, nothing loaded from the network.
    assert html.count(get_plotlyjs()[:2000]) == 1
    assert not re.search(r"<script[^>]+src=", html)
    assert "cdn.plot.ly" not in html.replace(get_plotlyjs(), "")
    # Every chart present with data (server metrics and send lag only when the run has them).
    figures = figures_in(html)
    for figure_id in figures:
        assert figure_id in FIGURE_TITLES
    for figure_id in (
        "fig-latency-time",
        "fig-latency-spectrum",
        "fig-latency-distribution",
        "fig-throughput",
    ):
        assert figures[figure_id], figure_id
        assert any(len(values(trace.get("y"))) for trace in figures[figure_id])
    for figure_id in ("fig-errors", "fig-queue", "fig-connections"):
        assert figure_id in figures
    # The data block: versioned, and its numbers are the store's, read off merged histograms.
    block = extract_block(html)
    assert block["schema_version"] == SCHEMA_VERSION
    data = read_report_text(html)
    with RunStore.open(store_path, readonly=True) as store:
        assert data.run["id"] == run_id
        assert set(block["summaries"]) == set(store.latency_metrics(run_id))
        for metric, summary in block["summaries"].items():
            merged = store.merged_histogram(run_id, metric)
            expected = hdr.percentiles(merged, list(SUMMARY_PERCENTILES.values()))
            for name, pct in SUMMARY_PERCENTILES.items():
                assert summary[f"{name}_us"] == expected[pct], (metric, name)
                assert merged.get_value_at_percentile(pct) == expected[pct]
            assert summary["count"] == merged.get_total_count()
            assert summary["max_us"] == hdr.summarize(merged)["max_us"]
            # The per-second histograms merge back to the same numbers.
            again = data.merged(metric)
            assert hdr.percentiles(again, list(SUMMARY_PERCENTILES.values())) == expected
        rows = store.latency(run_id)
        assert len(data.latency) == len(rows)
        assert data.latency["p99_us"].tolist() == rows["p99_us"].tolist()
        counters = store.counters(run_id)
        assert data.counters["value"].sum() == counters["value"].sum()
        assert len(data.events) == len(store.events(run_id))
        assert len(data.server_metrics) == len(store.server_metrics(run_id))
    assert error_rates(data) == error_rates(load_run(store_path, run_id))


def read_report_text(html: str):
    from reports.embed import block_to_run

    return block_to_run(extract_block(html))


def test_report_from_synthetic_run(runs: Runs) -> None:
    html = runs.report.read_text()
    check_report(html, runs.store, runs.base.run_id)
    figures = figures_in(html)
    assert "fig-send-lag" in figures and "fig-server" in figures
    # Errors every 7th second (one per second), a 5-second outage seen in the connection states.
    errors = figures["fig-errors"]
    assert sum(sum(values(t["y"])) for t in errors) == len(range(0, 60, 7)) - 1  # second 21 is in the outage
    reconnecting = [t for t in figures["fig-connections"] if t.get("name") == "reconnecting"]
    assert max(values(reconnecting[0]["y"])) == 10
    # Summary table: a row per metric with the p99 in ms.
    data = read_report(runs.report)
    p99 = hdr.percentiles(data.merged(CHAT), [99.0])[99.0]
    row = re.search(rf'<tr data-metric="{CHAT}">(.*?)</tr>', html).group(1)
    assert f"{p99 / 1000:.3f}" in row


def test_report_from_real_short_run(real_run_store: tuple[Path, int], tmp_path: Path) -> None:
    store_path, run_id = real_run_store
    path = build_report(store_path, run_id, tmp_path / "real.html")
    html = path.read_text()
    check_report(html, store_path, run_id)
    assert "fig-server" in figures_in(html)  # the embedded reference server is scraped


def test_build_newest_run_by_default(runs: Runs, tmp_path: Path) -> None:
    path = build_report(runs.store, None, tmp_path / "sub" / "latest.html")
    assert read_report(path).run["id"] == runs.shift20.run_id


def test_block_escapes_closing_tags(runs: Runs, tmp_path: Path) -> None:
    from dataclasses import replace

    from reports.build import write_report

    data = load_run(runs.store, runs.base.run_id)
    tricky = replace(data, run={**data.run, "name": "</script><b>x</b>"})
    path = write_report(tricky, tmp_path / "tricky.html")
    html = path.read_text()
    assert f'id="{BLOCK_ID}"' in html and "</script><b>" not in html
    assert read_report(path).run["name"] == "</script><b>x</b>"


@pytest.mark.parametrize("seconds", [0])
def test_run_without_samples_is_refused(tmp_path: Path, seconds: int) -> None:
    from reports.errors import ReportError
    from runstore.store import RunInfo

    store_path = tmp_path / "empty.sqlite3"
    with RunStore.open(store_path) as store:
        run_id = store.create_run(RunInfo(name="empty", target="ws://127.0.0.1:1/ws"))
    with pytest.raises(ReportError, match=f"run {run_id} .* has no samples"):
        build_report(store_path, run_id, tmp_path / "x.html")
