"""Counting generator-bound seconds: the run's last (partial, stopping) second is never judged."""

from __future__ import annotations

import pandas as pd

from charts.health import generator_health
from runstore.names import GAUGE_GENERATOR_LOOP_LAG


def _lag(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"name": GAUGE_GENERATOR_LOOP_LAG, "t": range(100, 100 + len(values)), "max": values})


def test_a_stall_while_the_run_stops_flags_nothing() -> None:
    health = generator_health(_lag([0.8] * 7 + [30.0]))
    assert health is not None
    assert (health.judged, health.bound, health.sentence) == (7, 0, "")


def test_a_stall_before_the_end_is_counted() -> None:
    health = generator_health(_lag([0.8, 30.0, 0.8, 0.8]))
    assert health is not None
    assert (health.judged, health.bound, health.bound_t) == (3, 1, (101,))
    assert health.sentence.startswith("latency in 1 of 3 seconds is the load generator's")


def test_one_second_alone_is_judged() -> None:
    health = generator_health(_lag([30.0]))
    assert health is not None and (health.judged, health.bound) == (1, 1)


def test_a_range_that_stops_before_the_end_judges_its_last_second() -> None:
    health = generator_health(_lag([0.8, 0.8, 30.0]), ends_run=False)
    assert health is not None and (health.judged, health.bound) == (3, 1)
