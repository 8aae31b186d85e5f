"""The load test's options: registered on Locust's parser, parsed into one frozen :class:`LoadSettings`.

Every wsgauge option lives here, so ``locust -f loadtest --help`` documents them all in one group and the web
UI shows the ones that make sense to change per run. :func:`settings_from` takes Locust's ``parsed_options``
(an ``argparse.Namespace``) and raises :class:`SettingsError` with a message naming the option at fault. It
reads nothing but the options, with one exception: before it refuses the credentials for a ``--host``, it
checks whether that host answers at all, so that a dead port is named first (a user who fixes the secret
would only hit the dead port next).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from loadtest._target import TargetUnreachable, probe
from runstore.location import StoreLocationError, default_location, results_argument, store_location

__all__ = [
    "AUTH_MODES",
    "LoadSettings",
    "SettingsError",
    "add_arguments",
    "http_base_of",
    "settings_from",
]

AuthMode = Literal["v4", "v5", "cookies", "none"]
AUTH_MODES: tuple[AuthMode, ...] = ("v4", "v5", "cookies", "none")


PROBE_TIMEOUT_S = 2.0
"""How long :func:`settings_from` waits for a ``--host`` to accept a connection (else: unreachable)."""


class SettingsError(ValueError):
    """An option value that cannot be used; the message names the option."""


@dataclass(frozen=True)
class LoadSettings:
    """Everything a wsgauge load run is configured with (besides Locust's own ``-u``/``-r``/``-t``)."""

    # target and auth
    host: str | None
    """``ws://`` or ``wss://`` URL of the target's WebSocket endpoint; ``None``: embedded server."""
    http_base: str | None
    """``http(s)://host:port`` of the target's HTTP API (notifications, metrics); derived from ``host``."""
    auth: AuthMode
    secret: str | None
    cookie_name: str | None
    cookies_file: Path | None
    admin_token: str | None
    # results
    results: Path
    run_name: str | None
    report: bool
    scrape_metrics: bool
    # traffic
    seed: int
    think_scale: float
    peers: int
    request_timeout: float
    use_acks: bool
    notification_rate: float
    churn_away_s: float
    # the seed's client strategies
    debounce_ms: float
    batch_size: int
    batch_ms: float
    offline_cache: bool
    reconnect_base_ms: float
    reconnect_max_ms: float
    reconnect_retries: int
    # open model
    open_rate: float
    """Messages per second per user on a fixed schedule (0 = closed model: Locust's users and wait times)."""
    # embedded server knobs (ignored with --host)
    server_test_delay_ms: float
    # open model, continued (defaults: code that builds settings by hand need not name them)
    open_total_rate: float = 0.0
    """Messages per second in total, spread evenly over Locust's ``-u`` users (0 = use ``open_rate``)."""
    open_poisson: bool = False
    """Open-model arrivals: ``False`` exactly ``1/rate`` apart, ``True`` a seeded Poisson process per user."""
    # results, continued
    tag: str | None = None
    """Free-text label of the run in the store (e.g. ``nightly``), to list and compare runs by."""
    build: str | None = None
    """The build under test (free text); ``None``: the store records the git commit."""

    def open_rate_per_user(self, users: int | None) -> float:
        """The open-model rate of one user, given Locust's total user count (``-u``)."""
        if self.open_total_rate > 0:
            return self.open_total_rate / max(1, users or 1)
        return self.open_rate


def _positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _results(text: str) -> str:
    """``--results``: refused at parse time when it names no store (``postgresql://...``), never a stray file.

    Stays a string: Locust forwards the options to its workers with msgpack, which has no ``Path``.
    """
    results_argument(text)
    return text


def add_arguments(parser: Any) -> None:
    """Register wsgauge's options on Locust's parser (call from ``events.init_command_line_parser``).

    ``parser`` is Locust's ``LocustArgumentParser`` (configargparse): ``env_var``, ``include_in_web_ui`` and
    ``is_secret`` are its extensions. Every option also reads ``WSGAUGE_<NAME>`` from the environment.
    """
    group = parser.add_argument_group(
        "wsgauge",
        "WebSocket load test options (see README). Without --host the reference server is embedded.",
    )

    def add(flag: str, *, web: bool = True, secret: bool = False, **kwargs: Any) -> None:
        env = "WSGAUGE_" + flag.lstrip("-").upper().replace("-", "_")
        # An argument group's add_argument is plain (config)argparse: it does not know Locust's
        # include_in_web_ui / is_secret keywords, so set them on the action as LocustArgumentParser does.
        action = group.add_argument(flag, env_var=env, **kwargs)
        action.include_in_web_ui = web
        action.is_secret = secret
        action.is_required = False
        action.is_multiple = False

    add(
        "--auth",
        choices=AUTH_MODES,
        default="v4",
        help="v4/v5: mint a NextAuth cookie per user from "
        "--secret; cookies: read them from --cookies-file; none: no credential (default: %(default)s)",
    )
    add(
        "--secret",
        default=None,
        secret=True,
        help="NextAuth secret (NEXTAUTH_SECRET / AUTH_SECRET) to mint "
        "session cookies with (the embedded server generates its own)",
    )
    add(
        "--cookie-name",
        default=None,
        help="session cookie name (default: next-auth.session-token for v4, authjs.session-token for v5)",
    )
    add(
        "--cookies-file",
        default=None,
        web=False,
        help="with --auth cookies: a file of 'USER_ID COOKIE_HEADER' "
        "lines, one per simulated user (used round robin)",
    )
    add(
        "--admin-token",
        default=None,
        secret=True,
        help="bearer token for the target's POST "
        "/api/notifications (the back end); the embedded server generates its own",
    )
    add(
        "--results",
        type=_results,
        default=default_location(),
        web=False,
        help="run store file; a URL such as postgresql://... is refused (default: %(default)s)",
    )
    add("--run-name", default=None, help="name of the run in the store (default: personas and user count)")
    add("--tag", default=None, help="free-text label of the run in the store, e.g. nightly (default: none)")
    add("--build", default=None, help="the build under test, free text (default: the git commit)")
    add(
        "--report",
        type=_bool,
        default=True,
        web=False,
        help="write the HTML report at the end (default: %(default)s)",
    )
    add(
        "--scrape-metrics",
        type=_bool,
        default=True,
        web=False,
        help="scrape the target's /metrics every second into the run store (default: %(default)s)",
    )
    add(
        "--seed",
        type=int,
        default=1,
        help="random seed for think times, peers and payloads: the same "
        "seed repeats the same traffic (default: %(default)s)",
    )
    add(
        "--think-scale",
        type=_positive_float,
        default=1.0,
        help="multiply every think time by this (0 = no thinking; default: %(default)s)",
    )
    add(
        "--peers",
        type=_non_negative_int,
        default=3,
        help="conversation partners per student (default: %(default)s)",
    )
    add(
        "--request-timeout",
        type=_positive_float,
        default=10.0,
        help="seconds to wait for an ack, pong, "
        "push or delivery before counting a timeout (default: %(default)s)",
    )
    add(
        "--acks",
        type=_bool,
        default=True,
        help="send requestId and measure ack round trips; false sends "
        "exactly the seed's frames (default: %(default)s)",
    )
    add(
        "--notification-rate",
        type=_positive_float,
        default=2.0,
        help="notifications per second in total, for the students of every process (0 = no back end; "
        "default: %(default)s)",
    )
    add(
        "--churn-away",
        type=_positive_float,
        default=3.0,
        help="mean seconds a churning user stays away before coming back (default: %(default)s)",
    )
    add(
        "--debounce-ms",
        type=_positive_float,
        default=0.0,
        help="debounce progress updates by this many ms (0 = off; default: %(default)s)",
    )
    add(
        "--batch-size",
        type=_non_negative_int,
        default=0,
        help="send messages in batch envelopes of up to N (0 = off; default: %(default)s)",
    )
    add(
        "--batch-ms",
        type=_positive_float,
        default=100.0,
        help="flush a partial batch after this many ms (default: %(default)s)",
    )
    add(
        "--offline-cache",
        type=_bool,
        default=True,
        help="queue messages while disconnected and send "
        "them, all of them, on reconnect (default: %(default)s)",
    )
    add(
        "--reconnect-base-ms",
        type=_positive_float,
        default=250.0,
        help="first reconnect delay; doubles per attempt, with full jitter (default: %(default)s)",
    )
    add(
        "--reconnect-max-ms",
        type=_positive_float,
        default=10_000.0,
        help="cap on one reconnect delay (default: %(default)s)",
    )
    add(
        "--reconnect-retries",
        type=_non_negative_int,
        default=20,
        help="attempts before a user gives up (default: %(default)s)",
    )
    add(
        "--open-rate",
        type=_positive_float,
        default=0.0,
        help="open model: messages per second per user "
        "on a fixed schedule, latency measured from the scheduled time (0 = closed model; default: "
        "%(default)s)",
    )
    add(
        "--open-total-rate",
        type=_positive_float,
        default=0.0,
        help="open model: messages per second in total, spread evenly over the -u users (instead of "
        "--open-rate; default: %(default)s)",
    )
    add(
        "--open-arrivals",
        choices=("fixed", "poisson"),
        default="fixed",
        help="open model: sends exactly 1/rate apart (fixed), or as a seeded Poisson process per user "
        "(default: %(default)s)",
    )
    add(
        "--server-test-delay-ms",
        type=_positive_float,
        default=0.0,
        web=False,
        help="embedded server "
        "only, for tests and benchmarks: delay every frame's handling by this many ms (default: %(default)s)",
    )


def http_base_of(ws_url: str) -> str:
    """Return the HTTP base URL of a WebSocket endpoint (``ws://h:p/ws`` -> ``http://h:p``).

    Raises:
        SettingsError: if ``ws_url`` is not a ``ws://`` or ``wss://`` URL with a host.
    """
    parts = urlsplit(ws_url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise SettingsError(
            f"--host must be a ws:// or wss:// URL such as ws://127.0.0.1:8765/ws, got {ws_url!r}"
        )
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _credentials_error(host: str | None, problem: str) -> SettingsError:
    """The error for unusable credentials; when ``--host`` does not answer, that is named first."""
    if host:
        try:
            probe(host, timeout=PROBE_TIMEOUT_S)
        except TargetUnreachable as exc:
            return SettingsError(f"{exc}; also {problem}")
    return SettingsError(problem)


def settings_from(options: argparse.Namespace) -> LoadSettings:
    """Validate Locust's parsed options into :class:`LoadSettings`.

    Raises:
        SettingsError: naming the first option that cannot be used.
    """
    host = getattr(options, "host", None) or None
    http_base = http_base_of(host) if host else None
    auth: AuthMode = options.auth
    cookies_file = Path(options.cookies_file) if options.cookies_file else None
    if auth == "cookies":
        if cookies_file is None:
            raise _credentials_error(host, "--auth cookies needs --cookies-file FILE")
        if not cookies_file.is_file():
            raise _credentials_error(host, f"--cookies-file {cookies_file}: no such file")
    if host and auth in ("v4", "v5") and not options.secret:
        raise _credentials_error(
            host, f"--auth {auth} against --host {host} needs --secret (the server's NextAuth secret)"
        )
    try:
        results = store_location(options.results)
    except StoreLocationError as exc:
        raise SettingsError(f"--results: {exc}") from None
    if options.reconnect_max_ms < options.reconnect_base_ms:
        raise SettingsError("--reconnect-max-ms must be >= --reconnect-base-ms")
    if float(options.open_rate) > 0 and float(options.open_total_rate) > 0:
        raise SettingsError("give --open-rate (per user) or --open-total-rate (in total), not both")
    if options.batch_size == 1:
        raise SettingsError("--batch-size 1 is not batching: use 0 (off) or >= 2")
    return LoadSettings(
        host=host,
        http_base=http_base,
        auth=auth,
        secret=options.secret or None,
        cookie_name=options.cookie_name or None,
        cookies_file=cookies_file,
        admin_token=options.admin_token or None,
        results=results,
        run_name=options.run_name or None,
        tag=getattr(options, "tag", None) or None,
        build=getattr(options, "build", None) or None,
        report=_bool(options.report),
        scrape_metrics=_bool(options.scrape_metrics),
        seed=int(options.seed),
        think_scale=float(options.think_scale),
        peers=int(options.peers),
        request_timeout=float(options.request_timeout),
        use_acks=_bool(options.acks),
        notification_rate=float(options.notification_rate),
        churn_away_s=float(options.churn_away),
        debounce_ms=float(options.debounce_ms),
        batch_size=int(options.batch_size),
        batch_ms=float(options.batch_ms),
        offline_cache=_bool(options.offline_cache),
        reconnect_base_ms=float(options.reconnect_base_ms),
        reconnect_max_ms=float(options.reconnect_max_ms),
        reconnect_retries=int(options.reconnect_retries),
        open_rate=float(options.open_rate),
        server_test_delay_ms=float(options.server_test_delay_ms),
        open_total_rate=float(options.open_total_rate),
        open_poisson=options.open_arrivals == "poisson",
    )
