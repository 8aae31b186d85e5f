"""``python -m monitor`` / ``wsgauge-monitor``: serve the monitor over a run store.

Served by waitress (a production WSGI server, pure Python), not Werkzeug's development server; ``--debug``
keeps Dash's development server for its dev tools and reloading. ``--port 0`` lets the system pick a free
port, and the URL actually served is printed on stdout.

Binds to 127.0.0.1 by default. Binding anywhere else exposes run data (targets, options, machine names), so
it requires credentials: ``--token`` or ``--user``/``--password`` (or ``WSGAUGE_MONITOR_TOKEN``,
``WSGAUGE_MONITOR_USER``, ``WSGAUGE_MONITOR_PASSWORD`` in the environment, which keeps them out of ``ps``).

Exit status: 0 after Ctrl-C, 2 when it refuses to start (bad arguments, a ``--results`` that is not a run
store or lies in a missing directory, no credentials off loopback, a port it cannot listen on).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runstore.location import default_location, is_url, redacted, results_argument
from runstore.store import RunStore, StoreError, StoreNotFound

__all__ = ["is_loopback", "main", "parse_args", "port_number", "results_problem", "served_urls"]

log = logging.getLogger("monitor")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_number(text: str) -> int:
    """``argparse`` ``type=`` for ``--port``: 0 (pick a free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535; 0 picks a free one)")
    return port


def results_problem(path: Path | str) -> str | None:
    """Why the monitor cannot serve the run store at ``path``, or ``None``.

    A file that does not exist yet (or is still empty: a writer creating it) is no problem when its
    directory exists: a load test may still create it, and the page says it is waiting. A missing
    directory is almost always a typo, and a file that is not a run store will never become one, so both
    are refused at start rather than explained in a page. A database store (``postgresql://``) must answer.
    """
    if is_url(path):
        try:
            RunStore.open(path, readonly=True).close()
        except StoreNotFound:
            return None  # reachable, no store yet: a load test will create it
        except StoreError as exc:
            return f"--results {redacted(path)}: {exc}"
        return None
    path = Path(path)
    if path.is_dir():
        return f"--results {path}: is a directory, not a run store file"
    if not path.exists():
        parent = path.parent
        if not parent.is_dir():
            return f"--results {path}: the directory {parent} does not exist"
        return None
    if _awaited(path):
        return None
    try:
        RunStore.open(path, readonly=True).close()
    except StoreError as exc:
        return f"--results {path}: {exc}"
    return None


def _awaited(path: Path | str) -> bool:
    """Whether the store at ``path`` is still to be written: no file yet, or an empty one."""
    if is_url(path):
        return False
    try:
        return Path(path).stat().st_size == 0
    except FileNotFoundError:
        return True


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return _parser().parse_args(argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgauge-monitor",
        description="Serve the wsgauge monitor: live and finished load runs from a run store.",
    )
    parser.add_argument(
        "--results",
        type=results_argument,
        default=default_location(),
        help="run store file (default: $WSGAUGE_RESULTS or %(default)s); it may not exist yet",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=port_number, default=8050, help="port; 0 picks a free one (default: %(default)s)"
    )
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
        "--debug",
        action="store_true",
        help="Dash's development server with dev tools and reloading (development only)",
    )
    return parser


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def served_urls(server: Any) -> list[str]:
    """The URLs a waitress server listens on (one per socket: ``localhost`` may bind IPv4 and IPv6)."""
    listen = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    return [_url(str(host), int(port)) for host, port in listen]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the monitor until interrupted; returns the exit status (2: refused to start)."""
    parser = _parser()
    args = parser.parse_args(argv)
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
    if args.debug and args.port == 0:
        print(
            "wsgauge-monitor: --debug cannot pick a free port (its reloader restarts the server on a new "
            "one): give --port",
            file=sys.stderr,
        )
        return 2
    problem = results_problem(args.results)
    if problem:
        print(f"wsgauge-monitor: {problem}", file=sys.stderr)
        return 2
    if _awaited(args.results):
        print(
            f"wsgauge-monitor: no run store at {args.results} yet: waiting for a load test to write it "
            f"(locust -f loadtest ... --results {args.results})",
            file=sys.stderr,
        )
    from monitor.app import MonitorAuth, create_app

    auth = MonitorAuth(args.token, args.user, args.password) if has_credentials else None
    app = create_app(args.results, auth=auth)
    if args.debug:
        app.run(host=args.host, port=args.port, debug=True)
        return 0
    return _serve(app.server, args.host, args.port, args.results)


def _serve(wsgi_app: Any, host: str, port: int, results: Path) -> int:
    import waitress

    try:
        server = waitress.create_server(wsgi_app, host=host, port=port, ident="wsgauge-monitor")
    except (OSError, ValueError) as exc:
        print(f"wsgauge-monitor: cannot listen on {host} port {port}: {exc}", file=sys.stderr)
        return 2
    for url in served_urls(server):
        print(f"wsgauge-monitor: serving {redacted(results)} at {url}", flush=True)
    # waitress closes its sockets and threads on SystemExit or KeyboardInterrupt: make SIGTERM (systemd,
    # docker stop) one of those too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    server.run()
    return 0


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
