"""pandas is imported by the store's first read, not by a load generator's start (≈ 37 MB a process)."""

from __future__ import annotations

import subprocess
import sys

from runstore.lazy import LazyModule
from tests.conftest import REPO_ROOT


def test_lazy_module_imports_on_first_attribute_read():
    colorsys = LazyModule("colorsys")
    assert "colorsys" in repr(colorsys)
    assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules


def test_a_load_generator_starts_without_pandas_and_the_store_reads_with_it(tmp_path):
    script = f"""
import sys
import loadtest._integration, loadtest.students, loadtest.backend, runstore.store, runstore.health
assert "pandas" not in sys.modules, "pandas was imported by the load generator's start"
from runstore.store import RunInfo, RunStore
with RunStore.open({str(tmp_path / "s.sqlite3")!r}) as store:
    run_id = store.create_run(RunInfo(name="r", target="ws://127.0.0.1:1/ws"))
    frame = store.counters(run_id)
assert "pandas" in sys.modules and type(frame).__name__ == "DataFrame", type(frame)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
