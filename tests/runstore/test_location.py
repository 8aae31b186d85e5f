"""``--results`` values: paths pass through, ``postgresql://`` URLs too (as strings), URLs of back ends not
served are refused by name."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from runstore.location import (
    ENVIRONMENT_VARIABLE,
    StoreLocationError,
    default_location,
    results_argument,
    store_location,
)
from runstore.store import DEFAULT_RESULTS


@pytest.mark.parametrize("value", ["runs.sqlite3", "results/wsgauge.sqlite3", "/tmp/x/y.db", "a:b.sqlite3"])
def test_paths_are_paths(value: str) -> None:
    assert store_location(value) == Path(value)


@pytest.mark.parametrize(
    "value", ["postgresql://user@host/db", "postgres://h/d", "POSTGRESQL://u:p@h:5433/d"]
)
def test_postgresql_urls_are_kept_as_given(value: str) -> None:
    assert store_location(value) == value
    assert results_argument(value) == value


@pytest.mark.parametrize("value", ["sqlite:///x.db", "redis://127.0.0.1:6379/0", "mysql://h/d"])
def test_other_urls_are_refused_naming_the_scheme(value: str) -> None:
    with pytest.raises(StoreLocationError, match=value.split("://")[0] + "://"):
        store_location(value)
    with pytest.raises(argparse.ArgumentTypeError, match="not supported"):
        results_argument(value)


def test_empty_is_refused() -> None:
    with pytest.raises(StoreLocationError, match="empty"):
        store_location("  ")


def test_default_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    assert default_location() == str(DEFAULT_RESULTS)
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "/tmp/elsewhere.sqlite3")
    assert default_location() == "/tmp/elsewhere.sqlite3"
