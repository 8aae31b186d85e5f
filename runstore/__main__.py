"""``python -m runstore`` (``wsgauge-runs``): list runs and apply retention to a run store."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from runstore.store import DEFAULT_RESULTS, RunStore, StoreError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runstore", description="List wsgauge runs and clean up old ones."
    )
    parser.add_argument(
        "--results",
        default=str(DEFAULT_RESULTS),
        help="run store file (default: %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list runs, newest first")
    delete = commands.add_parser("delete", help="delete runs by id")
    delete.add_argument("run_ids", nargs="+", type=int, metavar="RUN")
    prune = commands.add_parser("prune", help="delete old runs (running runs are kept unless stale)")
    prune.add_argument("--keep", type=int, default=None, help="keep the N newest runs")
    prune.add_argument(
        "--older-than", type=float, default=None, metavar="DAYS", help="delete runs older than DAYS"
    )
    prune.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    return parser


def _stamp(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 unusable store or arguments)."""
    args = _parser().parse_args(argv)
    if args.command == "prune" and args.keep is None and args.older_than is None:
        print("prune: give --keep N and/or --older-than DAYS", file=sys.stderr)
        return 2
    try:
        with RunStore.open(args.results, readonly=args.command == "list") as store:
            runs = store.list_runs()
            if args.command == "list":
                print(f"{'id':>5}  {'started (UTC)':19}  {'status':11}  {'duration':>9}  name / target")
                for run in runs:
                    status = "stale" if run.is_stale() else run.status
                    print(
                        f"{run.id:>5}  {_stamp(run.started_at)}  {status:11}  "
                        f"{run.duration_s:>8.0f}s  {run.name} / {run.target}"
                    )
                return 0
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
            print(f"deleted {deleted} run(s) from {args.results}")
            return 0
    except StoreError as exc:
        print(f"wsgauge-runs: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
