"""The probe's tests reuse the run store's per-test PostgreSQL database fixture."""

from __future__ import annotations

from tests.runstore.conftest import postgres_url

__all__ = ["postgres_url"]
