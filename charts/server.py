"""What an operator reads from the target's scraped Prometheus samples.

The run store keeps every scraped sample as it came (``wsgauge_frames_in_total{type="ping"}``, cumulative;
``wsgauge_handling_seconds_bucket{le="0.005"}``, cumulative per bucket; ``wsgauge_connections_open``). Drawn
raw, a histogram alone is a dozen rising lines. Here each sample family becomes what a dashboard shows:

Families are named as exposed: a counter by its ``*_total`` sample, a histogram without its suffixes.

========== ============================================================================================
kind       series
========== ============================================================================================
rate       a counter (``*_total``; a histogram-less ``*_count``) as a per-second rate over each window
quantile   a histogram (``*_bucket``) as p50 / p99 of the observations *in each window*, interpolated in
           the bucket as Prometheus' ``histogram_quantile`` does (``*_seconds`` in milliseconds)
gauge      anything else, the window's mean (its max for names with ``max``; ``*_seconds`` in ms)
========== ============================================================================================

A counter that goes down (the server restarted) gives no rate for that window rather than a negative one;
the first window has nothing to differ from and gives no rate either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

__all__ = [
    "BUCKET_COLUMNS",
    "DERIVED_COLUMNS",
    "KINDS",
    "bucket_samples",
    "derive",
    "display_name",
    "families",
    "split_name",
]

BUCKET_COLUMNS: Final = ("name", "t", "last_t", "last", "min", "max", "mean")
"""Samples per window, as :meth:`runstore.store.RunStore.server_metrics_bucketed` returns them."""
DERIVED_COLUMNS: Final = ("family", "series", "kind", "unit", "t", "value")
"""A derived long frame: one row per point; ``t`` is the window start."""
KINDS: Final = ("rate", "quantile", "gauge")
_QUANTILES: Final = (50.0, 99.0)
_LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def split_name(name: str) -> tuple[str, dict[str, str]]:
    """``wsgauge_frames_in_total{type="ping"}`` -> ``("wsgauge_frames_in_total", {"type": "ping"})``."""
    base, _, rest = name.partition("{")
    return base, dict(_LABELS.findall(rest))


def _label_text(labels: dict[str, str]) -> str:
    return ",".join(v for k, v in sorted(labels.items()) if k != "le")


def _classify(base: str, bucketed: set[str]) -> tuple[str, str] | None:
    """``(family, kind)`` of a sample name, or ``None`` for samples nobody reads raw."""
    if base.endswith("_bucket"):
        return base[: -len("_bucket")], "quantile"
    if base.endswith("_created"):
        return None
    for suffix in ("_sum", "_count"):
        if base.endswith(suffix):
            family = base[: -len(suffix)]
            if family in bucketed or suffix == "_sum":
                return None  # the buckets say more than the mean; a lone _sum has no rate worth reading
            return base, "rate"
    if base.endswith("_total"):
        return base, "rate"
    return base, "gauge"


def families(names: Sequence[str]) -> dict[str, str]:
    """Every chartable family among scraped names, with its kind: ``{"wsgauge_frames_in_total": "rate"}``."""
    bases = {split_name(n)[0] for n in names}
    bucketed = {b[: -len("_bucket")] for b in bases if b.endswith("_bucket")}
    found: dict[str, str] = {}
    for base in sorted(bases):
        kind = _classify(base, bucketed)
        if kind is not None:
            found[kind[0]] = kind[1]
    return found


def display_name(family: str, series: str) -> str:
    """``frames_in ping``: the legend text of a derived series (``wsgauge_`` and ``_total`` dropped)."""
    short = family.removeprefix("wsgauge_").removesuffix("_total")
    return f"{short} {series}".strip() if series else short


def bucket_samples(samples: pd.DataFrame, width: int, origin: int = 0) -> pd.DataFrame:
    """Raw samples ``name, t, value`` per window of ``width`` seconds from ``origin``: :data:`BUCKET_COLUMNS`.

    ``last`` is the value of the window's latest sample (at ``last_t``), what counter rates differ.
    """
    if samples.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype=object if c == "name" else np.float64) for c in BUCKET_COLUMNS}
        )
    frame = samples.loc[:, ["name", "t", "value"]].copy()
    frame["t"] = frame["t"].astype(np.int64)
    frame["b"] = origin + (frame["t"] - origin) // width * width
    frame = frame.sort_values(["name", "b", "t"], kind="stable")
    grouped = frame.groupby(["name", "b"], sort=True)
    out = grouped.agg(
        last_t=("t", "last"), last=("value", "last"), min=("value", "min"), max=("value", "max"),
        mean=("value", "mean"),
    ).reset_index()  # fmt: skip
    return out.rename(columns={"b": "t"}).loc[:, list(BUCKET_COLUMNS)]


def _rows(family: str, series: str, kind: str, unit: str, t: np.ndarray, v: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"family": family, "series": series, "kind": kind, "unit": unit, "t": t, "value": v})


def _rate(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    last_t = group["last_t"].to_numpy(dtype=np.float64)
    last = group["last"].to_numpy(dtype=np.float64)
    dt, dv = np.diff(last_t), np.diff(last)
    rate = np.divide(dv, dt, out=np.full_like(dv, np.nan), where=dt > 0)
    rate[rate < 0] = np.nan  # a counter reset: the server restarted
    return group["t"].to_numpy(dtype=np.float64)[1:], rate


def _quantiles(
    group: pd.DataFrame, quantiles: Sequence[float], scale: float
) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Per-window quantiles from cumulative bucket counts (rows of one histogram, every ``le``)."""
    table = group.pivot_table(index="t", columns="le", values="last", aggfunc="last").sort_index(axis=1)
    bounds = table.columns.to_numpy(dtype=np.float64)
    cumulative = table.to_numpy(dtype=np.float64)
    if cumulative.shape[0] < 2 or not np.isinf(bounds[-1]):
        return []
    delta = np.diff(cumulative, axis=0)  # observations per bucket (cumulative in le) in each window
    totals = delta[:, -1]
    lower = np.concatenate([[0.0], bounds[:-1]])
    finite_top = bounds[-2] if bounds.size > 1 else 0.0
    t = table.index.to_numpy(dtype=np.float64)[1:]
    out = []
    for q in quantiles:
        values = np.full(totals.shape, np.nan)
        for i, total in enumerate(totals):
            if not total > 0 or np.any(np.diff(delta[i]) < 0):
                continue  # nothing observed, or a reset mid-window
            rank = q / 100.0 * total
            j = int(np.searchsorted(delta[i], rank, side="left"))
            j = min(j, bounds.size - 1)
            if np.isinf(bounds[j]):
                values[i] = finite_top
                continue
            below = delta[i, j - 1] if j > 0 else 0.0
            inside = delta[i, j] - below
            share = (rank - below) / inside if inside > 0 else 1.0
            values[i] = lower[j] + (bounds[j] - lower[j]) * share
        out.append((q, t, values * scale))
    return out


