"""``python -m runstore`` (``wsgauge-runs``): list runs and apply retention (SQLite or PostgreSQL).

Exit status (``docs/exit-codes.md``): 0 done, 2 a bad command line, an unusable store or an unknown run --
with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NoReturn

from runstore.location import (
    StoreLocationError,
    add_results_option,
    default_store_location,
)
from runstore.store import (
    DEFAULT_KEEP_MINUTES_S,
    DEFAULT_KEEP_SECONDS_S,
    RunRecord,
    RunStore,
    StoreError,
)

__all__ = ["EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_USAGE = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Usage errors become one line and exit 2 from :func:`main` (not ``SystemExit`` from inside)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m runstore",
        description="List wsgauge runs and clean up old ones.",
        epilog="exit status: 0 done, 2 bad command line, unusable store or unknown run (docs/exit-codes.md)",
    )
    add_results_option(parser)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_results_option(commands.add_parser("list", help="list runs, newest first"))
    delete = commands.add_parser("delete", help="delete runs by id")
    delete.add_argument("run_ids", nargs="+", type=int, metavar="RUN")
    add_results_option(delete)
    prune = commands.add_parser("prune", help="delete old runs (running runs are kept unless stale)")
    add_results_option(prune)
    prune.add_argument("--keep", type=int, default=None, help="keep the N newest runs")
    prune.add_argument(
        "--older-than", type=float, default=None, metavar="DAYS", help="delete runs older than DAYS"
    )
    prune.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    thin = commands.add_parser(
        "thin", help="drop old per-second and per-minute rows of runs (their roll-ups stay)"
    )
    thin.add_argument("run_ids", nargs="*", type=int, metavar="RUN", help="runs (default: every probe run)")
    add_results_option(thin)
    thin.add_argument(
        "--keep-seconds",
        type=float,
        default=DEFAULT_KEEP_SECONDS_S / 3600,
        metavar="HOURS",
        help="keep per-second rows this many hours (default: %(default)g)",
    )
    thin.add_argument(
        "--keep-minutes",
        type=float,
        default=DEFAULT_KEEP_MINUTES_S / 86400,
        metavar="DAYS",
        help="keep per-minute rows this many days (default: %(default)g); per-hour rows stay",
    )
    return parser


def _stamp(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line, ``--results`` defaulting to ``$WSGAUGE_RESULTS`` (refused like a value).

    Raises:
        _UsageError: naming the problem.
    """
    args = _parser().parse_args(argv)
    if not hasattr(args, "results"):
        try:
            args.results = default_store_location()
        except StoreLocationError as exc:
            raise _UsageError(f"python -m runstore: {exc}") from exc
    return args


def _thin(store: RunStore, runs: Sequence[RunRecord], args: argparse.Namespace) -> int:
    known = {run.id for run in runs}
    missing = [r for r in args.run_ids if r not in known]
    if missing:
        print(f"thin: no run {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    targets = list(args.run_ids) or [run.id for run in runs if run.kind == "probe"]
    try:
        for run_id in targets:
            deleted = store.apply_retention(
                run_id, keep_seconds=args.keep_seconds * 3600, keep_minutes=args.keep_minutes * 86400
            )
            print(f"run {run_id}: dropped {sum(deleted.values())} row(s) older than the retention")
    except ValueError as exc:
        print(f"thin: {exc} (--keep-minutes DAYS must cover --keep-seconds HOURS)", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 unusable store or arguments)."""
    try:
        args = _arguments(argv)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if args.command == "prune" and args.keep is None and args.older_than is None:
        print("prune: give --keep N and/or --older-than DAYS", file=sys.stderr)
        return 2
    try:
        with RunStore.open(args.results, readonly=args.command == "list") as store:
            runs = store.list_runs()
            if args.command == "list":
                print(
                    f"{'id':>5}  {'started (UTC)':19}  {'kind':5}  {'status':11}  {'duration':>9}  "
                    "name / target  [host tag build]"
                )
                for run in runs:
                    status = "stale" if run.is_stale() else run.status
                    build = (run.build or "")[:12]
                    labels = " ".join(str(v) if v else "-" for v in (run.host, run.tag, build))
                    print(
                        f"{run.id:>5}  {_stamp(run.started_at)}  {run.kind:5}  {status:11}  "
                        f"{run.duration_s:>8.0f}s  {run.name} / {run.target}  [{labels}]"
                    )
                return 0
            if args.command == "thin":
                return _thin(store, runs, args)
            if args.command == "delete":
                known = {run.id for run in runs}
                missing = [r for r in args.run_ids if r not in known]
                if missing:
                    print(f"delete: no run {', '.join(map(str, missing))}", file=sys.stderr)
                    return 2
                victims = list(args.run_ids)
            else:
                now = time.time()
                victims = []
                for index, run in enumerate(runs):  # newest first
                    if run.is_live(now):
                        continue
                    too_many = args.keep is not None and index >= args.keep
                    too_old = args.older_than is not None and now - run.started_at > args.older_than * 86400
                    if too_many or too_old:
                        victims.append(run.id)
                if args.dry_run:
                    print(f"would delete {len(victims)} run(s): {victims}")
                    return 0
            deleted = store.delete_runs(victims)
            store.vacuum()
            print(f"deleted {deleted} run(s) from {store.location}")
            return 0
    except StoreError as exc:
        print(f"wsgauge-runs: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
