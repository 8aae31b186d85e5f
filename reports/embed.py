"""The machine-readable data block inside every report: written once, read back by the gate.

A report carries its run as JSON in ``<script type="application/json" id="wsgauge-data">``: metadata, per-type
summaries and the columnar frames of :class:`~reports.data.RunData`, including the encoded histogram of every
second. The HTML file alone is then the artifact a CI job keeps and a gate reads.

Block layout (``schema_version`` 1)::

    {"format": "wsgauge-report", "schema_version": 1, "kind": "run",
     "run": {...}, "start": t0, "end": t1, "resolution": 1,
     "summaries": {metric: {"count": n, "p50_us": ..., ...}},
     "latency": {"metric": [...], "t": [...], ..., "hist": [...]},      # one list per column
     "counters": {...}, "gauges": {...}, "events": {...}, "server_metrics": {...}}

``resolution`` is the seconds each row stands for: 1 (every second) for runs up to 10 minutes; beyond, the
report's chart window (:func:`reports.build.report_data`: 10 s for an hour, 3 min for a day), each row the
exact merge of its window (histograms added, counters summed, gauge sums and counts added, the last server
scrape of the window), so a day's block is a few megabytes. ``start`` / ``end`` stay the run's own seconds.

Readers refuse a newer ``schema_version`` and validate the shape before use: every problem is a
:class:`~reports.errors.ReportError` that names it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from reports.data import (
    COUNTER_COLUMNS,
    EVENT_COLUMNS,
    GAUGE_COLUMNS,
    LATENCY_COLUMNS,
    SERVER_COLUMNS,
    RunData,
    latency_summary,
)
from reports.errors import ReportError

__all__ = [
    "BLOCK_ID",
    "FORMAT",
    "SCHEMA_VERSION",
    "ReportError",
    "block_to_run",
    "data_block",
    "extract_block",
    "read_block",
    "read_report",
    "run_to_block",
]

FORMAT = "wsgauge-report"
SCHEMA_VERSION = 1
BLOCK_ID = "wsgauge-data"

_FRAMES: Mapping[str, Sequence[str]] = {
    "latency": LATENCY_COLUMNS,
    "counters": COUNTER_COLUMNS,
    "gauges": GAUGE_COLUMNS,
    "events": EVENT_COLUMNS,
    "server_metrics": SERVER_COLUMNS,
}
_BLOCK_RE = re.compile(
    r'<script\s+type="application/json"\s+id="' + BLOCK_ID + r'"\s*>(?P<body>.*?)</script>', re.DOTALL
)


def _column(series: pd.Series) -> list[Any]:
    values = series.tolist()
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]


def run_to_block(data: RunData) -> dict[str, Any]:
    """Return the JSON-ready data block of a run (metadata, summaries, frames)."""
    block: dict[str, Any] = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "kind": "run",
        "run": dict(data.run),
        "start": data.start,
        "end": data.end,
        "resolution": data.resolution,
        "summaries": {metric: latency_summary(data, metric) for metric in data.metrics},
    }
    for name, columns in _FRAMES.items():
        frame = getattr(data, name)
        block[name] = {column: _column(frame[column]) for column in columns}
    return block


def data_block(block: Mapping[str, Any]) -> str:
    """Serialise a block into its ``<script>`` element (``<`` escaped so no text can close the element)."""
    body = json.dumps(block, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return f'<script type="application/json" id="{BLOCK_ID}">{body}</script>'


def extract_block(html: str, source: str = "the file") -> dict[str, Any]:
    """Find, parse and version-check the data block of a report.

    Raises:
        ReportError: no block (not a wsgauge report), JSON that does not parse (damaged), a missing or newer
            schema version.
    """
    match = _BLOCK_RE.search(html)
    if match is None:
        raise ReportError(f"{source} is not a wsgauge report (no {BLOCK_ID} data block)")
    try:
        block = json.loads(match.group("body"))
    except ValueError as exc:
        raise ReportError(f"{source}: the {BLOCK_ID} data block is damaged ({exc})") from exc
    if not isinstance(block, dict) or block.get("format") != FORMAT:
        raise ReportError(f"{source}: the {BLOCK_ID} data block is damaged (format is not {FORMAT!r})")
    version = block.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ReportError(f"{source}: the {BLOCK_ID} data block is damaged (no integer schema_version)")
    if version > SCHEMA_VERSION or version < 1:
        raise ReportError(
            f"{source}: unknown report schema version {version} (this wsgauge reads up to {SCHEMA_VERSION})"
        )
    return block


def _frame_from(block: Mapping[str, Any], name: str, source: str) -> pd.DataFrame:
    columns = _FRAMES[name]
    raw = block.get(name)
    if not isinstance(raw, dict):
        raise ReportError(f"{source}: the data block is damaged ({name!r} is missing)")
    missing = [c for c in columns if not isinstance(raw.get(c), list)]
    if missing:
        raise ReportError(f"{source}: the data block is damaged ({name} lacks column {missing[0]!r})")
    lengths = {len(raw[c]) for c in columns}
    if len(lengths) > 1:
        raise ReportError(f"{source}: the data block is damaged ({name} columns differ in length)")
    return pd.DataFrame({c: raw[c] for c in columns}, columns=list(columns))


def block_to_run(block: Mapping[str, Any], source: str = "the file") -> RunData:
    """Rebuild the :class:`RunData` snapshot of a report's block.

    Raises:
        ReportError: if the block is not a run report or misses anything a run needs.
    """
    if block.get("kind") != "run":
        raise ReportError(f"{source} is a wsgauge {block.get('kind')!r} report, not a run report")
    try:
        run = dict(block["run"])
        start, end, resolution = int(block["start"]), int(block["end"]), int(block["resolution"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{source}: the data block is damaged (bad run header: {exc})") from exc
    frames = {name: _frame_from(block, name, source) for name in _FRAMES}
    latency = frames["latency"]
    try:
        latency = latency.astype({c: "int64" for c in LATENCY_COLUMNS if c not in ("metric", "hist")})
        latency["mean_us"] = latency["mean_us"].astype("float64")
    except (TypeError, ValueError) as exc:
        raise ReportError(f"{source}: the data block is damaged (latency: {exc})") from exc
    if latency.empty or int(latency["count"].sum()) == 0:
        raise ReportError(f"{source}: run {run.get('id', '?')} has no latency samples")
    return RunData(
        run=run,
        start=start,
        end=end,
        resolution=resolution,
        latency=latency,
        counters=frames["counters"],
        gauges=frames["gauges"],
        events=frames["events"],
        server_metrics=frames["server_metrics"],
    )


def read_block(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and version-check the data block of a report or comparison file.

    Raises:
        ReportError: unreadable file, not a report, damaged block, unknown schema version.
    """
    path = Path(path)
    try:
        html = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ReportError(f"no such report: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path} as a wsgauge report: {exc}") from exc
    return extract_block(html, str(path))


def read_report(path: str | os.PathLike[str]) -> RunData:
    """Read the run embedded in a report file.

    Raises:
        ReportError: unreadable file, not a report, damaged block, unknown schema version, no samples.
    """
    return block_to_run(read_block(path), str(path))
