"""What one Locust worker core can drive: round-trip rate, connected users, and where its time goes.

The reference server runs pinned to core 0 (``taskset -c 0``), the load generator pinned to core 1. Phases:

``rate``
    One Locust process (``locust -f bench/_loadtest_bench_users.py RatePinger``, the measured ``WsClient``,
    Locust's stats, the 1 Hz sampler and the run store all on) with 50 connections pinging on a fixed
    schedule; the offered rate steps up until the generator falls behind. Reported per step over the steady
    seconds: achieved pongs/s, ``send_lag`` p50/p99, ``pong`` p50/p99, ``connect`` p50 at spawn, the worker's
    CPU over the steady seconds only. The sustained rate is the highest step with achieved >= 97 % of offered
    and send-lag p99 < 2 ms. With ``--baseline-ref REF`` every step also runs on a checkout of ``REF`` (``git
    archive``, its own bench users), taking turns (A B, B A, ...), so "before" and "after" share the machine's
    moment; the bare loop runs in the same invocation. With ``--repeats N`` each step runs N times per side
    (still taking turns) and is judged on the medians of its repeats (``median_step``): single 4-6 s steps
    are noise-dominated. Several comma-separated refs give one side each.
``bare``
    The same 50 connections driven by a minimal websocket-client loop under gevent (send a ping, read until
    its pong), without Locust or any measuring: the ceiling the Locust worker is compared with. It connects
    first, then counts round trips and its CPU over the loop only.
``users``
    ``StudentUser`` (the real persona) with ``--think-scale 5`` (median think time 10 s: light traffic),
    N users spawned at 500/s, held 10 s: peak connected, the worker's peak RSS, connect p50/p99; the RSS per
    user is the marginal one between the smallest and the largest N (the base process is ~150 MB).
``jobs``
    The once-a-second jobs of a worker at the last ``--rates`` step, timed in CPU in the bench process:
    ``record_many`` (against the previous binary-search bucketing, in the same run), the drain, the store
    write.
``profile``
    ``cProfile`` of the Locust process at a fixed rate; time by package and the top functions.

Every phase is bounded (users, seconds) and self-stopping; loopback only. The machine is shared: expect noise.

    python bench/loadtest_worker.py                       # all phases, ~4 min
    python bench/loadtest_worker.py rate --rates 4000,8000 --seconds 8
    python bench/loadtest_worker.py compare --baseline-ref main --rates 16000,24000,32000 --seconds 6
    python bench/loadtest_worker.py compare --baseline-ref 664ba66,main --rates 24000,32000,40000 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runstore import histogram as hdr  # noqa: E402
from runstore.store import RunStore  # noqa: E402

SERVER_CORE = 0
WORKER_CORE = 1
BENCH_USERS = Path("bench") / "_loadtest_bench_users.py"
"""The rate users, relative to the checkout that runs them."""
OUT = REPO / "bench" / "out"
READY = "listening on "
SEND_LAG_P99_MS = 2.0
"""A step is sustained only if the schedule was kept this well (and >= 97 % of the offered rate achieved)."""


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def _env(repo: Path = REPO) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSGAUGE_", "LOCUST_"))}
    env["PYTHONPATH"] = str(repo)  # only this checkout: the editable install's tree must not leak in
    return env


def checkout(ref: str, into: Path) -> Path:
    """Extract commit ``ref`` of this repository into ``into`` (a "before" to bench against)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


