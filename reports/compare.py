"""Compare runs: load each side (report files, directories of reports, run ids), gate them, write the diff,
JSON and JUnit.

:func:`reports.gate.evaluate_gate` decides; this module only moves data in and out.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reports.build import write_atomically
from reports.data import RunData, load_run
from reports.embed import FORMAT, SCHEMA_VERSION, block_to_run, read_block, read_report, run_to_block
from reports.errors import ReportError
from reports.figures import report_figures, runs_figure
from reports.gate import GateResult, RuleResult
from reports.render import comparison_html, verdict_rows

__all__ = [
    "check_distinct",
    "comparison_block",
    "junit_xml",
    "load_input",
    "load_inputs",
    "verdict_table",
    "write_comparison",
    "write_json",
    "write_junit",
]


def load_input(argument: str, results: str | os.PathLike[str]) -> RunData:
    """A run from a report file, or from the store at ``results`` if ``argument`` is a run id.

    Raises:
        ReportError: neither a readable report nor a run id of the store.
    """
    path = Path(argument)
    if path.is_file():
        return read_report(path)
    if argument.isdigit():
        return load_run(results, int(argument))
    raise ReportError(f"{argument}: no such report file (nor a run id)")


_ID_RANGE = re.compile(r"(\d+)-(\d+)")


def _identity(run: Mapping[str, Any]) -> tuple[Any, Any]:
    """What makes two runs the same run: its id and start (a run's metadata, or the gate's record of it)."""
    return run.get("id"), run.get("started_at")


def _reports_in(directory: Path) -> list[RunData]:
    """Every run report (``*.html``) of a directory, by file name; comparison pages are skipped."""
    runs = []
    for path in sorted(directory.glob("*.html")):
        block = read_block(path)
        if block.get("kind") != "comparison":
            runs.append(block_to_run(block, str(path)))
    if not runs:
        raise ReportError(f"{directory}: no wsgauge run reports (*.html) in this directory")
    return runs


def load_inputs(argument: str, results: str | os.PathLike[str]) -> list[RunData]:
    """One side of a comparison: one run or several runs of the same build.

    ``argument`` is a report file, a directory of reports, a run id of the store at ``results`` or a range
    of ids (``3-7``), or several of those separated by commas.

    Raises:
        ReportError: an item that is none of those, a damaged report, or the same run listed twice (it
            would pass for two runs that agree perfectly).
    """
    items = [argument] if Path(argument).exists() else [item.strip() for item in argument.split(",")]
    runs: list[RunData] = []
    for item in items:
        path, ids = Path(item), _ID_RANGE.fullmatch(item)
        if not item:
            raise ReportError(f"{argument!r}: an empty item in the comma-separated list")
        if path.is_dir():
            runs += _reports_in(path)
        elif ids and not path.exists():
            first, last = int(ids.group(1)), int(ids.group(2))
            if first > last:
                raise ReportError(f"{item}: an empty range of run ids")
            runs += [load_run(results, run_id) for run_id in range(first, last + 1)]
        else:
            runs.append(load_input(item, results))
    seen: set[tuple[Any, Any]] = set()
    for run in runs:
        if _identity(run.run) in seen:
            raise ReportError(f"{argument}: {run.label} is listed twice")
        seen.add(_identity(run.run))
    return runs


def check_distinct(baselines: Sequence[RunData], candidates: Sequence[RunData]) -> None:
    """Refuse a run that is on both sides (the same id, the same report file, overlapping id ranges).

    A run compared with itself agrees with itself perfectly and passes whatever the build does: a CI script
    with a wrong variable would go green. A deliberate A/A check compares two different runs of one build.

    Raises:
        ReportError: naming every run found on both sides.
    """
    candidate_ids = {_identity(run.run) for run in candidates}
    both = [run.label for run in baselines if _identity(run.run) in candidate_ids]
    if both:
        runs = f"run {both[0][4:]} is" if len(both) == 1 else f"runs {', '.join(b[4:] for b in both)} are"
        raise ReportError(
            f"{runs} both the baseline and the candidate: a run compared with itself passes whatever the "
            "build does; compare different runs (an A/A check compares two runs of one build)"
        )


def comparison_block(
    result: GateResult, baselines: Sequence[RunData], candidates: Sequence[RunData]
) -> dict[str, Any]:
    """The data block of a comparison page: the verdict and the runs.

    ``baseline`` and ``candidate`` are each side's first run (``baseline`` is null without a baseline);
    with several runs on a side, ``baseline_runs`` and ``candidate_runs`` hold all of them.
    """
    block = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "kind": "comparison",
        "result": result.to_dict(),
        "baseline": run_to_block(baselines[0]) if baselines else None,
        "candidate": run_to_block(candidates[0]),
    }
    if result.method == "runs":
        block["baseline_runs"] = [run_to_block(run) for run in baselines]
        block["candidate_runs"] = [run_to_block(run) for run in candidates]
    return block


def _label(role: str, runs: Sequence[RunData]) -> str:
    of = f", first of {len(runs)} runs" if len(runs) > 1 else ""
    return f"{role} (run {runs[0].run.get('id')}{of})"


def _judged(runs: Sequence[RunData], judged: Sequence[Mapping[str, Any]]) -> list[RunData]:
    """The runs the gate judged (it drops a run whose load generator stalled when others remain)."""
    keys = {_identity(meta) for meta in judged}
    kept = [run for run in runs if _identity(run.run) in keys]
    return kept or list(runs)


def write_comparison(
    result: GateResult,
    baselines: Sequence[RunData],
    candidates: Sequence[RunData],
    output: str | os.PathLike[str],
) -> Path:
    """Write the diff HTML: verdict per rule, each side's first run overlaid on every chart, and with several
    runs on a side, every run's value of every rule."""
    baselines = _judged(baselines, result.baseline_runs)
    candidates = _judged(candidates, result.candidate_runs)
    runs = [(_label("candidate", candidates), candidates[0])]
    if baselines:
        runs.insert(0, (_label("baseline", baselines), baselines[0]))
    figures = report_figures(runs)
    if result.method == "runs":
        figures = {"fig-runs": runs_figure(result), **figures}
    block = comparison_block(result, baselines, candidates)
    return write_atomically(Path(output), comparison_html(result, runs, figures, block))


