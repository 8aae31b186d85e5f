"""The monitor served on loopback and a headless Chromium to open it: shared by the monitor benches."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any


def serve_monitor(path: Path) -> Any:
    """Serve the monitor for the run store at ``path`` on a free loopback port, in a daemon thread.

    Returns the werkzeug server: ``server.server_port`` to open it, ``server.shutdown()`` to stop it.
    """
    from werkzeug.serving import make_server

    from monitor.app import create_app

    server = make_server("127.0.0.1", 0, create_app(path).server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def headless_chromium(width: int, height: int, *extra: str) -> Any:
    """A headless Chromium (Debian's ``chromium`` when installed) with a ``width`` x ``height`` window."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *extra):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    chromium = shutil.which("chromium")
    if chromium:
        options.binary_location = chromium
    driver = shutil.which("chromedriver")
    return webdriver.Chrome(service=Service(driver) if driver else None, options=options)
