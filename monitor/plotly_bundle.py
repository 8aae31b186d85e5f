"""plotly.js's *basic* partial bundle served where Dash's ``dcc.Graph`` fetches plotly.js from.

Dash's full plotly.js is 4.8 MB of minified JavaScript (every trace type: maps, 3-D, WebGL ...); compiling
it is most of a cold first paint. The monitor draws only ``scatter`` and ``bar`` traces, which the official
basic bundle (npm ``plotly.js-basic-dist-min``: scatter, bar, pie; 1.2 MB, 0.4 MB gzipped) has. It is
vendored beside this module, of the same plotly.js version as the installed plotly.py
(``tests/monitor/test_bundle.py`` checks).

``dcc.Graph`` loads plotly.js itself, asynchronously, from
``<prefix>_dash-component-suites/plotly/package_data/plotly.min.js`` as soon as the first graph mounts, so
the download and compile overlap the first callback's request. Answering that URL with the basic bundle
keeps that overlap (a script in Dash's ``assets/`` would run before the page renders, in series with it).
The bundle is sent gzipped to browsers that accept it, with an ETag and a day's ``Cache-Control``: Dash's
own route for that URL re-reads and re-hashes 4.8 MB per request and lets browsers cache nothing without
asking again.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Final

import flask

__all__ = ["BUNDLE", "DASH_PLOTLY_PATH", "install", "preload_in_head"]

BUNDLE: Final = Path(__file__).with_name("vendor") / "plotly-basic-4.1.1.min.js"
"""The vendored bundle (MIT: ``vendor/plotly-basic.LICENSE.txt``)."""
DASH_PLOTLY_PATH: Final = "_dash-component-suites/plotly/package_data/plotly.min.js"
"""Where ``dcc.Graph`` fetches plotly.js from (Dash's renderer sets ``window._dashPlotlyJSURL`` to it)."""
CACHE_SECONDS: Final = 86_400
"""A day: the URL has no version in it, so a browser re-validates (ETag) at most a day after an upgrade."""


def install(server: flask.Flask, prefix: str) -> None:
    """Answer ``prefix + DASH_PLOTLY_PATH`` on ``server`` with the basic bundle (before Dash's own route)."""
    body = BUNDLE.read_bytes()  # immutable: read once per app, not per request
    packed = gzip.compress(body, compresslevel=9, mtime=0)
    etag = hashlib.sha256(body).hexdigest()[:32]
    url = prefix + DASH_PLOTLY_PATH

    @server.before_request
    def _plotly_basic() -> flask.Response | None:
        if flask.request.path != url:
            return None
        if flask.request.if_none_match.contains(etag):
            response = flask.Response(status=304)
        elif "gzip" in flask.request.headers.get("Accept-Encoding", ""):
            response = flask.Response(packed, mimetype="text/javascript")
            response.headers["Content-Encoding"] = "gzip"
        else:
            response = flask.Response(body, mimetype="text/javascript")
        response.set_etag(etag)
        response.headers["Vary"] = "Accept-Encoding"
        response.cache_control.public = True
        response.cache_control.max_age = CACHE_SECONDS
        return response


def preload_in_head(index_string: str, prefix: str) -> str:
    """Dash's page template with a ``<link rel="preload">`` of plotly.js in its head.

    ``dcc.Graph`` asks for plotly.js only once the first graph has mounted, after Dash has fetched the
    layout and the callback graph; a preload starts the download with Dash's own scripts, and the script
    element ``dcc.Graph`` adds later is served from it. Nothing runs sooner or in series: the preload only
    fetches.
    """
    link = f'<link rel="preload" href="{prefix}{DASH_PLOTLY_PATH}" as="script">'
    if "{%css%}" not in index_string:
        return index_string
    return index_string.replace("{%css%}", "{%css%}\n        " + link, 1)
