"""What every example's run must give: a stored run that the monitor, ``reports build`` and the gate read."""

from __future__ import annotations

import json
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

from monitor import data as monitor_data
from monitor import figures
from runstore.store import RunStore
from tests.examples.runs import reports
from tests.examples.servers import EXAMPLES

__all__ = ["counter_totals", "gate_and_report", "monitor_draws", "server_stats"]


def counter_totals(store: RunStore, run_id: int) -> dict[str, int]:
    """Every counter of the run, summed over its seconds."""
    frame = store.counters(run_id)
    return {str(k): int(v) for k, v in frame.groupby("name")["value"].sum().items()}


def server_stats(ws_url: str) -> dict[str, Any]:
    """``GET /stats`` of an example server (same port as its WebSocket URL)."""
    base = ws_url.replace("ws://", "http://", 1).split("/", 3)
    with urllib.request.urlopen(f"{base[0]}//{base[2]}/stats", timeout=5) as response:
        return json.load(response)


def monitor_draws(store_path: Path, run_id: int, metrics: set[str]) -> None:
    """The monitor's data layer finds ``metrics`` in the run and its timeline figure draws each of them."""
    with RunStore.open(store_path, readonly=True) as store:
        view = monitor_data.overview(store, run_id)
        assert metrics <= set(view.metrics), view.metrics
        assert view.span is not None
        window = monitor_data.plan_window(view.span[0], view.span[1] + 1)
        series = monitor_data.read_timeline(store, run_id, window, span=view.span, metrics=sorted(metrics))
    drawn = set(series.loc[series["family"] == "latency", "name"])
    assert metrics <= drawn, drawn
    fig = figures.make_timeline(series, rows=figures.timeline_rows(server=False, send_lag=False), bucket=1)
    names = " ".join(str(trace.name) for trace in fig.data)
    assert all(metric in names for metric in metrics), names


def gate_and_report(
    store_path: Path, runs: tuple[int, int], tmp: Path, metrics: set[str], example: str
) -> dict[str, Any]:
    """``reports build`` each run, then ``reports compare`` the two reports with the example's ``gate.toml``
    (the CI recipe of ``docs/user-api.md``); return the gate's JSON verdict.

    The runs are seconds long: percentile rules are too thin to judge, so the gate runs with
    ``--allow-inconclusive`` and no warm-up; its rules must still name the example's own metrics.
    """
    html = []
    for run_id in runs:
        out = tmp / f"report-{run_id}.html"
        built = reports("build", "--results", str(store_path), str(run_id), "-o", str(out))
        assert built.returncode == 0, built.stderr
        text = out.read_text()
        assert all(metric in text for metric in metrics)
        html.append(out)
    verdict_path = tmp / "verdict.json"
    thresholds = EXAMPLES / example / "gate.toml"
    gate = reports(
        "compare",
        *map(str, html),
        *("--thresholds", str(thresholds), "--warmup", "0", "--allow-inconclusive"),
        *("--json", str(verdict_path), "--junit", str(tmp / "gate.xml")),
    )
    assert gate.returncode == 0, gate.stdout + gate.stderr
    verdict = json.loads(verdict_path.read_text())
    assert verdict["verdict"] == "pass"
    absolute = tomllib.loads(thresholds.read_text())["absolute"]["rules"]
    judged = {rule["rule"]: rule["status"] for rule in verdict["rules"]}
    assert all(judged.get(rule) in ("pass", "skipped") for rule in absolute), judged
    assert any(status == "pass" for rule, status in judged.items() if rule in absolute), judged
    return verdict