def derive(buckets: pd.DataFrame, quantiles: Sequence[float] = _QUANTILES) -> pd.DataFrame:
    """Turn windowed raw samples (:data:`BUCKET_COLUMNS`) into what operators read (:data:`DERIVED_COLUMNS`).

    Returns:
        One row per point, sorted by kind, family and series.
    """
    names = [str(n) for n in buckets["name"].unique()] if not buckets.empty else []
    kinds = families(names)
    bucketed = {f for f, k in kinds.items() if k == "quantile"}
    frames: list[pd.DataFrame] = []
    histograms: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for name, group in buckets.groupby("name", sort=True):
        base, labels = split_name(str(name))
        classified = _classify(base, bucketed)
        if classified is None:
            continue
        family, kind = classified
        series = _label_text(labels)
        seconds = family.endswith("_seconds")
        if kind == "quantile":
            le = labels.get("le", "+Inf")
            bound = math.inf if le in ("+Inf", "Inf") else float(le)
            histograms.setdefault((family, series), []).append(group.assign(le=bound))
        elif kind == "rate":
            t, v = _rate(group)
            frames.append(_rows(family, series, "rate", "/s", t, v))
        else:
            column = "max" if "max" in family else "mean"
            v = group[column].to_numpy(dtype=np.float64) * (1000.0 if seconds else 1.0)
            frames.append(
                _rows(family, series, "gauge", "ms" if seconds else "", group["t"].to_numpy(np.float64), v)
            )
    for (family, labels), parts in histograms.items():
        seconds = family.endswith("_seconds")
        for q, t, v in _quantiles(pd.concat(parts), quantiles, 1000.0 if seconds else 1.0):
            series = f"p{q:g}" + (f" {labels}" if labels else "")
            frames.append(_rows(family, series, "quantile", "ms" if seconds else "", t, v))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(
            {c: pd.Series(dtype=np.float64 if c in ("t", "value") else object) for c in DERIVED_COLUMNS}
        )
    out = pd.concat(frames, ignore_index=True)
    order = {k: i for i, k in enumerate(KINDS)}
    out["_k"] = out["kind"].map(order)
    return (
        out.sort_values(["_k", "family", "series", "t"], kind="stable")
        .drop(columns="_k")
        .reset_index(drop=True)
    )
