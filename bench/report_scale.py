"""Reports at scale: size and build time of a 1-minute, 1-hour and 24-hour run's report, against a baseline.

Writes the three runs through the run-store API (``tests/scale_runs.py``: three message types at 40 samples
a second, counters, gauges, scraped server metrics, one spike; the 24-hour run records latency in one
second of every ``--day-latency-every`` so that it builds in seconds, not minutes), cached in
``bench/out/``. Then builds each report ``--repeat`` times with this checkout and with the baseline, the
``reports`` package of another git revision (``--baseline main`` by default, exported with ``git archive``
into a temporary directory), each in a fresh Python process, the two sides taking turns, and prints size,
median build time and the most points any trace has.

Usage::

    python bench/report_scale.py [--baseline main] [--repeat 3] [--rebuild] [--screenshots docs/]

Results are printed and written to ``bench/out/report_scale.json``. ``--screenshots DIR`` saves the top of
each report (headless Chromium) as ``DIR/report-<length>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.scale_runs import write_scaled_run  # noqa: E402

OUT = REPO / "bench" / "out"
RUNS = {"1min": 60, "1h": 3600, "24h": 86_400}

_BUILD = """
import json, re, sys, time
started = time.perf_counter()
from reports.build import build_report
imported = time.perf_counter()
path = build_report(sys.argv[1], None, __import__("pathlib").Path(sys.argv[2]))
done = time.perf_counter()
text = path.read_text()
points = 0
decoder = json.JSONDecoder()
for match in re.finditer(r'Plotly\\.newPlot\\(\\s*"[^"]+",\\s*', text):
    traces, _ = decoder.raw_decode(text, match.end())
    for trace in traces:
        x = trace.get("x")
        if isinstance(x, dict) and "bdata" in x:
            import base64, numpy as np
            n = np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"])).size
        else:
            n = len(x or [])
        if trace.get("fill") != "toself":
            points = max(points, n)
print(json.dumps({"import_s": imported - started, "build_s": done - imported, "bytes": path.stat().st_size,
                  "max_points": points}))
"""


def stores(rebuild: bool, day_latency_every: int) -> dict[str, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, seconds in RUNS.items():
        path = OUT / f"report_scale_{name}.sqlite3"
        if rebuild or not path.exists():
            path.unlink(missing_ok=True)
            started = time.perf_counter()
            every = day_latency_every if seconds > 7200 else 1
            scrape = 1 if seconds <= 3600 else 10
            errors = (5, 17, 40) if seconds == 60 else ()
            write_scaled_run(path, seconds=seconds, name=f"scale-{name}", latency_every=every,
                             errors_at=errors, scrape_every=scrape)  # fmt: skip
            print(f"wrote {name} run in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        paths[name] = path
    return paths


def export(revision: str, into: Path) -> Path:
    """The ``reports``, ``runstore`` (and ``charts``, if any) packages of ``revision``, as files."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def build(code: Path, store: Path, output: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    result = subprocess.run(
        [sys.executable, "-c", _BUILD, str(store.resolve()), str(output.resolve())], env=env, check=True,
        capture_output=True, text=True, cwd=code,  # -c puts the working directory first on sys.path
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def screenshot(report: Path, png: Path) -> None:
    from tests.chromium import chrome

    driver = chrome(1300, 1500)
    try:
        driver.get(report.resolve().as_uri())
        time.sleep(4)
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true", help="rewrite the cached runs")
    parser.add_argument("--day-latency-every", type=int, default=60, metavar="N")
    parser.add_argument("--screenshots", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    paths = stores(args.rebuild, args.day_latency_every)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = export(args.baseline, Path(tmp) / "baseline")
        for name, store in paths.items():
            builds: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
            for _ in range(args.repeat):  # interleaved: a busy moment of the machine hits both sides
                for side, code in (("baseline", baseline), ("this", REPO)):
                    builds[side].append(build(code, store, Path(tmp) / f"{side}-{name}.html"))
            for side, runs in builds.items():
                results.setdefault(name, {})[side] = {
                    "bytes": runs[-1]["bytes"],
                    "build_s": statistics.median(r["build_s"] for r in runs),
                    "import_s": statistics.median(r["import_s"] for r in runs),
                    "max_points": runs[-1]["max_points"],
                }
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                report = Path(tmp) / f"this-{name}.html"
                screenshot(report, args.screenshots / f"report-{name}.png")
    print(f"{'run':6} {'side':9} {'size MB':>8} {'build s':>8} {'import s':>9} {'max points':>11}")
    for name, sides in results.items():
        for side, r in sides.items():
            print(
                f"{name:6} {side:9} {r['bytes'] / 1e6:8.2f} {r['build_s']:8.2f} {r['import_s']:9.2f} "
                f"{int(r['max_points']):11d}"
            )
    (OUT / "report_scale.json").write_text(
        json.dumps({"baseline": args.baseline, "results": results}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