def write_json(result: GateResult, output: str | os.PathLike[str]) -> Path:
    """Write the verdict as JSON."""
    return write_atomically(Path(output), json.dumps(result.to_dict(), indent=2, default=str) + "\n")


def junit_xml(result: GateResult) -> str:
    """The verdict as JUnit XML: one ``testcase`` per rule, ``failure`` for regressions, ``skipped`` for
    rules that could not be judged (what they had and need); an inconclusive verdict is a property of the
    suite (``wsgauge.verdict``), so a CI page shows it beside the skipped cases."""
    suites = ET.Element("testsuites", name="wsgauge gate")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="wsgauge.gate",
        tests=str(len(result.rules)),
        failures=str(len(result.regressions)),
        errors="0",
        skipped=str(sum(r.status == "skipped" for r in result.rules)),
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="wsgauge.verdict", value=result.verdict)
    for rule in result.rules:
        case = ET.SubElement(
            suite, "testcase", classname=f"wsgauge.gate.{rule.kind}", name=rule.rule, time="0"
        )
        if rule.status == "regression":
            failure = ET.SubElement(case, "failure", message=rule.reason, type="regression")
            failure.text = rule.reason
        elif rule.status == "skipped":
            optional = " (optional)" if rule.optional else ""
            ET.SubElement(case, "skipped", message=f"{rule.why}{optional}")
        else:
            ET.SubElement(case, "system-out").text = f"{rule.status}: {rule.reason}"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(result: GateResult, output: str | os.PathLike[str]) -> Path:
    """Write the verdict as JUnit XML."""
    return write_atomically(Path(output), junit_xml(result))


def _unjudged_word(result: GateResult, rule: RuleResult) -> str:
    if rule.optional:
        return "skipped (optional)"
    return "skipped (allowed)" if result.allow_inconclusive else "inconclusive"


def verdict_table(result: GateResult) -> str:
    """The compact table printed on stdout, then the notes and why each failed or unconfirmed rule is so."""
    header = ("rule", "baseline", "candidate", "change", "limit", "samples (min)", "verdict")
    rows = [header, *verdict_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"note: {note}" for note in result.notes]
    lines += [  # the why of every failed rule, and of every change seen but not confirmed
        f"{'regression' if rule.status == 'regression' else 'unconfirmed'}: {rule.rule}: {rule.reason}"
        for rule in result.rules
        if rule.status == "regression" or rule.unconfirmed
    ]
    lines += [  # and of every rule that could not be judged: what it had, needs, and how to get it
        f"{_unjudged_word(result, rule)}: {rule.rule}: {rule.why}"
        for rule in result.rules
        if rule.status == "skipped"
    ]
    runs = f"; {result.method_text}" if result.method == "runs" else ""
    lines.append(
        f"verdict: {result.verdict.upper()} ({result.summary}; warm-up {result.warmup_s:g} s excluded{runs})"
    )
    return "\n".join(lines)
