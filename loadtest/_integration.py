"""The one place where the load generator meets what runs downstream of the run store.

Data flows one way (users -> samples -> run store -> monitor and reports), and the imports follow it: the
rest of ``loadtest/`` depends only on ``runstore/`` and ``nextauth_tokens/`` (``tests/test_import_graph.py``
keeps it so). The entry files import this module first; it registers the run lifecycle and hands it two
hooks: the live monitor mounted in Locust's web UI, and the HTML report written when a run ends.

``monitor`` and ``reports`` are imported when first used, not here: a worker, or a headless run without
``--report``, never pays for importing Dash.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from loadtest._lifecycle import DOWNSTREAM

__all__ = ["MONITOR_LINK_TITLE", "MONITOR_PATH", "mount_monitor", "write_report"]

log = logging.getLogger("wsgauge")

MONITOR_PATH = "/wsgauge/"
"""Where the live monitor is served inside Locust's web UI."""
MONITOR_LINK_TITLE = "wsgauge live monitor (latency, errors, connections per second)"
"""The link to the monitor in the web UI's Reports tab."""


def mount_monitor(web_ui: Any, options: argparse.Namespace, results: Path) -> None:
    """Serve the live monitor inside Locust's web UI at ``/wsgauge/``, linked from its Reports tab.

    Best effort: a monitor that cannot be mounted is a warning, never a failed run.
    """
    if getattr(options, "web_login", False):
        # Locust's login protects its own views only; the monitor's routes would be open.
        log.info("wsgauge: monitor not mounted with --web-login (run `wsgauge-monitor` separately)")
        return
    try:
        from monitor.app import create_app

        create_app(results, server=web_ui.app, url_base_pathname=MONITOR_PATH)
    except Exception as exc:
        log.warning("wsgauge: monitor not mounted in the web UI (%s: %s)", type(exc).__name__, exc)
        return
    # Locust's documented extension point: ``extended_csv_files`` entries are rendered as links in the
    # Reports tab (relative, like Locust's own, so that --web-base-path keeps working).
    links = web_ui.template_args.setdefault("extended_csv_files", [])
    links.append({"href": f".{MONITOR_PATH}", "title": MONITOR_LINK_TITLE})
    base = getattr(options, "web_base_path", "") or ""
    log.info(
        "wsgauge monitor: %s%s on the web UI's host and port (linked from its Reports tab)",
        base,
        MONITOR_PATH,
    )


def write_report(results: Path, run_id: int) -> Path:
    """Write ``report-<run_id>.html`` next to the store."""
    from reports.build import build_report

    return Path(build_report(results, run_id, results.parent / f"report-{run_id}.html"))


DOWNSTREAM.mount_monitor = mount_monitor
DOWNSTREAM.write_report = write_report
