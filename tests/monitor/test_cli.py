"""``python -m monitor`` as a user runs it: a real subprocess, real sockets on 127.0.0.1, real store files."""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.monitor.conftest import Stores

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGAUGE_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _refused(args: Sequence[str], cwd: Path) -> str:
    """Run the monitor, expect it to refuse to start (exit 2), and return its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr


class Served:
    """A monitor process that printed the URL it serves."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def get(self, path: str = "") -> tuple[int, dict[str, str], str]:
        with urllib.request.urlopen(self.url + path, timeout=30) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str]:
        """Ctrl-C (or ``signum``); returns the exit status and everything written to stderr."""
        self.process.send_signal(signum)
        _out, err = self.process.communicate(timeout=30)
        return self.process.returncode, err


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def _serving(args: Sequence[str], cwd: Path) -> Iterator[Served]:
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--port", "0", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as at a terminal: a suite started in the background (``cmd &``) ignores SIGINT, and the
        # monitor would inherit that and never see the stop() below.
        preexec_fn=_default_sigint,
    )
    try:
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        line = ""
        deadline = time.monotonic() + 60
        while "http://" not in line and time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=0.5):
                line = process.stdout.readline()
        assert "http://" in line, (process.poll(), line)
        url = line[line.index("http://") :].strip()
        yield Served(process, url)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_missing_directory_is_refused_naming_the_path(tmp_path: Path) -> None:
    err = _refused(["--results", "/nonexistent/x.sqlite3"], tmp_path)
    assert "/nonexistent/x.sqlite3" in err and "directory /nonexistent does not exist" in err
    assert not Path("/nonexistent").exists()


def test_a_file_that_is_not_a_run_store_is_refused(tmp_path: Path, stores: Stores) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    assert str(text) in _refused(["--results", str(text)], tmp_path)
    foreign = tmp_path / "other.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    err = _refused(["--results", str(foreign)], tmp_path)
    assert str(foreign) in err and "not a wsgauge run store" in err
    assert "schema v99" in _refused(["--results", str(stores.newer)], tmp_path)
    assert "is a directory" in _refused(["--results", str(tmp_path)], tmp_path)


def test_a_url_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    err = _refused(["--results", "redis://127.0.0.1:6379/0"], tmp_path)
    assert "'redis://' stores are not supported" in err
    assert list(tmp_path.iterdir()) == []  # no folder named 'redis:'


def test_bad_ports_are_refused(tmp_path: Path) -> None:
    assert "70000 is not a port number" in _refused(["--port", "70000"], tmp_path)
    assert "'x' is not a port number" in _refused(["--port", "x"], tmp_path)
    assert "--debug cannot pick a free port" in _refused(["--debug", "--port", "0"], tmp_path)


def test_port_in_use_is_refused(tmp_path: Path, stores: Stores) -> None:
    with _serving(["--results", str(stores.path)], tmp_path) as served:
        port = served.url.rsplit(":", 1)[1].strip("/")
        err = _refused(["--results", str(stores.path), "--port", port], tmp_path)
        assert f"cannot listen on 127.0.0.1 port {port}" in err


def test_port_zero_serves_a_store_on_the_printed_url_with_waitress(tmp_path: Path, stores: Stores) -> None:
    with _serving(["--results", str(stores.path)], tmp_path) as served:
        assert served.url.startswith("http://127.0.0.1:") and not served.url.endswith(":8050/")
        status, headers, page = served.get()
        assert status == 200 and "wsgauge monitor" in page
        assert headers["Server"] == "wsgauge-monitor"  # waitress, named; not Werkzeug's dev server
        assert served.get("_dash-layout")[0] == 200
        code, err = served.stop()
    assert code == 0
    assert "development server" not in err and "no run store" not in err


def test_a_missing_store_in_an_existing_directory_is_awaited_and_said_once(tmp_path: Path) -> None:
    path = tmp_path / "later.sqlite3"
    with _serving(["--results", str(path)], tmp_path) as served:
        assert served.get()[0] == 200
        assert served.get("_dash-layout")[0] == 200
        code, err = served.stop(signal.SIGTERM)  # as systemd or docker stop it
    assert code == 0
    assert err.count("no run store at") == 1 and str(path) in err, err
    assert not path.exists()  # read-only: the monitor never creates the store
    path.touch()  # a writer that has just created the file
    with _serving(["--results", str(path)], tmp_path) as served:
        assert served.get()[0] == 200
        code, err = served.stop()
    assert code == 0 and err.count("no run store at") == 1, err
