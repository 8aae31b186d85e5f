"""The wsgauge reference server: the seed's WebSocket protocol, served exactly, authenticated and durable."""

from __future__ import annotations

from importlib import metadata

__all__ = ["__version__"]

try:
    __version__ = metadata.version("wsgauge")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
