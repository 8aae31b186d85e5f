"""The percentile spectrum: latency against percentile on HdrHistogram's ``1 / (1 - p)`` log axis.

One grid for the monitor and the reports, so a run's tail looks the same in both: 20 points a decade of
``1 / (1 - p)`` from 0 % to 99.9999 %, then the maximum. Only the percentiles a histogram's count can
resolve are drawn (p99.99 of 1,000 samples is the max again, not a finer measurement).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from hdrh.histogram import HdrHistogram

from runstore import histogram as hdr

__all__ = [
    "SPECTRUM_PERCENTILES",
    "SPECTRUM_TICKS",
    "Spectrum",
    "axis_ticks",
    "inverse_tail",
    "resolvable",
    "spectrum_of",
]

SPECTRUM_PERCENTILES: Final[tuple[float, ...]] = tuple(
    [round(100.0 * (1.0 - 10.0 ** (-k / 20.0)), 6) for k in range(0, 121)] + [100.0]
)
"""0 % ... 99.9999 %, evenly spaced on the ``1 / (1 - p)`` log axis, then the max (100)."""
SPECTRUM_TICKS: Final = (0.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)


def inverse_tail(percentile: Sequence[float] | np.ndarray) -> np.ndarray:
    """``1 / (1 - p)`` of percentiles in % (NaN for 100 %: the max has no place on this axis)."""
    p = np.asarray(percentile, dtype=np.float64) / 100.0
    with np.errstate(divide="ignore"):
        return np.where(p < 1.0, 1.0 / np.where(p < 1.0, 1.0 - p, 1.0), np.nan)


def resolvable(count: int) -> list[float]:
    """The grid's percentiles that ``count`` samples resolve (``1 / (1 - p) <= count``), plus the max."""
    if count <= 0:
        return []
    return [p for p in SPECTRUM_PERCENTILES if p == 100.0 or 1.0 / (1.0 - p / 100.0) <= count]


def axis_ticks() -> tuple[list[float], list[str]]:
    """Tick positions and labels of the percentile axis (``0%``, ``90%`` ... ``99.9999%``)."""
    values = inverse_tail(SPECTRUM_TICKS)
    return [float(v) for v in values], [f"{p:g}%" for p in SPECTRUM_TICKS]


@dataclass(frozen=True)
class Spectrum:
    """One histogram's spectrum: ``percentile`` (%), ``x`` on the ``1 / (1 - p)`` axis, ``value_us``."""

    percentile: np.ndarray
    x: np.ndarray
    value_us: np.ndarray

    @property
    def labels(self) -> list[str]:
        """``99.9 %`` ... ``max``, for hover text."""
        return [f"{p:.4f}".rstrip("0").rstrip(".") + " %" if p < 100 else "max" for p in self.percentile]


def spectrum_of(histogram: HdrHistogram) -> Spectrum:
    """Read the spectrum of a histogram exactly (HdrHistogram's percentiles, never interpolated).

    The max is placed one decade past the last resolvable percentile, so it closes the curve.
    """
    count = int(hdr.counts_view(histogram).sum())
    pcts = resolvable(count)
    values = hdr.percentiles(histogram, pcts)
    pct = np.asarray(pcts, dtype=np.float64)
    x = inverse_tail(pct)
    finite = np.isfinite(x)
    if (~finite).any() and finite.any():
        x[~finite] = 10 ** math.ceil(math.log10(max(float(x[finite].max()), 1.0)) + 1e-9)
    elif (~finite).any():
        x[~finite] = 10.0
    return Spectrum(pct, x, np.asarray([values[p] for p in pcts], dtype=np.float64))
