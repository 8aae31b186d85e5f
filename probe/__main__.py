"""``wsgauge-probe``: watch a live deployment around the clock (``docs/probe.md``).

Exit codes: 0 after SIGINT/SIGTERM (the run stays open, to be continued by the next start); 2 for bad input
(an option, a rule, a credential the target refuses at the first connect, a run store that cannot be
written at start). Target down is not an error: the probe records it and keeps trying.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from probe._auth import AUTH_MODES, Credentials, CredentialsError
from probe._backoff import Backoff
from probe._rules import (
    DEFAULT_WINDOW_S,
    RuleError,
    check_unique,
    load_rules_file,
    parse_duration_s,
    parse_rule,
)
from probe._runner import ProbeConfig, run_probe
from probe._runs import open_probe_run, store_resumes_runs
from probe._writer import RetentionPolicy, StoreWriter
from runstore.location import default_location, redacted, store_location
from runstore.store import RunStore, StoreError

__all__ = ["build_parser", "main"]

_EXAMPLES = """\
examples:
  wsgauge-probe --host ws://127.0.0.1:8765/ws --secret "$NEXTAUTH_SECRET"
  wsgauge-probe --host wss://app.example/ws --secret S --admin-token T --name prod \\
      --rule 'p99 ack:chat_message < 50ms over 5m' --rule 'error rate < 1% over 5m' \\
      --rule 'disconnected > 30s' --alert-webhook http://127.0.0.1:9000/hook --metrics-port 9464
