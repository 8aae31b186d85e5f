"""Measurement truth: wsgauge's latencies against the wire's, same server, same run, frame by frame.

For each load, the reference server runs pinned to core 0 (with ``tcpdump`` capturing loopback on its port),
one Locust process (``StudentUser``, everything a real run does) pinned to core 1. Afterwards the capture is
reassembled (``bench/_pcap.py``) and every request is matched to its reply by what the payloads carry:

==================  ==========================================================================================
``ack:<type>``      client frame with ``requestId`` R -> the server's ``ack`` R on the same connection
``pong``            ``ping {ts}`` -> ``pong {ts}`` on the same connection
``sync:progress``   ``progress_update`` (subject, topic, completion) -> its ``progress_sync``
``delivery:chat``   ``chat_message`` -> ``new_message`` with the same ``message.timestamp`` (any connection;
                    pushes to a receiver that connected after the send are backlog, left out as wsgauge does)
``connect``         the client's SYN -> the packet completing the server's 101 response head
==================  ==========================================================================================

Wire times are the kernel's capture times: a request's first packet, a reply's last. In the open model the
round trips and deliveries are measured, as wsgauge measures them, from the **scheduled** send time (the
``message.timestamp`` an open-model chat carries), so the wire's figure includes the generator's send lag.
wsgauge's figures are read from the run store (exact HdrHistograms of the whole run). Printed per load and
metric: counts, p50/p99 of each, the p99 ratio wsgauge/wire and the p50 excess; plus the generator's health
(worst loop lag, GC pauses, CPU share, seconds flagged by ``runstore.health.generator_bound``).

Set-up: ``tcpdump`` is installed from Debian (``apt-get install tcpdump``) if missing; it needs root (or
CAP_NET_RAW). Loopback only; every load is bounded in users and seconds (about 1.5 min for all three).

    python bench/truth_wire.py                              # light, closed, open
    python bench/truth_wire.py --loads light --seconds 10   # a quick check
    python bench/truth_wire.py --gc-policy default          # the same, with CPython's GC defaults
    git archive COMMIT | tar -x -C /tmp/old; python bench/truth_wire.py --checkout /tmp/old  # before
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._pcap import Connection, read_capture  # noqa: E402
from bench.loadtest_worker import Server  # noqa: E402
from runstore import histogram as hdr  # noqa: E402
from runstore.health import generator_bound  # noqa: E402
from runstore.names import (  # noqa: E402
    GAUGE_GENERATOR_CPU,
    GAUGE_GENERATOR_GC_MAX_PAUSE,
    GAUGE_GENERATOR_GC_PAUSE,
    GAUGE_GENERATOR_LOOP_LAG,
    GENERATOR_GAUGES,
)
from runstore.store import RunStore  # noqa: E402

SERVER_CORE = "0"
WORKER_CORE = "1"
METRICS = ("ack:chat_message", "ack:progress_update", "pong", "sync:progress", "delivery:chat", "connect")


@dataclass(frozen=True)
class Load:
    name: str
    what: str
    args: tuple[str, ...]
    open_model: bool = False


LOADS = {
    "light": Load("light", "10 users, closed model", ("-u", "10", "-r", "10")),
    "closed": Load(
        "closed", "300 users, closed model, think x0.12", ("-u", "300", "-r", "100", "--think-scale", "0.12")
    ),
    "open": Load(
        "open",
        "200 users, open model 5,000 msg/s",
        ("-u", "200", "-r", "100", "--open-total-rate", "5000"),
        True,
    ),
}


# --- set-up -----------------------------------------------------------------------------------------------


def ensure_tcpdump() -> str:
    """The tcpdump binary, installed from Debian's archive if missing."""
    found = shutil.which("tcpdump")
    if found:
        return found
    print("tcpdump missing: apt-get install -y tcpdump", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "tcpdump"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    found = shutil.which("tcpdump")
    if not found:
        raise SystemExit("tcpdump could not be installed (apt-get needs root)")
    return found


def _env(extra: dict[str, str] | None = None, repo: Path = REPO) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSGAUGE_", "LOCUST_", "PYTHONPATH"))}
    env["PYTHONPATH"] = str(repo)
    return {**env, **(extra or {})}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Capture:
    """tcpdump on loopback, the server's port only, nanosecond capture times, on the server's core."""

    def __init__(self, tcpdump: str, port: int, path: Path) -> None:
        self.path = path
        command = [
            "taskset", "-c", SERVER_CORE, tcpdump, "-i", "lo", "-nn", "-s", "0", "-B", "65536",
            "--time-stamp-precision=nano", "-w", str(path), f"tcp port {port}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on lo, link-type EN10MB ..."
        if "listening on" not in line:
            raise RuntimeError(f"tcpdump did not start: {line!r}")

    def stop(self) -> int:
        """Stop; returns the packets the kernel dropped (0 means the capture is complete)."""
        # libpcap hands packets over in blocks retired after up to 1 s: wait for the last one first.
        time.sleep(1.5)
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        match = re.search(r"(\d+) packets? dropped by kernel", err or "")
        return int(match.group(1)) if match else -1


def run_locust(server: Server, store: Path, load: Load, seconds: int, gc_policy: str, repo: Path) -> None:
    """One pinned Locust process of the checkout ``repo`` (this one, or another to compare with)."""
    students = str(repo / "loadtest" / "students.py")
    command = [
        "taskset", "-c", WORKER_CORE, sys.executable, "-m", "locust", "-f", students, "StudentUser",
        "--headless", "--only-summary", "--loglevel", "WARNING", "--host", server.ws_url,
        f"--secret={server.secret}", f"--admin-token={server.admin_token}", "--results", str(store),
        "--report", "false", "--scrape-metrics", "false", "-t", f"{seconds}s", *load.args,
    ]  # fmt: skip
    extra = {"WSGAUGE_GC_POLICY": "default"} if gc_policy == "default" else {}
    proc = subprocess.run(
        command, cwd=repo, env=_env(extra, repo), capture_output=True, text=True, timeout=seconds + 120
    )
    if proc.returncode not in (0, 1) or not store.exists():
        raise RuntimeError(f"locust exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}")


# --- the wire's latencies ---------------------------------------------------------------------------------


def _unix(stamp: object) -> float | None:
    if type(stamp) is not str:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def wire_latencies(
    connections: dict[int, Connection], open_model: bool
) -> dict[str, list[tuple[float, float]]]:
    """``(completed at, microseconds)`` per wsgauge metric, matched frame by frame (module docstring)."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    chats: dict[str, float] = {}  # message.timestamp -> when the chat frame went out (or was scheduled)
    pushes: list[tuple[str, float, float]] = []  # (timestamp, pushed at, receiver connected at)
    for conn in connections.values():
        if conn.syn is None or conn.upgraded is None:
            continue  # not a WebSocket (the lifecycle's HTTP probe), or began before the capture
        out["connect"].append((conn.upgraded, (conn.upgraded - conn.syn) * 1e6))
        acks: dict[Any, tuple[str, float]] = {}
        pings: dict[Any, float] = {}
        syncs: dict[tuple[Any, Any, Any], float] = {}
        for frame in conn.sent:
            if frame.opcode != 1:
                continue
            obj = orjson.loads(frame.payload)
            kind = obj.get("type")
            origin = frame.first
            if kind == "chat_message":
                stamp = obj["message"].get("timestamp")
                scheduled = _unix(stamp)
                if open_model and scheduled is not None:
                    origin = scheduled
                if isinstance(stamp, str):
                    chats[stamp] = origin
            elif kind == "ping":
                pings[obj.get("ts")] = frame.first
            elif kind == "progress_update":
                p = obj["progress"]
                syncs[(p["subject"], p["topic"], p["completion"])] = frame.first
            if "requestId" in obj:
                acks[obj["requestId"]] = (kind, origin)
        for frame in conn.received:
            if frame.opcode != 1:
                continue
            obj = orjson.loads(frame.payload)
            kind = obj.get("type")
            if kind == "ack":
                sent = acks.pop(obj.get("requestId"), None)
                if sent is not None:
                    out[f"ack:{sent[0]}"].append((frame.last, (frame.last - sent[1]) * 1e6))
            elif kind == "pong":
                at = pings.pop(obj.get("ts"), None)
                if at is not None:
                    out["pong"].append((frame.last, (frame.last - at) * 1e6))
            elif kind == "progress_sync":
                d = obj["data"]
                at = syncs.pop((d["subject"], d["topic"], d["completion"]), None)
                if at is not None:
                    out["sync:progress"].append((frame.last, (frame.last - at) * 1e6))
            elif kind == "new_message":
                stamp = obj["data"].get("timestamp")
                if isinstance(stamp, str):
                    pushes.append((stamp, frame.last, conn.syn or 0.0))
    for stamp, at, connected in pushes:
        origin = chats.get(stamp)
        if origin is not None and origin >= connected:
            out["delivery:chat"].append((at, (at - origin) * 1e6))
    return out


# --- wsgauge's, from the store ----------------------------------------------------------------------------


def _figures(hist: Any) -> dict[str, float]:
    p = hdr.percentiles(hist, [50, 99])
    return {"n": hist.get_total_count(), "p50": float(p[50]), "p99": float(p[99])}


def _wire_figures(values: list[tuple[float, float]], seconds: set[int] | None = None) -> dict[str, float]:
    hist = hdr.new_histogram()  # the wire's values read off the same histogram layout as wsgauge's
    for at, value in values:
        if seconds is None or int(at) in seconds:
            hdr.record_us(hist, max(value, 1.0))
    return _figures(hist)


def store_figures(path: Path) -> tuple[dict[str, Any], dict[str, Any], set[int]]:
    """wsgauge's figures per metric (whole run; seconds not generator-bound), its health, those seconds."""
    with RunStore.open(path, readonly=True) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        gauges = store.gauges(run_id, list(GENERATOR_GAUGES))
        bound = generator_bound(gauges)
        trusted = {int(t) for t, b in zip(bound["t"], bound["bound"], strict=True) if not b}
        figures: dict[str, Any] = {}
        for metric in METRICS:
            merged = store.merged_histogram(run_id, metric)
            if merged.get_total_count():
                rows = store.latency(run_id, [metric], with_hist=True)
                inside = [h for t, h in zip(rows["t"], rows["hist"], strict=True) if int(t) in trusted]
                figures[metric] = {"all": _figures(merged), "trusted": _figures(hdr.merge_encoded(inside))}
        health: dict[str, Any] = {"seconds": len(bound), "bound_seconds": int(bound["bound"].sum())}
        for name, key, how in (
            (GAUGE_GENERATOR_LOOP_LAG, "loop_lag_max_ms", "max"),
            (GAUGE_GENERATOR_GC_MAX_PAUSE, "gc_pause_max_ms", "max"),
            (GAUGE_GENERATOR_GC_PAUSE, "gc_pause_total_ms", "sum"),
            (GAUGE_GENERATOR_CPU, "cpu_mean", "mean"),
        ):
            rows = gauges[gauges["name"] == name]
            if len(rows):
                value = {"max": rows["max"].max(), "sum": rows["sum"].sum(), "mean": rows["mean"].mean()}[how]
                health[key] = round(float(value), 3)
        return figures, health, trusted


# --- driving ----------------------------------------------------------------------------------------------


def measure(load: Load, seconds: int, gc_policy: str, tcpdump: str, tmp: Path, repo: Path) -> dict[str, Any]:
    server = Server(tmp, port=free_port())  # a known port: the capture filters on it
    pcap = tmp / f"{load.name}.pcap"
    store = tmp / f"{load.name}.sqlite3"
    try:
        capture = Capture(tcpdump, server.port, pcap)
        try:
            run_locust(server, store, load, seconds, gc_policy, repo)
        finally:
            dropped = capture.stop()
    finally:
        server.stop()
    wire = wire_latencies(read_capture(str(pcap), server.port), load.open_model)
    mine, health, trusted = store_figures(store)
    rows = []
    for metric in METRICS:
        values = wire.get(metric)
        if not values or metric not in mine:
            continue
        for part, seconds in (("all", None), ("trusted", trusted)):
            w = _wire_figures(values, seconds)
            m = mine[metric][part]
            if not w["n"] or not m["n"]:
                continue
            rows.append(
                {
                    "metric": metric,
                    "seconds": part,
                    "n_wire": int(w["n"]),
                    "n_wsgauge": int(m["n"]),
                    "wire_p50_ms": round(w["p50"] / 1e3, 3),
                    "wire_p99_ms": round(w["p99"] / 1e3, 3),
                    "wsgauge_p50_ms": round(m["p50"] / 1e3, 3),
                    "wsgauge_p99_ms": round(m["p99"] / 1e3, 3),
                    "ratio_p50": round(m["p50"] / w["p50"], 2),
                    "ratio_p99": round(m["p99"] / w["p99"], 2),
                    "excess_p50_ms": round((m["p50"] - w["p50"]) / 1e3, 3),
                }
            )
    return {"load": load.name, "what": load.what, "dropped_packets": dropped, "health": health, "rows": rows}


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        "\n| load | metric | seconds | n wire / wsgauge | wire p50 / p99 ms | wsgauge p50 / p99 ms |"
        " ratio p50 / p99 | p50 excess ms |\n|---|---|---|---|---|---|---|---|"
    )
    for result in results:
        for r in result["rows"]:
            print(
                f"| {result['what']} | {r['metric']} | {r['seconds']} | {r['n_wire']} / {r['n_wsgauge']} |"
                f" {r['wire_p50_ms']:.2f} / {r['wire_p99_ms']:.2f} |"
                f" {r['wsgauge_p50_ms']:.2f} / {r['wsgauge_p99_ms']:.2f} |"
                f" {r['ratio_p50']} / {r['ratio_p99']} | {r['excess_p50_ms']:+.3f} |"
            )
    print(
        "\nseconds: all = the whole run; trusted = the seconds runstore.health.generator_bound did not flag"
    )
    print("generator health (worst second / total):")
    for result in results:
        dropped = result["dropped_packets"]
        print(f"  {result['what']}: {result['health']}, packets the capture dropped: {dropped}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--loads", default="light,closed,open", help="comma-separated: light, closed, open")
    parser.add_argument("--seconds", type=int, default=30, help="run time per load (default 30)")
    parser.add_argument("--gc-policy", choices=("wsgauge", "default"), default="wsgauge")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--checkout",
        type=Path,
        default=REPO,
        help="run the load generator of this checkout (e.g. an export of an older commit, to compare)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.loads.split(",") if n.strip()]
    unknown = [n for n in names if n not in LOADS]
    if unknown or not names:
        parser.error(
            f"--loads: unknown load(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(LOADS)}"
        )
    if not 5 <= args.seconds <= 300:
        parser.error("--seconds must be between 5 and 300")
    if not (args.checkout / "loadtest" / "students.py").is_file():
        parser.error(f"--checkout {args.checkout}: no loadtest/students.py there")
    tcpdump = ensure_tcpdump()
    results = []
    with tempfile.TemporaryDirectory(prefix="truth-wire-") as tmp:
        for name in names:
            print(f"{name}: {LOADS[name].what}, {args.seconds} s, GC policy {args.gc_policy} ...", flush=True)
            results.append(
                measure(LOADS[name], args.seconds, args.gc_policy, tcpdump, Path(tmp), args.checkout)
            )
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps({"gc_policy": args.gc_policy, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
