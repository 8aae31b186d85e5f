"""Building the monitor app: :func:`create_app`, standalone or mounted in another Flask server.

Examples:
    Standalone (what ``python -m monitor`` does, with waitress as the WSGI server)::

        app = create_app("results/wsgauge.sqlite3")
        waitress.serve(app.server, host="127.0.0.1", port=8050)

    Mounted under Locust's web UI (its Flask app is ``environment.web_ui.app``)::

        create_app(results, server=environment.web_ui.app, url_base_pathname="/monitor/")
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dash
import flask

from monitor import plotly_bundle
from monitor.cache import DEFAULT_ENTRIES, RunCache
from monitor.callbacks import register_callbacks
from monitor.layout import make_layout
from runstore.location import is_url, redacted

__all__ = ["TOKEN_COOKIE", "MonitorAuth", "create_app"]

_ASSETS = Path(__file__).with_name("assets")
TOKEN_COOKIE = "wsgauge_monitor_token"


@dataclass(frozen=True)
class MonitorAuth:
    """Credentials the monitor requires: a bearer token, basic-auth user and password, or both.

    A browser can present the token once as ``?token=...``; the monitor then sets an HTTP-only cookie so the
    page's own requests carry it. Scripts send ``Authorization: Bearer <token>``.
    """

    token: str | None = None
    user: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if not self.token and not (self.user and self.password):
            raise ValueError("MonitorAuth needs a token, or a user and a password")

    def accepts(self, request: flask.Request) -> bool:
        """Whether ``request`` carries valid credentials (header, cookie or ``?token=``)."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if self.token:
            candidates = [request.cookies.get(TOKEN_COOKIE), request.args.get("token")]
            if scheme.lower() == "bearer":
                candidates.append(value.strip())
            if any(c and hmac.compare_digest(c.encode(), self.token.encode()) for c in candidates):
                return True
        if self.user and self.password and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(
                password.encode(), self.password.encode()
            )
        return False


def _install_auth(server: flask.Flask, auth: MonitorAuth, prefix: str) -> None:
    @server.before_request
    def _require_credentials() -> flask.Response | None:
        if not flask.request.path.startswith(prefix):
            return None  # another application's route on a shared server
        if auth.accepts(flask.request):
            return None
        headers = {}
        if auth.user and auth.password:
            headers["WWW-Authenticate"] = 'Basic realm="wsgauge monitor", charset="UTF-8"'
        body = "wsgauge monitor: credentials required (basic auth, or ?token=... / Authorization: Bearer).\n"
        return flask.Response(body, status=401, headers=headers, mimetype="text/plain")

    @server.after_request
    def _remember_token(response: flask.Response) -> flask.Response:
        token = flask.request.args.get("token")
        if (
            auth.token
            and token
            and flask.request.path.startswith(prefix)
            and hmac.compare_digest(token.encode(), auth.token.encode())
        ):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path=prefix)
        return response


def create_app(
    results_path: str | os.PathLike[str],
    *,
    server: flask.Flask | bool | None = None,
    url_base_pathname: str = "/",
    auth: MonitorAuth | None = None,
    plotly_js: Literal["basic", "full"] = "basic",
    run_cache: int | RunCache = DEFAULT_ENTRIES,
    preload_plotly: bool = True,
) -> dash.Dash:
    """Build the monitor over the run store at ``results_path`` (read-only; it may not exist yet).

    Args:
        results_path: the run store file, or a ``postgresql://`` URL. A missing, empty, damaged or
            unreachable store is reported in the page.
        server: a Flask app to mount the monitor in (for example Locust's web UI); ``None`` creates one.
        url_base_pathname: where the monitor lives on that server (``"/monitor/"``), between slashes.
        auth: credentials to require for every monitor route; ``None`` for none (loopback use).
        plotly_js: ``"basic"``, plotly.js's basic partial bundle (:mod:`monitor.plotly_bundle`);
            ``"full"``, Dash's own full plotly.js (the first-paint benchmark's baseline).
        run_cache: how many derived views (overview, timeline, range statistics) of runs no longer written
            to keep in memory (:class:`monitor.cache.RunCache`); 0 keeps none. Or the cache itself (tests
            and the benchmark look into it, or clear it).
        preload_plotly: fetch plotly.js from the page's head (:func:`monitor.plotly_bundle.preload_in_head`)
            instead of only when the first graph mounts.

    Returns:
        The Dash app; ``app.server`` is the Flask app serving it.
    """
    if not (url_base_pathname.startswith("/") and url_base_pathname.endswith("/")):
        raise ValueError("url_base_pathname must start and end with '/'")
    if plotly_js not in ("basic", "full"):
        raise ValueError(f"plotly_js must be 'basic' or 'full', not {plotly_js!r}")
    # A URL stays a string: as a Path, "postgresql://host/db" would become "postgresql:/host/db", a file.
    path: Path | str = str(results_path) if is_url(str(results_path)) else Path(results_path)
    app = dash.Dash(
        __name__,
        server=True if server is None else server,
        url_base_pathname=url_base_pathname,
        assets_folder=str(_ASSETS),
        title="wsgauge monitor",
        update_title=None,
        compress=False,
    )
    app.layout = functools.partial(make_layout, redacted(path))
    cache = run_cache if isinstance(run_cache, RunCache) else RunCache(run_cache)
    register_callbacks(app, path, cache)
    if preload_plotly:
        app.index_string = plotly_bundle.preload_in_head(app.index_string, url_base_pathname)
    if auth is not None:
        _install_auth(app.server, auth, url_base_pathname)
    if plotly_js == "basic":
        plotly_bundle.install(app.server, url_base_pathname)  # after the credentials check
    return app
