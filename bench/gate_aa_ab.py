"""Release-gate benchmark: A/A false alarms and A/B detections, with real short load runs.

Every run is a real ``locust -f loadtest --headless`` run against the embedded reference server (bounded:
few users, ``--duration`` seconds, a subprocess timeout on top), writing its run store rows and its HTML
report. The gate then compares report files exactly as a CI job would (``python -m reports compare A.html
B.html``, in process).

For each of ``--pairs`` iterations run A, A' (both unchanged) and B, in that order so that machine noise
drifts over all three alike; with ``--runs K`` each side is K runs, interleaved (A A' B, A A' B, ...),
and the gate compares K baseline reports with K candidate reports (run-level statistics). Each B run has
``--server-test-delay-ms`` = ``penalty`` x the ``ack:chat_message`` median of the A run just before it
(after the warm-up; 20 % by default): the penalty is relative to the baseline it is compared with, not to
a calibration run minutes earlier (run medians drift by 10-20 % over a bench).
Gate A vs A' (an A/A pair: a failure is a false alarm) and A vs B (an A/B pair: a failure is a detection).
A is shared by both pairs of its iteration. Each line also shows the measured ratios of the sets'
``ack:chat_message`` p50 and p99 (geometric means over the runs, after the warm-up).

``--shape p99`` makes B's regression a tail one instead: the embedded server delays a random ``--share``
(2 %) of inbound frames (``reference_server --test-tail-delay``, set through ``WSGAUGE_TEST_TAIL_DELAY``) by
the amount that, mixed into the A run's own histogram, raises its p99 by ``--penalty``
(``bench/_tail_penalty.py``); the median moves by ≈ 1 %. Gate it on the p99 rule alone with
``--thresholds bench/gate_p99.toml``; its runs need ≥ 1,000 samples each (``--rate 25``: ≈ 2,000).

    python bench/gate_aa_ab.py --pairs 20 --runs 3 --rate 25 --shape p99 --no-reports --no-gate \
        --out bench/out/gate11-p99
    python bench/gate_aa_ab.py --pairs 20 --runs 3 --rate 25 --shape p99 --regate --paired \
        --thresholds bench/gate_p99.toml --tag k3p --out bench/out/gate11-p99

    python bench/gate_aa_ab.py --pairs 20 --out bench/out/gate
    python bench/gate_aa_ab.py --pairs 20 --runs 5 --out bench/out/gate-runs5     # 5 runs per side

Prints one line per pair and the two figures at the end, and writes ``summary.json`` in ``--out``
(``summary-TAG.json`` with ``--tag TAG``, which also suffixes the verdict files: regates side by side).
``--regate`` gates the reports of an earlier bench again (e.g. after changing the rules), running nothing.
``--paired`` gates with ``compare --paired``: run j of A against run j of A' (or B), which ran next to it.
``--no-reports`` skips each run's HTML report (≈ 4 s a run) and gates run ids in the bench's store instead.
``--regate --fold N`` joins iterations N·m … N·m+N-1 of one bench into one comparison (N·K runs a side).
``--regate --join DIR`` adds the runs of another bench with the same scenario to each side: iteration i of
``--out`` and iteration i of ``DIR`` make one comparison of 2K runs a side (e.g. two 5-run benches run on
different days give 20 comparisons of 10 runs a side; each side gets the same share of each day).

A comparison that exits 2 (unusable: a run whose load generator fell behind its schedule) or 3
(inconclusive: nothing failed, some rule had too few samples) counts as neither a false alarm nor a
detection; the figures say how many there were.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench._tail_penalty import TailPenaltyError, histogram_arrays, tail_delay_us  # noqa: E402
from reference_server.test_faults import TailDelay  # noqa: E402
from reports.__main__ import main as report_main  # noqa: E402
from reports.data import latency_summary, load_run  # noqa: E402
from reports.stats import runs_per_side_needed  # noqa: E402
from runstore.store import RunStore  # noqa: E402

#: The rule the p99-shaped penalty is meant to trip (``bench/gate_p99.toml`` judges only it).
_P99_RULE = "ack:chat_message p99"
_METRIC = "ack:chat_message"

#: What a B run is given: ``--server-test-delay-ms`` (every frame) and a tail delay (a random share), or None.
Penalty = tuple[float, "TailDelay | None"]

_STORED = re.compile(r"stored: .* \(run id (\d+)\)")
_REPORT = re.compile(r"^report: (\S+\.html)\s*$", re.MULTILINE)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSGAUGE_", "LOCUST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


_SERVER_CORE, _GENERATOR_CORE = 0, 1


def _pin_embedded_server(locust_pid: int, timeout: float = 10.0) -> None:
    """Move the embedded reference server (Locust's child) to its own core as soon as it exists.

    Unpinned, the server and the generator share a core in some runs and not in others, and a run's
    median moves by up to 20 % with that alone: noise no gate tolerance should have to absorb.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for child in psutil.Process(locust_pid).children(recursive=True):
                if "reference_server" in " ".join(child.cmdline()):
                    child.cpu_affinity([_SERVER_CORE])
                    return
        except psutil.Error:
            return
        time.sleep(0.05)


def run_load(args: argparse.Namespace, name: str, penalty: Penalty) -> tuple[int, str]:
    """One bounded load run; returns ``(run_id, what the gate is given for it)``: its report file, or with
    ``--no-reports`` its run id (in ``--out``'s store)."""
    delay_ms, tail = penalty
    command = [
        sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtest"), "--headless",
        "-u", str(args.users), "-r", str(args.users), "-t", f"{args.duration}s",
        "--open-rate", str(args.rate), "--seed", str(args.seed), "--think-scale", "1",
        "--results", str(args.out / "bench.sqlite3"), "--run-name", name,
        "--report", "true" if args.reports else "false",
        "--server-test-delay-ms", f"{delay_ms:.4f}", "--exit-code-on-error", "0",
        "--stop-timeout", "2", *args.user_classes,
    ]  # fmt: skip
    if args.pin:
        command = ["taskset", "-c", str(_GENERATOR_CORE), *command]
    env = _env()
    if tail is not None:  # read by the embedded server (reference_server --test-tail-delay)
        env["WSGAUGE_TEST_TAIL_DELAY"] = f"{tail.share}:{tail.delay_ms:.4f}"
    for attempt in range(2):
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if args.pin:
            _pin_embedded_server(proc.pid)
        try:
            output, _ = proc.communicate(timeout=args.duration + 90)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        (args.out / f"{name}.log").write_text(output)
        stored, report = _STORED.search(output), _REPORT.search(output)
        if proc.returncode == 0 and stored and (report or not args.reports):
            return int(stored.group(1)), report.group(1) if report else stored.group(1)
        print(f"  {name}: attempt {attempt + 1} failed (exit {proc.returncode}); see {name}.log", flush=True)
    raise RuntimeError(f"load run {name} failed twice")


def run_spread(pairs: list[dict[str, Any]], stat: str, effect: float) -> dict[str, Any]:
    """How much one run's ``stat`` (``p50``/``p99``, ms) of one build scatters, measured on the A and A' sets,
    and the runs a side the gate's t interval needs to confirm ``effect`` (e.g. +20 %) 9 times in 10.

    Unpaired: the pooled standard deviation of the logs within each A and A' set (needs ≥ 2 runs a set);
    paired: that of the logs of run j of A' over run j of A (what ``--paired`` works on).
    """
    sets = [np.log(p[f"run_{stat}_ms"][side]) for p in pairs for side in ("A", "A'")]
    within = [x - x.mean() for x in sets if len(x) > 1]
    freedom = sum(len(x) - 1 for x in within)
    pooled = float(np.sqrt(sum(float(np.sum(x**2)) for x in within) / freedom)) if freedom else None
    diffs = np.concatenate(
        [np.log(np.divide(p[f"run_{stat}_ms"]["A'"], p[f"run_{stat}_ms"]["A"])) for p in pairs]
    )
    paired = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
    log_effect = float(np.log1p(effect))
    return {
        "sd_log_run": pooled,
        "sd_log_pair_difference": paired,
        "runs_needed": runs_per_side_needed(pooled, log_effect, 0.95, most=1000) if pooled else None,
        "pairs_needed": runs_per_side_needed(paired, log_effect, 0.95, most=1000, paired=True)
        if paired
        else None,
    }


def gate(args: argparse.Namespace, baseline: list[str], candidate: list[str], name: str) -> dict[str, Any]:
    """``python -m reports compare`` on report files or run ids (several per side: comma-separated); returns
    exit code, verdict, failed rules and the ack p99 rule's ratio and interval."""
    verdict_file = args.out / f"{name}.json"
    verdict_file.unlink(missing_ok=True)
    command = [
        "compare",
        ",".join(map(str, baseline)),
        ",".join(map(str, candidate)),
        "--warmup",
        str(args.warmup),
        "--json",
        str(verdict_file),
    ]
    if args.thresholds:
        command += ["--thresholds", str(args.thresholds)]
    if not args.reports:
        command += ["--results", str(args.out / "bench.sqlite3")]
    if args.paired:
        command.append("--paired")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = report_main(command)
    (args.out / f"{name}.txt").write_text(stdout.getvalue() + stderr.getvalue())
    failed: list[str] = []
    p99: dict[str, Any] = {}
    if verdict_file.exists():
        verdict = json.loads(verdict_file.read_text())
        failed = [f"{r['rule']} ({r['reason']})" for r in verdict["rules"] if r["status"] == "regression"]
        p99 = next((r for r in verdict["rules"] if r["rule"] == _P99_RULE), {})
    return {
        "exit": code,
        "failed": failed,
        "stderr": stderr.getvalue().strip(),
        "p99_rule": {k: p99.get(k) for k in ("status", "change", "interval", "unconfirmed", "runs_needed")}
        if p99
        else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=20, help="A/A and A/B pairs each (default: %(default)s)")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument(
        "--rate", type=float, default=10.0, help="chat messages per user per second (open model)"
    )
    parser.add_argument("--duration", type=int, default=14, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="gate warm-up, seconds")
    parser.add_argument(
        "--penalty",
        type=float,
        default=0.20,
        help="B's regression: +this share of A's median (--shape median) or of A's p99 (--shape p99)",
    )
    parser.add_argument(
        "--shape",
        choices=("median", "p99"),
        default="median",
        help="median: every frame delayed (moves p50 and everything above); p99: a random --share of "
        "frames delayed by what raises the A run's p99 by --penalty (median nearly unchanged)",
    )
    parser.add_argument(
        "--share", type=float, default=0.02, help="--shape p99: share of frames delayed (%(default)s)"
    )
    parser.add_argument(
        "--reports",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write each run's HTML report and gate the report files (--no-reports: gate run ids in the "
        "store, ≈ 4 s less per run)",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="runs per side of a comparison, interleaved (default: 1)"
    )
    parser.add_argument("--no-gate", action="store_true", help="only run the load runs (gate: --regate)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--paired", action="store_true", help="gate with compare --paired (run j of A with run j of A' / B)"
    )
    parser.add_argument("--thresholds", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / "gate")
    parser.add_argument("--regate", action="store_true", help="re-gate the reports already in --out")
    parser.add_argument(
        "--tag", default="", type=lambda t: f"-{t}" if t else "", help="name this gating's files"
    )
    parser.add_argument(
        "--join",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="with --regate: add iteration i of this bench's runs to iteration i's sides (repeatable)",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin the generator to core 1 and the embedded server to core 0 (default: on)",
    )
    parser.add_argument(
        "--fold",
        type=int,
        default=1,
        metavar="N",
        help="with --regate: join iterations N*m ... N*m+N-1 into one comparison (N x the runs a side)",
    )
    parser.add_argument("user_classes", nargs="*", default=["StudentUser"])
    args = parser.parse_args()
    if args.join and not args.regate:
        parser.error("--join needs --regate (it joins benches already run)")
    if args.fold < 1 or (args.fold > 1 and not args.regate):
        parser.error("--fold needs --regate and N >= 1")
    if not 0.0 < args.share <= 1.0:
        parser.error(f"--share must be in (0, 1], not {args.share}")
    args.out.mkdir(parents=True, exist_ok=True)
    stores = [d / "bench.sqlite3" for d in (args.out, *args.join)]
    started = time.time()
    ids: list[dict[str, int]] = [{} for _ in stores]  # run name -> run id, per bench
    if args.regate:
        for k, store in enumerate(stores):
            with RunStore.open(store, readonly=True) as runs:
                ids[k] = {r.name: r.id for r in runs.list_runs()}

        reported = any(args.out.glob("report-*.html"))  # a --no-reports bench is gated on its run ids
        if args.join and not reported:
            parser.error("--join needs benches with reports (run ids of several stores cannot be combined)")
        args.reports = reported

        def run_or_reuse(k: int, name: str, _penalty: Penalty) -> tuple[int, str]:
            run_id = ids[k][name]
            return run_id, str(stores[k].parent / f"report-{run_id}.html") if reported else str(run_id)
    else:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{stores[0]}{suffix}").unlink()

        def run_or_reuse(k: int, name: str, penalty: Penalty) -> tuple[int, str]:
            return run_load(args, name, penalty)

    def ack_stats(k: int, run_id: int) -> tuple[float, float, Penalty]:
        """The run's ack p50 and p99 (ms, after the warm-up) and the penalty of a B run judged against it."""
        data = load_run(stores[k], run_id).window(args.warmup, 1.0)
        summary = latency_summary(data, _METRIC)
        p50, p99 = summary["p50_us"] / 1000.0, summary["p99_us"] / 1000.0
        if args.shape == "median":
            return p50, p99, (args.penalty * p50, None)
        values, counts = histogram_arrays(data.merged(_METRIC))
        try:
            delay_us = tail_delay_us(values, counts, args.share, 1.0 + args.penalty)
        except TailPenaltyError as exc:
            raise SystemExit(f"run {run_id}: {exc}; give a larger --share") from None
        return p50, p99, (0.0, TailDelay(args.share, max(delay_us, 1.0) / 1000.0))

    suffixed = args.runs > 1 or "A00-0" in ids[0]  # a regate may use the first K runs of a bench with more

    def run_name(side: str, i: int, j: int) -> str:
        """``A03``, ``A03b`` (A'), ``B03`` with one run per side; ``A03-0`` ... with several."""
        name = {"A": f"A{i:02d}", "A'": f"A{i:02d}b", "B": f"B{i:02d}"}[side]
        return f"{name}-{j}" if suffixed else name

    if args.regate:  # the iterations whose runs are all there, in every joined bench
        args.pairs = sum(
            all(
                run_name(side, i, j) in bench
                for bench in ids
                for side in ("A", "A'", "B")
                for j in range(args.runs)
            )
            for i in range(args.pairs)
        )

    def gm(values: list[float]) -> float:
        return float(np.exp(np.mean(np.log(values))))

    pairs: list[dict[str, Any]] = []
    for i in range(args.pairs // args.fold):
        sets: dict[str, list[str]] = {"A": [], "A'": [], "B": []}
        p50s: dict[str, list[float]] = {"A": [], "A'": [], "B": []}
        p99s: dict[str, list[float]] = {"A": [], "A'": [], "B": []}
        penalties: list[Penalty] = []
        for k in range(len(stores)):
            for it in range(i * args.fold, (i + 1) * args.fold):  # --fold: consecutive iterations joined
                for j in range(args.runs):  # interleaved: A A' B, A A' B, ... so drift hits all three alike
                    for side in ("A", "A'", "B"):
                        name = run_name(side, it, j)
                        run_id, spec = run_or_reuse(k, name, penalties[-1] if side == "B" else (0.0, None))
                        sets[side].append(spec)
                        p50, p99, penalty = ack_stats(k, run_id)
                        p50s[side].append(p50)
                        p99s[side].append(p99)
                        if side == "A":  # B's penalty: relative to the A run just before it
                            penalties.append(penalty)
        medians = {side: gm(values) for side, values in p50s.items()}
        tails = {side: gm(values) for side, values in p99s.items()}
        if args.no_gate:
            aa = ab = {"exit": None, "failed": [], "stderr": "", "p99_rule": None}
        else:
            aa = gate(args, sets["A"], sets["A'"], f"AA{i:02d}{args.tag}")
            ab = gate(args, sets["A"], sets["B"], f"AB{i:02d}{args.tag}")
        ratios = {"aa": medians["A'"] / medians["A"], "ab": medians["B"] / medians["A"]}
        p99_ratios = {"aa": tails["A'"] / tails["A"], "ab": tails["B"] / tails["A"]}
        delay_ms = float(np.mean([d + (t.delay_ms if t else 0.0) for d, t in penalties]))
        pairs.append(
            {
                "i": i,
                "median_ms": medians["A"],
                "p99_ms": tails["A"],
                "delay_ms": delay_ms,
                "p50_ratio": ratios,
                "p99_ratio": p99_ratios,
                "run_p99_ms": p99s,
                "run_p50_ms": p50s,
                "aa": aa,
                "ab": ab,
            }
        )
        print(
            f"pair {i:2d}: A p50 {medians['A']:.3f} p99 {tails['A']:.2f} ms, delay {delay_ms:.3f} ms | "
            f"A/A p50 x{ratios['aa']:.2f} p99 x{p99_ratios['aa']:.2f} exit {aa['exit']} "
            f"{'; '.join(aa['failed']) or aa['stderr']} | "
            f"A/B p50 x{ratios['ab']:.2f} p99 x{p99_ratios['ab']:.2f} exit {ab['exit']} "
            f"({len(ab['failed'])} rules failed) {ab['stderr']}",
            flush=True,
        )
    if args.no_gate:
        print(f"{args.pairs} iterations run, not gated; {(time.time() - started) / 60:.1f} min", flush=True)
        return 0
    args.pairs = len(pairs)
    false_alarms = sum(p["aa"]["exit"] == 1 for p in pairs)
    caught = sum(p["ab"]["exit"] == 1 for p in pairs)
    unusable = sum(p[k]["exit"] == 2 for p in pairs for k in ("aa", "ab"))
    # Exit 3 (INCONCLUSIVE: nothing failed, some rule had too few samples) is neither a false alarm nor a
    # detection, as a pass is; counted apart so a thin rule set shows (pass --thresholds to mark such
    # rules optional, e.g. connect p95/p99 with a few users).
    inconclusive = sum(p[k]["exit"] == 3 for p in pairs for k in ("aa", "ab"))
    summary = {
        "pairs": args.pairs,
        "users": args.users,
        "rate_per_user": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "penalty": args.penalty,
        "shape": args.shape,
        "share": args.share if args.shape == "p99" else None,
        "thresholds": str(args.thresholds) if args.thresholds else None,
        "runs_per_side": args.runs * args.fold * len(stores),
        "paired": args.paired,
        "benches": [str(d) for d in (args.out, *args.join)],
        "aa_false_alarms": false_alarms,
        "ab_caught": caught,
        "unusable": unusable,
        "inconclusive": inconclusive,
        "minutes": (time.time() - started) / 60.0,
        "spread": {stat: run_spread(pairs, stat, args.penalty) for stat in ("p50", "p99")},
        "pair_results": pairs,
    }
    (args.out / f"summary{args.tag}.json").write_text(json.dumps(summary, indent=2))
    print(
        f"A/A: {false_alarms}/{args.pairs} false alarms; A/B (+{args.penalty:.0%} of each A's {args.shape}): "
        f"{caught}/{args.pairs} caught; {unusable} unusable; {inconclusive} inconclusive; "
        f"{summary['minutes']:.1f} min",
        flush=True,
    )
    for stat, spread in summary["spread"].items():

        def show(value: float | None, needed: int | None, unit: str) -> str:
            if value is None:  # one run a set: no spread within it
                return f"n/a ({unit})"
            return f"{value:.3f} ({needed or '> 1000'} {unit})"

        print(
            f"run-to-run spread of ack {stat}, sd of log (and what confirms +{args.penalty:.0%} 9 times in "
            f"10): A and A' sets {show(spread['sd_log_run'], spread['runs_needed'], 'runs a side')}, "
            f"paired {show(spread['sd_log_pair_difference'], spread['pairs_needed'], 'pairs')}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
