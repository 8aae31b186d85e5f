"""Time windows chosen from a run's length, so that a chart of any run has a bounded number of points.

A one-minute run is drawn second by second; an hour in 10 s windows; a day in 3 min windows: never more than
:data:`MAX_POINTS` windows per trace, whatever the duration, and the width is printed on the chart. Widths
come from a short ladder of round numbers so that the label reads naturally ("30 s windows").
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

__all__ = ["MAX_POINTS", "WIDTHS", "time_axis", "window_label", "window_of", "window_starts", "window_width"]

MAX_POINTS: Final = 600
"""Windows per trace at most (about one per horizontal pixel of a report chart)."""
WIDTHS: Final = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200)
"""Window widths in seconds, smallest first."""


def window_width(duration_s: float, *, max_points: int = MAX_POINTS, minimum: int = 1) -> int:
    """The narrowest width of :data:`WIDTHS` that cuts ``duration_s`` into ``max_points`` windows at most.

    Args:
        minimum: the data's own resolution (per-minute roll-ups: 60); the window is never narrower.
    """
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    duration = max(float(duration_s), 1.0)
    for width in WIDTHS:
        # windows sit on whole multiples of the width: a run that starts mid-window touches one more
        if width >= minimum and math.ceil(duration / width) + (width > 1) <= max_points:
            return width
    return max(math.ceil(duration / max_points), minimum)


def window_label(width: int) -> str:
    """``1 s windows``, ``30 s windows``, ``3 min windows``, ``1 h windows``."""
    if width % 3600 == 0:
        return f"{width // 3600} h windows"
    if width % 60 == 0 and width >= 60:
        return f"{width // 60} min windows"
    return f"{width} s windows"


def window_starts(t: np.ndarray, origin: int, width: int) -> np.ndarray:
    """The start of the window each second ``t`` falls in, windows counted from ``origin``."""
    t = np.asarray(t, dtype=np.int64)
    return origin + (t - origin) // width * width


def window_of(start: int, end: int, width: int) -> np.ndarray:
    """Every window start of ``[start, end)``: the x grid of a windowed trace (missing windows stay gaps)."""
    return np.arange(start, max(end, start + 1), width, dtype=np.int64)


def time_axis(duration_s: float) -> tuple[float, str]:
    """``(divisor, title)`` of a run-time axis: seconds up to 10 min, minutes up to 3 h, hours beyond."""
    if duration_s <= 600:
        return 1.0, "seconds since start"
    if duration_s <= 3 * 3600:
        return 60.0, "minutes since start"
    return 3600.0, "hours since start"
