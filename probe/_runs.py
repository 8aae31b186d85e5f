"""The probe's run: one open-ended run of kind ``probe`` per probe name, continued after every restart."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

from runstore.store import RunInfo, RunStore

__all__ = ["PROBE_KIND", "open_probe_run"]

PROBE_KIND = "probe"


def _is_probe_run(options: Mapping[str, Any], name: str) -> bool:
    return options.get("kind") == PROBE_KIND and options.get("probe") == name


def open_probe_run(
    store: RunStore, name: str, target: str, options: Mapping[str, Any], versions: Mapping[str, Any]
) -> tuple[int, bool]:
    """The id of probe ``name``'s run, created on first use; and whether an existing run was continued.

    Raises:
        StoreError / sqlite3.Error / OSError: the store cannot be read or written.
    """
    for run in store.list_runs():
        if run.name == name and _is_probe_run(run.options, name):
            store.heartbeat(run.id)
            return run.id, True
    info = RunInfo(
        name=name,
        target=target,
        options={**options, "kind": PROBE_KIND, "probe": name},
        versions=dict(versions),
        machine={"host": platform.node(), "python": platform.python_version()},
    )
    return store.create_run(info), False