class Server:
    """The reference server on core 0, with a file database; on ``port`` (0: any free one)."""

    def __init__(self, tmp: Path, port: int = 0) -> None:
        self.port = port
        self.secret = "s" + secrets.token_hex(16)
        self.admin_token = "a" + secrets.token_hex(8)
        command = [
            "taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "reference_server",
            "--port", str(port), "--db", str(tmp / "server.db"), "--rate-limit", "0",
            f"--secret={self.secret}", f"--admin-token={self.admin_token}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, text=True, preexec_fn=_raise_nofile
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if READY not in line:
            raise RuntimeError(f"reference server did not start: {line!r}")
        self.ws_url = line.split(READY, 1)[1].strip()
        self.ps = psutil.Process(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_locust(
    server: Server,
    store: Path,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    profile: Path | None = None,
    sampler: str = "cprofile",
    locustfile: Path | str = BENCH_USERS,
    repo: Path = REPO,
) -> dict[str, Any]:
    """Run one pinned Locust process of checkout ``repo`` to completion; returns its peak RSS and CPU use."""
    head = ["taskset", "-c", str(WORKER_CORE), sys.executable]
    if profile is not None and sampler == "py-spy":  # a sampling profiler: no per-call overhead
        py_spy = ["py-spy", "record", "--format", "raw", "--rate", "250", "--nonblocking", "-o", str(profile)]
        head = [*head[:3], *py_spy, "--", sys.executable]
    elif profile is not None:
        head += ["-m", "cProfile", "-o", str(profile)]
    command = [
        *head, "-m", "locust", "-f", str(repo / locustfile), "--headless", "--only-summary",
        "--loglevel", "WARNING",
        "--host", server.ws_url, f"--secret={server.secret}", f"--admin-token={server.admin_token}",
        "--results", str(store), "--report", "false", "--scrape-metrics", "false", *args,
    ]  # fmt: skip
    started = time.monotonic()
    server_cpu0 = sum(server.ps.cpu_times()[:2])
    proc = subprocess.Popen(
        command, cwd=repo, env={**_env(repo), **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    ps = psutil.Process(proc.pid)
    peak_rss = 0
    cpu = 0.0
    timeline: list[tuple[float, float]] = []  # (unix time, CPU seconds used so far)
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak_rss = max(peak_rss, ps.memory_info().rss)
            cpu = sum(ps.cpu_times()[:2])
            timeline.append((time.time(), cpu))
        time.sleep(0.25)
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if proc.returncode not in (0, 1) or not store.exists():
        raise RuntimeError(f"locust exited {proc.returncode}:\n{output[-3000:]}")
    wall = time.monotonic() - started
    return {
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "server_cpu_s": round(sum(server.ps.cpu_times()[:2]) - server_cpu0, 2),
        "exit": proc.returncode,
        "timeline": timeline,
    }


def cpu_between(timeline: list[tuple[float, float]], lo: float, hi: float) -> float | None:
    """CPU share of one core used between unix times ``lo`` and ``hi`` (from the sampled timeline)."""
    inside = [(t, c) for t, c in timeline if lo <= t <= hi]
    if len(inside) < 2:
        return None
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    return (c1 - c0) / (t1 - t0) if t1 > t0 else None


def steady_stats(store_path: Path, run_seconds: int | None = None) -> dict[str, Any]:
    """Per-second rates and latencies over the steady seconds (skip 2 s of ramp and the last second).

    With ``run_seconds`` (Locust's ``-t``) the window also ends that long after the first second: a run that
    stops late stores a second more, whose stop (``connection_lost``, the last sends) is not steady.
    """
    with RunStore.open(store_path, readonly=True) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        span = store.time_range(run_id)
        assert span is not None
        lo, hi = span[0] + 2, span[1]  # [lo, hi): steady seconds
        if run_seconds is not None:
            hi = max(lo + 1, min(hi, span[0] + run_seconds))
        pongs = store.counters(run_id, prefix="recv.pong", start=lo, end=hi)
        seconds = max(1, hi - lo)
        result: dict[str, Any] = {"seconds": seconds, "pongs_per_s": round(pongs["value"].sum() / seconds)}
        for metric in ("send_lag", "pong"):
            merged = store.merged_histogram(run_id, metric, lo, hi)
            if merged.get_total_count():
                p = hdr.percentiles(merged, [50, 99])
                result[metric] = {"p50_ms": p[50] / 1000, "p99_ms": p[99] / 1000}
        errors = store.counters(run_id, prefix="errors.", start=lo, end=hi)
        result["errors"] = int(errors["value"].sum())
        result["errors_by_name"] = {str(k): int(v) for k, v in errors.groupby("name")["value"].sum().items()}
        spawn = store.merged_histogram(run_id, "connect", None, None)
        if spawn.get_total_count():
            p = hdr.percentiles(spawn, [50, 99])
            result["connect"] = {"p50_ms": p[50] / 1000, "p99_ms": p[99] / 1000, "n": spawn.get_total_count()}
        result["window"] = (lo, hi)
        gauges = store.gauges(run_id, ["users.connected"])
        result["peak_connected"] = int(gauges["sum"].max()) if not gauges.empty else 0
        return result


# --- phases -------------------------------------------------------------------------------------------------


def rate_step(server: Server, tmp: Path, total: int, seconds: int, users: int, repo: Path = REPO) -> dict:
    """One step of the rate sweep: ``users`` connections pinging ``total``/s for ``seconds``."""
    store = tmp / f"rate-{total}-{len(list(tmp.glob('rate-*')))}.sqlite3"
    proc = run_locust(
        server,
        store,
        ["RatePinger", "-u", str(users), "-r", str(users), "-t", f"{seconds}s"],
        env={"WSGAUGE_BENCH_RATE": str(total / users)},
        repo=repo,
    )
    stats = steady_stats(store, seconds)
    ok = (
        stats["pongs_per_s"] >= 0.97 * total
        and stats.get("send_lag", {}).get("p99_ms", 1e9) < SEND_LAG_P99_MS
    )
    share = cpu_between(proc.pop("timeline"), *stats["window"])
    step = {"offered": total, **stats, **proc, "ok": ok}
    if share:
        step["worker_cpu_pct"] = round(100 * share)
        step["round_trips_per_cpu_s"] = round(stats["pongs_per_s"] / share)
    return step


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def median_step(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One rate step over its repeats: the median of each figure, and sustained judged on the medians.

    A single 4-6 s step is noise-dominated on a shared machine (one side passed 16k and 32k but missed 24k):
    the step counts as sustained when the median achieved rate is >= 97 % of offered and the median send-lag
    p99 is under 2 ms; ``ok_repeats`` says how many single repeats met the rule on their own.
    """
    total = runs[0]["offered"]
    step: dict[str, Any] = {"offered": total, "repeats": len(runs)}
    step["pongs_per_s"] = round(_median([r["pongs_per_s"] for r in runs]))
    for metric in ("send_lag", "pong"):
        got = [r[metric] for r in runs if metric in r]
        if got:
            step[metric] = {q: round(_median([g[q] for g in got]), 3) for q in ("p50_ms", "p99_ms")}
    for key in ("worker_cpu_pct", "round_trips_per_cpu_s"):
        got = [r[key] for r in runs if key in r]
        if got:
            step[key] = round(_median(got))
    connects = [r["connect"]["p50_ms"] for r in runs if r.get("connect")]
    if connects:
        step["connect_p50_ms"] = round(_median(connects), 3)
    step["errors"] = sum(r["errors"] for r in runs)
    step["peak_rss_mb"] = round(_median([r["peak_rss_mb"] for r in runs]), 1)
    step["ok_repeats"] = sum(bool(r["ok"]) for r in runs)
    step["ok"] = (
        step["pongs_per_s"] >= 0.97 * total and step.get("send_lag", {}).get("p99_ms", 1e9) < SEND_LAG_P99_MS
    )
    step["send_lag_p99_ms_each"] = [r.get("send_lag", {}).get("p99_ms") for r in runs]
    return step


def phase_rate(
    server: Server,
    tmp: Path,
    rates: list[int],
    seconds: int,
    users: int,
    baselines: dict[str, Path] | None = None,
    all_steps: bool = False,
    repeats: int = 1,
) -> dict[str, Any]:
    """The rate sweep; with ``baselines`` (side name -> checkout), each step on every checkout, taking turns.

    Each step runs ``repeats`` times per side, the sides taking turns (A B, B A, A B ...), and is judged on
    the medians (:func:`median_step`). A side stops after two missed steps in a row, unless ``all_steps`` (to
    compare CPU per round trip at fixed rates on a machine too busy for either side to keep the schedule).
    """
    sides = {"after": REPO, **(baselines or {})}
    steps: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    best = dict.fromkeys(sides, 0)
    misses = dict.fromkeys(sides, 0)
    turn = 0
    for total in rates:
        active = [side for side in sides if all_steps or misses[side] < 2]
        if not active:
            break
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in active}
        for repeat in range(repeats):
            order = active if turn % 2 == 0 else list(reversed(active))
            turn += 1
            for side in order:
                step = rate_step(server, tmp, total, seconds, users, sides[side])
                runs[side].append(step)
                print(json.dumps({"side": side, "repeat": repeat + 1, **step}), flush=True)
        for side in active:
            step = runs[side][0] if repeats == 1 else median_step(runs[side])
            if repeats > 1:
                step["runs"] = runs[side]
                print(
                    json.dumps(
                        {"side": side, "median_of": repeats, **{k: v for k, v in step.items() if k != "runs"}}
                    ),
                    flush=True,
                )
            steps[side].append(step)
            if step["ok"]:
                best[side], misses[side] = total, 0
            else:
                misses[side] += 1
    result: dict[str, Any] = {"steps": steps["after"], "sustained_rate": best["after"], "repeats": repeats}
    result["sides"] = {side: {"steps": steps[side], "sustained_rate": best[side]} for side in sides}
    if baselines:
        first = next(iter(baselines))
        result["before"] = result["sides"][first]
    return result


BARE = r"""
import gevent.monkey; gevent.monkey.patch_all()
import json, sys, time
import gevent, gevent.event, orjson, websocket
sys.path.insert(0, sys.argv[1])
import nextauth_tokens as nextauth
url, secret, n, seconds = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
count, ready = [0], [0]
go = gevent.event.Event()  # set once every connection is open: only the loop is timed
def one(i):
    token = nextauth.mint_v4(secret, {"sub": f"bare-{i}"}, max_age=3600)
    cookie = nextauth.cookie_header(token, nextauth.V4_COOKIE)
    ws = websocket.create_connection(url, header=[f"Cookie: {cookie}"], skip_utf8_validation=True)
    ready[0] += 1
    go.wait()
    deadline = time.monotonic() + seconds
    ts = 0
    while time.monotonic() < deadline:
        ts += 1
        ws.send(orjson.dumps({"type": "ping", "ts": ts}).decode())
        while True:
            frame = orjson.loads(ws.recv())
            if frame.get("type") == "pong":
                break
        count[0] += 1
    ws.close()
users = [gevent.spawn(one, i) for i in range(n)]
while ready[0] < n:
    gevent.sleep(0.05)
    if any(u.dead for u in users):
        sys.exit("a bare connection failed")
start, cpu = time.monotonic(), time.process_time()
go.set()
gevent.joinall(users)
print(json.dumps({"round_trips": count[0], "seconds": round(time.monotonic() - start, 2),
                  "loop_cpu_s": round(time.process_time() - cpu, 3)}))
"""


def bare_once(server: Server, connections: int, seconds: float) -> dict[str, Any]:
    proc = subprocess.Popen(
        ["taskset", "-c", str(WORKER_CORE), sys.executable, "-c", BARE, str(REPO), server.ws_url,
         server.secret, str(connections), str(seconds)],
        env=_env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    ps = psutil.Process(proc.pid)
    cpu = 0.0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            cpu = sum(ps.cpu_times()[:2])
        time.sleep(0.1)
    assert proc.stdout is not None
    result = json.loads(proc.stdout.read().strip().splitlines()[-1])
    result["rate"] = round(result["round_trips"] / result["seconds"])
    result["cpu_s"] = round(cpu, 2)  # the whole process, start-up included
    loop_cpu = result["loop_cpu_s"]  # the steady loop only
    result["worker_cpu_pct"] = round(100 * loop_cpu / result["seconds"])
    if loop_cpu:
        result["round_trips_per_cpu_s"] = round(result["round_trips"] / loop_cpu)
    print(json.dumps({"bare": result}), flush=True)
    return result


def phase_bare(server: Server, connections: int, seconds: float, repeats: int = 1) -> dict[str, Any]:
    """The bare loop ``repeats`` times; with more than one, its rate is their median (the runs are kept)."""
    runs = [bare_once(server, connections, seconds) for _ in range(repeats)]
    if repeats == 1:
        return runs[0]
    result: dict[str, Any] = {"repeats": repeats, "rate": round(_median([r["rate"] for r in runs]))}
    per_cpu = [r["round_trips_per_cpu_s"] for r in runs if "round_trips_per_cpu_s" in r]
    if per_cpu:
        result["round_trips_per_cpu_s"] = round(_median(per_cpu))
    result["rates_each"] = [r["rate"] for r in runs]
    print(json.dumps({"bare_median": result}), flush=True)
    result["runs"] = runs
    return result


def phase_users(
    server: Server, tmp: Path, counts: list[int], hold: int, repo: Path = REPO, side: str = "after"
) -> dict[str, Any]:
    """Connected users at light traffic; RSS per user is the marginal one (smallest to largest count)."""
    rows = []
    for n in counts:
        store = tmp / f"users-{side}-{n}.sqlite3"
        spawn_rate = 500
        duration = int(n / spawn_rate) + hold
        proc = run_locust(
            server,
            store,
            ["StudentUser", "-u", str(n), "-r", str(spawn_rate), "-t", f"{duration}s", "--think-scale", "5"],
            locustfile="loadtest",
            repo=repo,
        )
        stats = steady_stats(store)
        proc.pop("timeline")
        row = {
            "side": side,
            "users": n,
            "peak_connected": stats["peak_connected"],
            "connect": stats.get("connect"),
            "errors": stats["errors"],
            "errors_by_name": stats["errors_by_name"],
            **proc,
            "rss_kb_per_user": round(proc["peak_rss_mb"] * 1024 / n, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result: dict[str, Any] = {"rows": rows}
    if len(rows) >= 2 and rows[-1]["users"] > rows[0]["users"]:
        low, high = rows[0], rows[-1]
        result["marginal_rss_kb_per_user"] = round(
            (high["peak_rss_mb"] - low["peak_rss_mb"]) * 1024 / (high["users"] - low["users"]), 1
        )
        print(
            json.dumps({side: {"marginal_rss_kb_per_user": result["marginal_rss_kb_per_user"]}}), flush=True
        )
    return result


AREAS = (
    ("websocket", "websocket-client (framing, masking, socket I/O)"),
    ("gevent", "gevent (hub, sockets, greenlets)"),
    ("locust", "Locust (events, stats, runners)"),
    ("hdrh", "hdrhistogram"),
    ("loadtest/_connection", "wsgauge connection (track/match/record, read loop)"),
    ("loadtest/_protocol", "wsgauge protocol (encode/decode/keys)"),
    ("loadtest/_locust_stats", "wsgauge batched Locust stats"),
    ("loadtest/_client", "wsgauge WsClient (persona-facing calls)"),
    ("loadtest/_wire", "wsgauge wire (framing, masking, decoding)"),
    ("loadtest/_transport", "wsgauge transport (socket, handshake)"),
    ("loadtest/_clock", "wsgauge schedule clock (sleep_until)"),
    ("runstore", "wsgauge aggregator / store"),
    ("loadtest", "wsgauge other (users, run lifecycle)"),
    ("_loadtest_bench_users", "bench user (schedule loop)"),
    ("orjson", "orjson"),
)


def _area(filename: str, name: str) -> str:
    for key, label in AREAS:
        if key in filename or key in name:
            return label
    if filename == "~":
        if "send" in name or "recv" in name or "poll" in name or "select" in name:
            return "system calls (send/recv/epoll)"
        return "other built-ins"
    return "other Python"


def _thread_cpu_ms(fn: Any, reps: int) -> float:
    """Median thread CPU time of ``fn()`` in ms (CPU, not wall: other processes' load matters less)."""
    times = []
    for _ in range(reps):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return round(1e3 * _median(times), 3)


def phase_jobs(tmp: Path, rate: int, reps: int = 30) -> dict[str, Any]:
    """The once-a-second jobs of a worker at ``rate`` round trips/s (two metrics: send lag and pong), timed
    in this process: recording a second's raw values (against a binary search over the bucket starts, the
    previous way, in the same run), the aggregator's drain, the store write of the drained second."""
    import numpy as np

    from runstore.samples import SampleAggregator
    from runstore.store import RunInfo

    rng = np.random.default_rng(1)
    raw = rng.lognormal(5.5, 0.6, rate)
    histogram = hdr.new_histogram()

    def searchsorted_record() -> None:  # the previous record_many's bucketing, for the ratio
        values = np.clip(np.trunc(raw), hdr.LOWEST_US, hdr.HIGHEST_US).astype(np.int64)
        index = np.searchsorted(hdr._INDEX_LOWEST, values, side="right") - 1
        hdr.counts_view(histogram)[:] += np.bincount(index, minlength=hdr._N)

    def second(at: int) -> SampleAggregator:
        aggregator = SampleAggregator(clock=lambda: at + 0.5)
        for metric in ("send_lag", "pong"):
            for value in raw:
                aggregator.record_latency(metric, value, at=at + 0.5)
        aggregator.incr("recv.pong", rate, at=at + 0.5)
        aggregator.set_gauge("users.connected", [1.0] * 50, at=at + 0.5)
        return aggregator

    base = int(time.time()) - 3600
    aggregators = [second(base + i) for i in range(reps)]
    drained = []

    def drain() -> None:
        drained.append(aggregators.pop().drain()[0])

    result: dict[str, Any] = {
        "values_per_metric": rate,
        "record_many_ms": _thread_cpu_ms(lambda: hdr.record_many(histogram, raw), reps),
        "searchsorted_record_ms": _thread_cpu_ms(searchsorted_record, reps),
        "drain_ms": _thread_cpu_ms(drain, reps),
    }
    result["record_ratio"] = round(result["searchsorted_record_ms"] / max(result["record_many_ms"], 1e-6), 1)
    with RunStore.open(tmp / "jobs.sqlite3") as store:
        run_id = store.create_run(RunInfo("jobs", "ws://127.0.0.1:1/ws"))
        pending = list(drained)
        result["store_write_ms"] = _thread_cpu_ms(lambda: store.write_samples(run_id, pending.pop()), reps)
    print(json.dumps({"jobs": result}), flush=True)
    return result


def phase_profile(
    server: Server, tmp: Path, rate: int, users: int, seconds: int, sampler: str = "cprofile"
) -> dict[str, Any]:
    """Profile one rate step: ``cprofile`` (exact calls, inflated per-call cost) or ``py-spy`` (sampled)."""
    store = tmp / "profile.sqlite3"
    prof = tmp / ("locust.prof" if sampler == "cprofile" else "locust.pyspy.txt")
    proc = run_locust(
        server,
        store,
        ["RatePinger", "-u", str(users), "-r", str(users), "-t", f"{seconds}s"],
        env={"WSGAUGE_BENCH_RATE": str(rate / users)},
        profile=prof,
        sampler=sampler,
    )
    shutil.copy(prof, OUT / f"loadtest_worker{prof.suffix}")  # `python -m pstats` / flame graph tools
    by_area: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)
    rows: dict[str, float] = defaultdict(float)
    if sampler == "cprofile":
        stats = pstats.Stats(str(prof))
        for (filename, _line, name), (_cc, _nc, tottime, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            by_area[_area(filename, name)] += tottime
            rows[f"{Path(filename).name}:{name}"] += tottime
    else:  # collapsed stacks: "frame;frame;... count", frames "name (file:line)"
        for line in prof.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack:
                continue
            count = float(count_text)
            frames = [f.rpartition(" (") for f in stack.split(";")]
            name, _, where = frames[-1]
            filename = where.rsplit(":", 1)[0]
            by_area[_area(filename, name)] += count
            rows[f"{Path(filename).name}:{name}"] += count
            for label in {f"{Path(w.rsplit(':', 1)[0]).name}:{n}" for n, _, w in frames}:
                inclusive[label] += count
    total = sum(rows.values()) or 1.0
    result = {
        "rate": rate,
        "sampler": sampler,
        "achieved": steady_stats(store)["pongs_per_s"],
        "profiled": round(total, 2),
        "by_area_pct": {
            k: round(100 * v / total, 1) for k, v in sorted(by_area.items(), key=lambda kv: -kv[1])
        },
        "top": [(n, round(100 * t / total, 1)) for n, t in sorted(rows.items(), key=lambda kv: -kv[1])[:20]],
        **{k: v for k, v in proc.items() if k != "timeline"},
    }
    if inclusive:
        top = sorted(inclusive.items(), key=lambda kv: -kv[1])
        result["inclusive_top"] = [(n, round(100 * t / total, 1)) for n, t in top[:40]]
    print(json.dumps(result, indent=1), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "phase",
        nargs="?",
        default="all",
        choices=("all", "compare", "rate", "bare", "users", "profile", "jobs"),
    )
    parser.add_argument(
        "--baseline-ref",
        help="also run the rate and users phases on this commit (git archive), taking turns; several "
        "comma-separated refs: one side each, named by the ref; 'compare' = rate + bare + users with them",
    )
    parser.add_argument("--rates", default="8000,16000,20000,24000,28000,32000")
    parser.add_argument("--all-steps", action="store_true", help="run every rate step (no stop on misses)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per side and rate step (and of the bare loop); medians"
    )
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--users", default="200,5000")
    parser.add_argument("--profile-rate", type=int, default=0, help="default: 80 %% of the sustained rate")
    parser.add_argument("--sampler", choices=("cprofile", "py-spy"), default="cprofile")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs 2 cores (server on core 0, worker on core 1)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_1m": os.getloadavg()[0]}}
    if args.phase == "compare" and not args.baseline_ref:
        parser.error("compare needs --baseline-ref")
    refs = [r.strip() for r in (args.baseline_ref or "").split(",") if r.strip()]
    with tempfile.TemporaryDirectory(prefix="wsgauge-bench-") as tmp_name:
        tmp = Path(tmp_name)
        baselines: dict[str, Path] = {}
        for i, ref in enumerate(refs):
            try:
                baselines["before" if len(refs) == 1 else ref] = checkout(ref, tmp / f"baseline-{i}")
            except subprocess.CalledProcessError as exc:
                sys.exit(f"--baseline-ref {ref}: {exc.stderr.decode(errors='replace').strip()}")
        if refs:
            results["baseline_ref"] = args.baseline_ref
        server = Server(tmp)
        try:
            if args.phase in ("all", "rate", "compare"):
                rates = [int(r) for r in args.rates.split(",")]
                results["rate"] = phase_rate(
                    server,
                    tmp,
                    rates,
                    args.seconds,
                    args.connections,
                    baselines,
                    args.all_steps,
                    args.repeats,
                )
            if args.phase in ("all", "bare", "compare"):
                results["bare"] = phase_bare(server, args.connections, args.seconds, args.repeats)
            if args.phase in ("all", "jobs"):
                results["jobs"] = phase_jobs(tmp, int(args.rates.split(",")[-1]))
            if args.phase in ("all", "profile"):
                rate = (
                    args.profile_rate
                    or int(0.8 * results.get("rate", {}).get("sustained_rate", 5000))
                    or 4000
                )
                results["profile"] = phase_profile(
                    server, tmp, rate, args.connections, args.seconds, args.sampler
                )
            if args.phase in ("all", "users", "compare"):
                counts = [int(n) for n in args.users.split(",")]
                results["users"] = phase_users(server, tmp, counts, 10)
                for side, path in baselines.items():
                    key = "users_before" if side == "before" else f"users_{side}"
                    results[key] = phase_users(server, tmp, counts, 10, path, side)
        finally:
            server.stop()
    results["machine"]["load_1m_after"] = os.getloadavg()[0]
    if "rate" in results and "bare" in results and results["bare"]["rate"]:
        bare = results["bare"]["rate"]
        ratios = {
            f"{side}_vs_bare": round(r["sustained_rate"] / bare, 2)
            for side, r in results["rate"]["sides"].items()
        }
        results["vs_bare"] = ratios
        results["locust_vs_bare"] = ratios["after_vs_bare"]
        if "before" in results["rate"]:
            results["before_vs_bare"] = round(results["rate"]["before"]["sustained_rate"] / bare, 2)
        print(json.dumps({"bare_rate": bare, **ratios}))
    out = OUT / f"loadtest_worker-{args.phase}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
