"""The probe's run: one open-ended run of kind ``probe`` per probe name, continued after every restart."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

from runstore.store import RunInfo, RunStore

__all__ = ["PROBE_KIND", "open_probe_run", "store_resumes_runs"]

PROBE_KIND = "probe"


def store_resumes_runs(store: RunStore) -> bool:
    """Whether the store can put a finished run back to ``running`` (schema v2's ``open_run``).

    Where it can, a stopped probe's run is marked ``stopped`` and the next start reopens it; where it cannot
    (schema v1), the run stays ``running`` (shown stale while no probe writes it) so it can be continued.
    """
    return hasattr(store, "open_run") and hasattr(store, "find_run")


def open_probe_run(
    store: RunStore,
    name: str,
    target: str,
    options: Mapping[str, Any],
    versions: Mapping[str, Any],
    *,
    tag: str | None = None,
    build: str | None = None,
) -> tuple[int, bool]:
    """The id of probe ``name``'s run, created on first use; and whether an existing run was continued.

    Raises:
        StoreError / sqlite3.Error / OSError: the store cannot be read or written.
    """
    machine = {"hostname": platform.node(), "python": platform.python_version()}
    options = {**options, "kind": PROBE_KIND, "probe": name}
    if store_resumes_runs(store):
        continued = store.find_run(PROBE_KIND, name) is not None  # type: ignore[attr-defined]
        info = RunInfo(  # type: ignore[call-arg]
            name=name,
            target=target,
            options=options,
            versions=dict(versions),
            machine=machine,
            kind=PROBE_KIND,
            tag=tag,
            build=build,
        )
        return store.open_run(info), continued  # type: ignore[attr-defined]
    for run in store.list_runs():
        if run.name == name and run.options.get("kind") == PROBE_KIND and run.options.get("probe") == name:
            store.heartbeat(run.id)
            return run.id, True
    info = RunInfo(name=name, target=target, options=options, versions=dict(versions), machine=machine)
    return store.create_run(info), False
