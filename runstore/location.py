"""Where a run store lives: the one reader of ``--results`` values (and ``WSGAUGE_RESULTS``) for every CLI.

A store is an SQLite file (a path) or a PostgreSQL database (a ``postgresql://user@host/db`` URL, kept as
the string it is). Any other ``scheme://`` names a back end this wsgauge does not serve; taken as a path it
would silently create a folder named ``redis:`` and a fresh store inside it, and every command would then
read that file as if it were the database. So it is refused.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from runstore.store import DEFAULT_RESULTS, POSTGRES_SCHEMES

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "StoreLocation",
    "StoreLocationError",
    "add_results_option",
    "default_location",
    "default_store_location",
    "is_url",
    "redacted",
    "results_argument",
    "store_location",
]

ENVIRONMENT_VARIABLE = "WSGAUGE_RESULTS"
"""Names the run store when no ``--results`` is given."""
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
StoreLocation = Path | str
"""A store's location: a :class:`~pathlib.Path` (SQLite file) or a ``postgresql://`` URL string."""


def is_url(location: StoreLocation) -> bool:
    """Whether ``location`` names a database server rather than a file."""
    return isinstance(location, str) and bool(_URL.match(location))


class StoreLocationError(ValueError):
    """A ``--results`` value that names no store this wsgauge can open."""


def redacted(url: str | os.PathLike[str]) -> str:
    """``url`` without its password, for messages and listings (a path as it is)."""
    url = os.fspath(url)
    parts = urlsplit(url)
    if not _URL.match(url) or parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def store_location(value: str | os.PathLike[str]) -> StoreLocation:
    """The run store that ``value`` names: a ``postgresql://`` URL (as given) or an SQLite file path.

    Raises:
        StoreLocationError: ``value`` is empty, or a URL (``scheme://...``) of a back end not served.
    """
    text = os.fspath(value)
    if not text.strip():
        raise StoreLocationError(
            "the run store location is empty: give a SQLite file path or a postgresql:// URL"
        )
    match = _URL.match(text)
    if match:
        if match["scheme"].lower() in POSTGRES_SCHEMES:
            return text
        raise StoreLocationError(
            f"run store {text!r}: '{match['scheme']}://' stores are not supported by this wsgauge; "
            "give the path of a SQLite run store file (e.g. results/wsgauge.sqlite3) "
            "or a postgresql://user@host/db URL"
        )
    return Path(text)


def default_location() -> str:
    """``$WSGAUGE_RESULTS`` when set, else :data:`~runstore.store.DEFAULT_RESULTS` (not resolved)."""
    return os.environ.get(ENVIRONMENT_VARIABLE) or str(DEFAULT_RESULTS)


def default_store_location() -> StoreLocation:
    """:func:`default_location`, checked like a given ``--results`` value.

    Raises:
        StoreLocationError: naming ``$WSGAUGE_RESULTS`` when its value is refused.
    """
    try:
        return store_location(default_location())
    except StoreLocationError as exc:
        raise StoreLocationError(f"${ENVIRONMENT_VARIABLE}: {exc}") from exc


def results_argument(value: str) -> StoreLocation:
    """``argparse`` ``type=`` for ``--results``: a clear usage error (exit 2) instead of a stray file."""
    try:
        return store_location(value)
    except StoreLocationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_results_option(parser: argparse.ArgumentParser) -> None:
    """``--results`` for a CLI with subcommands: add it to the main parser and to every subcommand's, so it
    is taken before or after the subcommand's name (``--results X list`` and ``list --results X``).
    ``SUPPRESS`` keeps an absent one from overwriting a given one; the caller falls back on
    :func:`default_location` when neither gave it."""
    parser.add_argument(
        "--results",
        type=results_argument,
        default=argparse.SUPPRESS,
        metavar="STORE",
        help=f"run store: SQLite file or postgresql://user@host/db (default: ${ENVIRONMENT_VARIABLE}, "
        f"else {DEFAULT_RESULTS}); "
        "before or after the subcommand",
    )
