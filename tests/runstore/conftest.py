"""Run-store fixtures: a fresh PostgreSQL database per test, and the store location on either back end.

PostgreSQL is the machine's service on 127.0.0.1:5432 (trust auth, user ``postgres``, database ``test``;
``scripts/test-all`` installs and starts it on a plain Debian machine). Each test gets its own database,
dropped afterwards, so tests never see each other's runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from runstore._postgres import close_pools

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""The maintenance connection that creates and drops the per-test databases."""


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """``postgresql://...`` of an empty database made for this test (dropped after it)."""
    name = f"wsgauge_runstore_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        yield url
    finally:
        close_pools(url)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A run store location on each back end: the store contract's tests run on both."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite3")
    return request.getfixturevalue("postgres_url")
