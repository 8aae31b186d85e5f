"""Log-axis ticks of the latency charts: plain numbers at a density that follows the data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.figures import log_ticks, make_spectrum


def _visible(ticks: dict, lo: float, hi: float) -> list[str]:
    return [t for v, t in zip(ticks["tickvals"], ticks["ticktext"], strict=True) if lo <= v <= hi]


def test_two_decades_get_1_2_5_steps_in_plain_numbers() -> None:
    ticks = log_ticks(np.array([0.12, 0.8, 9.5]))
    assert ticks["tickmode"] == "array"
    assert _visible(ticks, 0.1, 10) == ["0.1", "0.2", "0.5", "1", "2", "5", "10"]


def test_a_wide_spread_gets_decades_and_seconds_past_1000_ms() -> None:
    ticks = log_ticks([0.05, 3.0], [40_000.0])
    assert _visible(ticks, 0.01, 100_000) == ["0.01", "0.1", "1", "10", "100", "1 s", "10 s", "100 s"]


def test_a_narrow_spread_gets_every_step_and_nan_or_zero_are_ignored() -> None:
    ticks = log_ticks(np.array([0.8, np.nan, 0.0, 1.3]))
    assert _visible(ticks, 0.5, 2) == ["0.5", "0.6", "0.7", "0.8", "0.9", "1", "2"]
    assert _visible(log_ticks(), 0.1, 100) == ["0.1", "1", "10", "100"]  # nothing to draw yet


def test_ticks_cover_what_a_live_run_may_grow_into() -> None:
    ticks = log_ticks([1.0, 2.0])
    assert min(ticks["tickvals"]) <= 0.001 and max(ticks["tickvals"]) >= 1_000_000


def test_spectrum_legend_is_below_the_axes_with_one_entry_per_metric() -> None:
    spectrum = pd.DataFrame({"metric": ["pong"] * 3, "percentile": [0.0, 90.0, 100.0], "value": [0.5, 1, 4]})
    fig = make_spectrum(spectrum, spectrum.copy())
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.yref == "container" and legend.y == 0
    assert [t.showlegend for t in fig.data] == [True, False]
    assert fig.data[0].legendgroup == fig.data[1].legendgroup == "pong"
    assert "0.5" in fig.layout.yaxis.ticktext and "5" in fig.layout.yaxis.ticktext