"""


class _UsageError(Exception):
    pass


def _positive_seconds(value: str) -> float:
    try:
        return parse_duration_s(value, "the value")
    except RuleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port number, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port number 0-65535, not {port}")
    return port


def _days(value: str) -> float:
    text = value.strip().removesuffix("d")
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of days like '2d', not {value!r}") from None
    if not days > 0:
        raise argparse.ArgumentTypeError(f"a positive number of days, not {value!r}")
    return days * 86400.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgauge-probe",
        description="Keep two authenticated probe users connected to a live target and record, every "
        "--interval, ping, chat, progress and (with --admin-token) notification round trips into the run "
        "store as one open-ended run of kind 'probe'; evaluate alert rules continuously.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_argument_group("target")
    target.add_argument("--host", required=True, help="the target's WebSocket URL, ws(s)://HOST[:PORT]/ws")
    target.add_argument("--name", default=None, help="the probe's name: one run per name (default: the host)")
    target.add_argument(
        "--interval", type=_positive_seconds, default=5.0, help="seconds between rounds (default 5)"
    )
    target.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        help="seconds a reply may take (default: min(5, interval))",
    )
    auth = parser.add_argument_group("credentials (as the load test's)")
    auth.add_argument(
        "--auth", choices=AUTH_MODES, default="v4", help="v4/v5: mint cookies from --secret (default v4)"
    )
    auth.add_argument(
        "--secret",
        default=os.environ.get("WSGAUGE_SECRET")
        or os.environ.get("AUTH_SECRET")
        or os.environ.get("NEXTAUTH_SECRET"),
        help="the target's NextAuth secret (default: $WSGAUGE_SECRET, $AUTH_SECRET, $NEXTAUTH_SECRET)",
    )
    auth.add_argument("--cookie-name", default=None, help="session cookie name (default: the --auth mode's)")
    auth.add_argument(
        "--cookies-file", type=Path, default=None, help="--auth cookies: 'USER_ID COOKIE_HEADER' lines (two)"
    )
    auth.add_argument(
        "--bearer-file", type=Path, default=None, help="--auth bearer: 'USER_ID TOKEN' lines (two)"
    )
    auth.add_argument(
        "--admin-token",
        default=os.environ.get("WSGAUGE_ADMIN_TOKEN"),
        help="back-end key for POST /api/notifications: enables the notification check",
    )
    auth.add_argument(
        "--notify-url", default=None, help="notification endpoint (default: the host's /api/notifications)"
    )
    alerts = parser.add_argument_group("alerts")
    alerts.add_argument(
        "--rule", action="append", default=[], help="an alert rule, e.g. 'p99 pong < 50ms over 5m'"
    )
    alerts.add_argument(
        "--rules-file", type=Path, default=None, help="rules in the gate's TOML format ([absolute] rules)"
    )
    alerts.add_argument(
        "--window", type=_positive_seconds, default=DEFAULT_WINDOW_S, help="default rule window (5m)"
    )
    alerts.add_argument(
        "--alert-webhook", default=None, help="POST each alert firing/resolved as JSON to this URL"
    )
    alerts.add_argument(
        "--metrics-port", type=_port, default=None, help="serve Prometheus /metrics here (0: any)"
    )
    alerts.add_argument(
        "--metrics-host", default="127.0.0.1", help="address for /metrics (default 127.0.0.1)"
    )
    store = parser.add_argument_group("store")
    store.add_argument("--results", default=default_location(), help="run store file (default: %(default)s)")
    store.add_argument(
        "--keep-seconds", type=_days, default=86400.0, help="keep per-second rows (default 1d)"
    )
    store.add_argument(
        "--keep-minutes", type=_days, default=30 * 86400.0, help="keep per-minute rows (default 30d)"
    )
    store.add_argument("--tag", default=None, help="a label stored with the run (e.g. the region)")
    store.add_argument("--build", default=None, help="the target's build or version, stored with the run")
    store.add_argument(
        "--duration", type=_positive_seconds, default=None, help="stop after this long (default: never)"
    )
    return parser


def _http_base(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _config(args: argparse.Namespace) -> tuple[ProbeConfig, Credentials]:
    parts = urlsplit(args.host)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise _UsageError(
            f"--host must be a ws:// or wss:// URL like ws://127.0.0.1:8765/ws, not {args.host!r}"
        )
    try:
        _ = parts.port
    except ValueError as exc:
        raise _UsageError(f"--host {args.host!r}: {exc}") from None
    name = args.name or parts.netloc
    rules = [parse_rule(text, default_window_s=args.window) for text in args.rule]
    if args.rules_file is not None:
        rules += load_rules_file(args.rules_file, default_window_s=args.window)
    check_unique(rules)
    credentials = Credentials(
        args.auth,
        secret=args.secret,
        cookie_name=args.cookie_name,
        path=args.cookies_file if args.auth == "cookies" else args.bearer_file,
        name="".join(c if c.isalnum() or c in "-_" else "-" for c in name),
    )
    if args.webhook_scheme_error:
        raise _UsageError(args.webhook_scheme_error)
    config = ProbeConfig(
        name=name,
        ws_url=args.host,
        interval_s=args.interval,
        timeout_s=args.timeout if args.timeout is not None else min(5.0, args.interval),
        rules=rules,
        notify_url=(args.notify_url or _http_base(args.host) + "/api/notifications")
        if args.admin_token
        else None,
        admin_token=args.admin_token or None,
        webhook_url=args.alert_webhook,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        # Reconnects back off to at most one try per interval (at least 1 s): a probe must see the target
        # come back promptly, and two users trying every few seconds is nothing to a server.
        reconnect=Backoff(base=min(0.5, args.interval), cap=max(1.0, min(30.0, args.interval))),
        duration_s=args.duration,
    )
    return config, credentials


def _fail(message: str) -> int:
    print(f"wsgauge-probe: {message}", file=sys.stderr, flush=True)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    webhook = args.alert_webhook
    args.webhook_scheme_error = (
        f"--alert-webhook must be an http:// or https:// URL, not {webhook!r}"
        if webhook and urlsplit(webhook).scheme not in ("http", "https")
        else None
    )
    try:
        config, credentials = _config(args)
    except (_UsageError, RuleError, CredentialsError) as exc:
        return _fail(str(exc))
    try:
        path = store_location(args.results)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        return _fail(f"--results {args.results}: {exc}")
    try:
        store = RunStore.open(path)
        options = {
            "interval_s": config.interval_s,
            "rules": [r.name for r in config.rules],
            "users": credentials.user_ids,
        }
        run_id, continued = open_probe_run(
            store,
            config.name,
            config.ws_url,
            options,
            {"wsgauge": _version()},
            tag=args.tag,
            build=args.build,
        )
    except (StoreError, sqlite3.Error, OSError) as exc:
        return _fail(f"cannot write the run store {redacted(path)}: {exc}")
    retention = RetentionPolicy(keep_seconds_s=args.keep_seconds, keep_minutes_s=args.keep_minutes)
    writer = StoreWriter(
        store, run_id, retention=retention, finish_status="stopped" if store_resumes_runs(store) else None
    )
    writer.start()
    print(
        f"wsgauge-probe {config.name}: probing {config.ws_url} as {', '.join(credentials.user_ids)} every "
        f"{config.interval_s:g} s; run {run_id} ({'continued' if continued else 'new'}) in {redacted(path)}",
        flush=True,
    )
    try:
        rc = asyncio.run(run_probe(config, credentials, writer, sys.stdout))
    finally:
        writer.stop()
    if rc == 2 and not continued:
        _forget_run(path, run_id)
    return rc


def _forget_run(path: str | Path, run_id: int) -> None:
    """Delete the run this start created when it ended in a refusal (wrong secret): it measured nothing."""
    try:
        with RunStore.open(path) as store:
            store.delete_runs([run_id])
    except (StoreError, sqlite3.Error, OSError):
        pass


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("wsgauge")
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
