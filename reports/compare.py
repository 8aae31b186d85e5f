"""Compare two runs: load them (report files or run ids), gate them, and write the diff, JSON and JUnit.

:func:`reports.gate.evaluate_gate` decides; this module only moves data in and out.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from reports.build import write_atomically
from reports.data import RunData, load_run
from reports.embed import FORMAT, SCHEMA_VERSION, read_report, run_to_block
from reports.errors import ReportError
from reports.figures import report_figures
from reports.gate import GateResult
from reports.render import comparison_html, verdict_rows

__all__ = [
    "comparison_block",
    "junit_xml",
    "load_input",
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


def comparison_block(result: GateResult, baseline: RunData | None, candidate: RunData) -> dict[str, Any]:
    """The data block of a comparison page: the verdict and both runs."""
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "kind": "comparison",
        "result": result.to_dict(),
        "baseline": None if baseline is None else run_to_block(baseline),
        "candidate": run_to_block(candidate),
    }


def _label(role: str, data: RunData) -> str:
    return f"{role} (run {data.run.get('id')})"


def write_comparison(
    result: GateResult, baseline: RunData | None, candidate: RunData, output: str | os.PathLike[str]
) -> Path:
    """Write the diff HTML: verdict per rule, both runs overlaid on every chart."""
    runs = [(_label("candidate", candidate), candidate)]
    if baseline is not None:
        runs.insert(0, (_label("baseline", baseline), baseline))
    figures = report_figures(runs)
    block = comparison_block(result, baseline, candidate)
    return write_atomically(Path(output), comparison_html(result, runs, figures, block))


def write_json(result: GateResult, output: str | os.PathLike[str]) -> Path:
    """Write the verdict as JSON."""
    return write_atomically(Path(output), json.dumps(result.to_dict(), indent=2, default=str) + "\n")


def junit_xml(result: GateResult) -> str:
    """The verdict as JUnit XML: one ``testcase`` per rule, ``failure`` for regressions, ``skipped`` too."""
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
    for rule in result.rules:
        case = ET.SubElement(
            suite, "testcase", classname=f"wsgauge.gate.{rule.kind}", name=rule.rule, time="0"
        )
        if rule.status == "regression":
            failure = ET.SubElement(case, "failure", message=rule.reason, type="regression")
            failure.text = rule.reason
        elif rule.status == "skipped":
            ET.SubElement(case, "skipped", message=rule.reason)
        else:
            ET.SubElement(case, "system-out").text = f"{rule.status}: {rule.reason}"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(result: GateResult, output: str | os.PathLike[str]) -> Path:
    """Write the verdict as JUnit XML."""
    return write_atomically(Path(output), junit_xml(result))


def verdict_table(result: GateResult) -> str:
    """The compact text table printed on stdout."""
    header = ("rule", "baseline", "candidate", "change", "limit", "verdict")
    rows = [header, *verdict_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"note: {note}" for note in result.notes]
    failed = len(result.regressions)
    lines.append(
        f"verdict: {result.verdict.upper()} ({failed} of {len(result.rules)} rules failed; "
        f"warm-up {result.warmup_s:g} s excluded)"
    )
    return "\n".join(lines)
