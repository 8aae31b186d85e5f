"""Build the HTML report of one run: read it, draw it, embed its data, write one file.

The load test calls :func:`build_report` at the end of every run and prints the path it returns.
"""

from __future__ import annotations

import os
from pathlib import Path

from reports.data import RunData, load_run
from reports.embed import run_to_block
from reports.errors import ReportError
from reports.figures import report_figures, run_window
from reports.render import report_html
from runstore.location import is_url
from runstore.store import DEFAULT_RESULTS

__all__ = ["build_report", "default_output", "report_data", "write_atomically", "write_report"]


def default_output(store_path: str | os.PathLike[str], run_id: int) -> Path:
    """``report-<id>.html`` next to the run store (the name the load test uses); for a database store
    (``postgresql://``) in the default store's folder, ``results/``."""
    if is_url(os.fspath(store_path)):
        return DEFAULT_RESULTS.parent / f"report-{run_id}.html"
    return Path(store_path).parent / f"report-{run_id}.html"


def write_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file, so readers never see half a report.

    Raises:
        ReportError: if the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc}") from exc
    return path


def report_data(data: RunData) -> RunData:
    """What a report shows and embeds: the run at its charts' window (:func:`reports.figures.run_window`).

    Runs up to 10 minutes keep every second; longer ones one row per window (10 s for an hour, 3 min for a
    day), merged exactly, so that a day's report stays a few megabytes and builds in seconds.
    """
    return data.coarsened(run_window([("run", data)]))


def write_report(data: RunData, output: str | os.PathLike[str]) -> Path:
    """Render a run's report into ``output`` and return its path."""
    shown = report_data(data)
    figures = report_figures([(f"run {data.run.get('id')}", shown)])
    return write_atomically(Path(output), report_html(shown, figures, run_to_block(shown)))


def build_report(store_path: str | os.PathLike[str], run_id: int | None, output: Path) -> Path:
    """Write the self-contained HTML report of a run.

    Args:
        store_path: the run store file.
        run_id: the run; ``None`` for the newest.
        output: the HTML file to write (parents are created).

    Returns:
        The path written.

    Raises:
        ReportError: no store, no such run, a run without samples, an unwritable output.
    """
    return write_report(load_run(store_path, run_id), output)
