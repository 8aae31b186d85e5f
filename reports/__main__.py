"""``python -m reports`` (``wsgauge-report``): build a run's HTML report, or gate a candidate run.

Exit status (``docs/exit-codes.md``): 0 pass (or report written), 1 regression, 2 unusable input -- always
with a one-line reason on stderr, never a traceback (``WSGAUGE_DEBUG=1`` shows one for bugs) --, 3
inconclusive: a rule of the rule set could not be judged (too few samples) and nothing failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from reports.build import default_output, write_report
from reports.compare import (
    check_distinct,
    load_inputs,
    verdict_table,
    write_comparison,
    write_json,
    write_junit,
)
from reports.data import load_run
from reports.errors import ReportError
from reports.gate import evaluate_gate
from reports.thresholds import load_thresholds
from runstore.location import (
    StoreLocationError,
    add_results_option,
    default_store_location,
)

__all__ = ["EXIT_INCONCLUSIVE", "EXIT_OK", "EXIT_REGRESSION", "EXIT_UNUSABLE", "main"]

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_UNUSABLE = 2
EXIT_INCONCLUSIVE = 3
"""Not 0 (the gate did not judge everything it was asked), not 1 (nothing failed), not 2 (the input was
usable): a CI job can rerun longer, or accept it with ``--allow-inconclusive``."""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m reports",
        description="wsgauge HTML reports and the release gate that compares two runs.",
        epilog="exit status: 0 pass (or report written), 1 regression, 2 unusable input, 3 inconclusive "
        "(docs/exit-codes.md)",
    )
    add_results_option(parser)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    build = commands.add_parser("build", help="write the HTML report of a run")
    build.add_argument("run", nargs="?", type=int, metavar="RUN", help="run id (default: the newest run)")
    add_results_option(build)
    build.add_argument(
        "-o", "--output", metavar="FILE", help="HTML file (default: report-<id>.html by the store)"
    )

    def gate_options(sub: argparse.ArgumentParser) -> None:
        add_results_option(sub)
        sub.add_argument(
            "--thresholds", metavar="FILE", help="TOML thresholds file (default: built-in rules)"
        )
        sub.add_argument("-o", "--output", metavar="FILE", help="write the diff HTML here")
        sub.add_argument("--json", metavar="FILE", help="write the verdict as JSON here")
        sub.add_argument("--junit", metavar="FILE", help="write the verdict as JUnit XML here")
        sub.add_argument(
            "--allow-inconclusive",
            action="store_true",
            help="a rule that could not be judged (too few samples) passes instead of exit 3 (INCONCLUSIVE)",
        )
        sub.add_argument(
            "--warmup",
            type=float,
            metavar="SECONDS",
            help="seconds excluded at the start (default: 5, or the file's)",
        )

    runs = (
        "report file, directory of reports, run id or id range (3-7); several runs of one build: "
        "comma-separated"
    )
    compare = commands.add_parser(
        "compare", help="gate a candidate build's run(s) against a baseline build's run(s)"
    )
    compare.add_argument("baseline", metavar="BASELINE", help=runs)
    compare.add_argument("candidate", metavar="CANDIDATE", help=runs)
    compare.add_argument(
        "--paired",
        action="store_true",
        help="the builds' runs took turns (A B A B ...): judge baseline run i against candidate run i",
    )
    gate_options(compare)

    check = commands.add_parser("check", help="check run(s) against the absolute rules only (no baseline)")
    check.add_argument("candidate", metavar="CANDIDATE", help=runs)
    gate_options(check)
    return parser


def _build(args: argparse.Namespace) -> int:
    data = load_run(args.results, args.run)
    output = Path(args.output) if args.output else default_output(args.results, int(data.run["id"]))
    path = write_report(data, output)
    print(path)
    return EXIT_OK


def _gate(args: argparse.Namespace) -> int:
    thresholds = load_thresholds(args.thresholds).with_warmup(args.warmup)
    if getattr(args, "paired", False):
        thresholds = replace(thresholds, paired=True)
    if args.allow_inconclusive:
        thresholds = replace(thresholds, allow_inconclusive=True)
    if thresholds.warmup_s < 0:
        raise ReportError("--warmup must not be negative")
    baselines = load_inputs(args.baseline, args.results) if args.command == "compare" else []
    candidates = load_inputs(args.candidate, args.results)
    check_distinct(baselines, candidates)
    result = evaluate_gate(baselines or None, candidates, thresholds)
    print(verdict_table(result))
    if args.output:
        print(f"diff: {write_comparison(result, baselines, candidates, args.output)}")
    if args.json:
        write_json(result, args.json)
    if args.junit:
        write_junit(result, args.junit)
    return {"regression": EXIT_REGRESSION, "inconclusive": EXIT_INCONCLUSIVE}.get(result.verdict, EXIT_OK)


def _with_results(args: argparse.Namespace) -> argparse.Namespace:
    """``--results`` as given, else ``$WSGAUGE_RESULTS`` or the default -- refused like a given value."""
    if not hasattr(args, "results"):
        try:
            args.results = default_store_location()
        except StoreLocationError as exc:
            raise _UsageError(f"python -m reports: {exc}") from exc
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 pass, 1 regression, 2 unusable input, 3
    inconclusive)."""
    try:
        args = _with_results(_parser().parse_args(argv))
        return _build(args) if args.command == "build" else _gate(args)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_UNUSABLE
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_UNUSABLE
    except Exception as exc:
        if os.environ.get("WSGAUGE_DEBUG"):
            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (WSGAUGE_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_UNUSABLE


if __name__ == "__main__":
    sys.exit(main())
