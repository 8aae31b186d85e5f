"""``python -m monitor`` / ``wsgauge-monitor``: serve the monitor over a run store.

Binds to 127.0.0.1 by default. Binding anywhere else exposes run data (targets, options, machine names), so
it requires credentials: ``--token`` or ``--user``/``--password`` (or ``WSGAUGE_MONITOR_TOKEN``,
``WSGAUGE_MONITOR_USER``, ``WSGAUGE_MONITOR_PASSWORD`` in the environment, which keeps them out of ``ps``).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence

from runstore.store import DEFAULT_RESULTS

__all__ = ["is_loopback", "main", "parse_args"]

log = logging.getLogger("monitor")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wsgauge-monitor",
        description="Serve the wsgauge monitor: live and finished load runs from a run store.",
    )
    parser.add_argument(
        "--results", default=str(DEFAULT_RESULTS), help="run store file (default: %(default)s)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8050, help="port (default: %(default)s)")
    parser.add_argument(
        "--token",
        default=os.environ.get("WSGAUGE_MONITOR_TOKEN"),
        help="require this bearer token (browsers: open /?token=...); env WSGAUGE_MONITOR_TOKEN",
    )
    parser.add_argument(
        "--user",
        default=os.environ.get("WSGAUGE_MONITOR_USER"),
        help="basic-auth user; env WSGAUGE_MONITOR_USER",
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("WSGAUGE_MONITOR_PASSWORD"),
        help="basic-auth password; env WSGAUGE_MONITOR_PASSWORD",
    )
    parser.add_argument(
        "--debug", action="store_true", help="Dash dev tools and reloading (development only)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the monitor until interrupted; returns the exit status (2: refused to start)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if bool(args.user) != bool(args.password):
        print("wsgauge-monitor: --user and --password go together", file=sys.stderr)
        return 2
    has_credentials = bool(args.token) or bool(args.user and args.password)
    if not is_loopback(args.host) and not has_credentials:
        print(
            f"wsgauge-monitor: refusing to serve on {args.host} without credentials: run data would be "
            "open to the network. Pass --token (or --user and --password), or set "
            "WSGAUGE_MONITOR_TOKEN, or bind to 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    from monitor.app import MonitorAuth, create_app

    auth = MonitorAuth(args.token, args.user, args.password) if has_credentials else None
    app = create_app(args.results, auth=auth)
    log.info("serving the run store %s on http://%s:%s/", args.results, args.host, args.port)
    app.run(host=args.host, port=args.port, debug=args.debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
