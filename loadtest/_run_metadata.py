"""What a stored run says about itself: options (secrets redacted), load shape, versions, machine.

All of it is written when the run starts, so that a reader can tell what drove a run while it is still going.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "REDACTED",
    "SECRET_OPTIONS",
    "git_commit",
    "json_safe_options",
    "machine_info",
    "shape_info",
    "versions",
]

log = logging.getLogger(__name__)

REDACTED = "<redacted>"
SECRET_OPTIONS = frozenset({"secret", "admin_token", "web_login", "tls_key"})
"""Option names whose values never reach the store (plus every option Locust marks ``is_secret``)."""
_PRIVATE = frozenset({"wsgauge_target", "wsgauge_run_id"})
"""Attributes the lifecycle adds to ``parsed_options`` to brief the workers: never stored."""

_PACKAGES = (
    "wsgauge",
    "locust",
    "gevent",
    "hdrhistogram",
    "orjson",
    "aiohttp",
    "prometheus-client",
)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return str(value)


def json_safe_options(
    options: argparse.Namespace | Mapping[str, Any], secret_names: Iterable[str] = ()
) -> dict[str, Any]:
    """All Locust and wsgauge options as a JSON-safe dict, secret values replaced by ``<redacted>``."""
    items = dict(vars(options) if isinstance(options, argparse.Namespace) else options)
    secret = SECRET_OPTIONS | set(secret_names)
    result: dict[str, Any] = {}
    for key in sorted(items):
        if key in _PRIVATE or key.startswith("_"):
            continue
        value = items[key]
        result[key] = REDACTED if key in secret and value else _json_safe(value)
    return result


def shape_info(shape: Any) -> dict[str, Any] | None:
    """What a ``LoadTestShape`` says about the load it will drive, or ``None`` without a shape.

    With a shape, Locust's ``-u``/``-r`` do not describe the run (unless the shape sets
    ``use_common_options``), so the shape itself is recorded: ``class`` (its class name), ``stages`` (its
    ``stages`` table, JSON-safe, where it has one; ``None`` otherwise), ``planned_peak_users`` (the largest
    ``users`` of that table, or ``None``) and ``use_common_options``.
    """
    if shape is None:
        return None
    stages = getattr(shape, "stages", None)
    table = _json_safe(stages) if isinstance(stages, list | tuple) else None
    planned = [
        stage["users"]
        for stage in table or ()
        if isinstance(stage, dict) and isinstance(stage.get("users"), int | float)
    ]
    return {
        "class": type(shape).__name__,
        "stages": table,
        "planned_peak_users": int(max(planned)) if planned else None,
        "use_common_options": bool(getattr(shape, "use_common_options", False)),
    }


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape the numbers."""
    found: dict[str, str] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "wsgauge" not in found:  # running from a checkout without `pip install -e .`
        version = _checkout_version()
        if version:
            found["wsgauge"] = version
    return found


def _checkout_version() -> str | None:
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib

        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, KeyError, ValueError):
        return None


def machine_info() -> dict[str, Any]:
    """Host name, CPUs, memory and platform of the machine generating the load."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python_implementation": platform.python_implementation(),
    }
    try:
        import psutil

        info["memory_bytes"] = int(psutil.virtual_memory().total)
        affinity = getattr(psutil.Process(), "cpu_affinity", None)
        if affinity is not None:
            info["cpus_usable"] = len(affinity())
    except Exception:  # psutil missing or restricted: leave the fields out
        pass
    info["executable"] = sys.executable
    return info


def git_commit(directory: str | os.PathLike[str] | None = None) -> str | None:
    """``git rev-parse HEAD`` in ``directory`` (default: the working directory), or ``None``."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) >= 7 else None
