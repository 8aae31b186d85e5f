"""``example_runs``: the set-up every example run test shares.

    done = example_runs("jsonrpc", "--open-rate", "5", server=("--misbehave", "error"), times=2)
    first, second = done.runs              # tests.loadtest.locust_runs.LocustRun, one per run
    assert first.returncode == 0, first.output
    done.store_path, done.seen             # the run store; the server's GET /stats after the last run

It starts ``examples/<name>/server.py`` (with ``server``'s arguments), runs the example's locustfile (or
``locustfile``, a test's own) ``times`` times against it into one store under ``tmp_path``, with
:data:`RUN` (5 users for 4 s, no auth, no report) before the test's own arguments, then stops the server.
It asserts nothing: each test says what its runs' exit codes must be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.examples.checks import server_stats
from tests.examples.runs import run_example
from tests.examples.servers import example_server
from tests.loadtest.locust_runs import LocustRun

RUN = ("-u", "5", "-r", "5", "-t", "4s", "--auth", "none", "--report", "false")
"""Every example run's Locust arguments: short, unauthenticated (a foreign server), no HTML report."""


@dataclass(frozen=True)
class ExampleRuns:
    store_path: Path
    runs: list[LocustRun]
    seen: dict[str, Any]
    """The server's ``GET /stats`` after the last run: what it received and sent."""

    @property
    def run(self) -> LocustRun:
        """The only run (``times=1``)."""
        (run,) = self.runs
        return run


class RunExamples(Protocol):
    def __call__(
        self,
        name: str,
        *args: str,
        server: Sequence[str] = (),
        locustfile: Path | None = None,
        times: int = 1,
    ) -> ExampleRuns: ...


@pytest.fixture
def example_runs(tmp_path: Path) -> RunExamples:
    def run(
        name: str,
        *args: str,
        server: Sequence[str] = (),
        locustfile: Path | None = None,
        times: int = 1,
    ) -> ExampleRuns:
        store_path = tmp_path / "store.sqlite3"
        with example_server(name, *server) as url:
            runs = [run_example(store_path, locustfile or name, url, *RUN, *args) for _ in range(times)]
            seen = server_stats(url)
        return ExampleRuns(store_path, runs, seen)

    return run
