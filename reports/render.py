"""HTML: one self-contained file per report or comparison, working offline.

plotly.js (from the installed plotly package) is embedded exactly once, at the top of ``<body>``; every figure
is a ``Figure.to_html(full_html=False, include_plotlyjs=False)`` fragment that draws into its own ``div``; the
run's data travels in the JSON block of :mod:`reports.embed`. Nothing is fetched from the network.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from reports.data import RunData, error_rates, latency_summary, request_type, throughput
from reports.embed import data_block
from reports.figures import FIGURE_TITLES
from reports.gate import GateResult, RuleResult

__all__ = ["comparison_html", "figure_fragment", "page", "report_html", "verdict_rows"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1280px;
padding:16px 24px;color:#1f2933}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #d9e2ec}
table{border-collapse:collapse;font-size:.9em;margin:.4em 0}
th,td{padding:3px 10px;border-bottom:1px solid #e4e7eb;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f5f7fa}
table.meta td{text-align:left;white-space:normal}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;font-weight:600;color:#fff}
.pass{background:#2f855a}.regression{background:#c53030}.improved{background:#2b6cb0}.skipped{background:#718096}
.unconfirmed{background:#b7791f}
td.status span{padding:1px 6px;border-radius:3px;color:#fff;font-size:.85em}
.figure{margin:8px 0 20px}.muted{color:#616e7c;font-size:.85em}
"""


def figure_fragment(figure_id: str, figure: go.Figure) -> str:
    """One figure as an HTML fragment drawing into ``<div id=figure_id>`` (needs plotly.js on the page)."""
    fragment = figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=figure_id,
        config={"displaylogo": False, "responsive": True},
        default_height=f"{figure.layout.height or 380}px",
    )
    return f'<section class="figure" data-figure="{figure_id}">{fragment}</section>'


def page(title: str, body: str, block: Mapping[str, Any]) -> str:
    """A complete HTML document: plotly.js once, the body, then the data block."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n'
        f"{body}\n{data_block(block)}\n</body></html>\n"
    )


def _stamp(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _json(value: Any) -> str:
    if not value:
        return "-"
    return html.escape(json.dumps(value, sort_keys=True, default=str))


def _ms(us: float) -> str:
    return f"{us / 1000:.3f}"


def _metadata_table(data: RunData) -> str:
    run = data.run
    options = run.get("options") or {}
    users = options.get("users", options.get("num_users", "-"))
    rows = [
        ("run", f"{run.get('id')} · {run.get('name')} · {run.get('status')}"),
        ("target", run.get("target")),
        ("started", _stamp(run.get("started_at"))),
        ("duration", f"{data.duration_s} s of samples"),
        ("users", users),
        ("git commit", run.get("git_commit") or "-"),
        ("options", _json(options)),
        ("versions", _json(run.get("versions"))),
        ("machine", _json(run.get("machine"))),
    ]
    escaped = {"options", "versions", "machine"}  # already escaped JSON
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v if k in escaped else html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f'<table class="meta">{body}</table>'


def _summary_table(data: RunData) -> str:
    errors = error_rates(data)
    head = (
        "<tr><th>message type</th><th>count</th><th>rate /s</th><th>p50 ms</th><th>p90 ms</th>"
        "<th>p95 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>error rate</th></tr>"
    )
    rows = []
    for metric in data.metrics:
        s = latency_summary(data, metric)
        kind = request_type(metric)
        rate = errors.get(kind) if kind else None
        error_text = f"{float(rate['rate']) * 100:.3f} % ({rate['errors']})" if rate else "-"
        rows.append(
            f'<tr data-metric="{html.escape(metric)}"><td>{html.escape(metric)}</td><td>{s["count"]}</td>'
            f"<td>{s['rate_per_s']:.1f}</td><td>{_ms(s['p50_us'])}</td><td>{_ms(s['p90_us'])}</td>"
            f"<td>{_ms(s['p95_us'])}</td><td>{_ms(s['p99_us'])}</td><td>{_ms(s['p99.9_us'])}</td>"
            f"<td>{_ms(s['max_us'])}</td><td>{error_text}</td></tr>"
        )
    return f'<table class="summary">{head}{"".join(rows)}</table>'


def _rates_table(data: RunData) -> str:
    errors = error_rates(data)
    rates = throughput(data)
    rows = "".join(
        f"<tr><td>{html.escape(kind)}</td><td>{r['requests']}</td><td>{r['errors']}</td>"
        f"<td>{float(r['rate']) * 100:.3f} %</td><td>{rates.get('sent.' + kind, 0.0):.1f}</td></tr>"
        for kind, r in errors.items()
    )
    return (
        '<table class="rates"><tr><th>request type</th><th>requests</th><th>errors</th><th>error rate</th>'
        f"<th>sent /s</th></tr>{rows}</table>"
    )


def _figures(figures: Mapping[str, go.Figure]) -> str:
    return "\n".join(figure_fragment(fid, fig) for fid, fig in figures.items())


def report_html(data: RunData, figures: Mapping[str, go.Figure], block: Mapping[str, Any]) -> str:
    """The report of one run: summary first, then per-type table, then every chart."""
    title = f"wsgauge report · run {data.run.get('id')} · {data.run.get('name')}"
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="muted">generated {_stamp(datetime.now(UTC).timestamp())} · figures: '
        f"{', '.join(FIGURE_TITLES[f] for f in figures)}</p>"
        f"<h2>Summary</h2>{_metadata_table(data)}"
        f"<h2>Per message type</h2>{_summary_table(data)}{_rates_table(data)}"
        f"<h2>Charts</h2>{_figures(figures)}"
    )
    return page(title, body, block)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} {unit}" if unit in ("ms", "%") else f"{value:.1f} {unit}"


def verdict_rows(result: GateResult) -> list[tuple[str, str, str, str, str, str, str]]:
    """``(rule, baseline, candidate, change, limit, samples, status)`` per rule, as printed and rendered.

    ``samples`` is what the rule had in the run with the least and, in brackets, the least it is judged on.
    """
    rows = []
    for rule in result.rules:
        if rule.change is None:
            change = "-"
        elif rule.stat == "error_rate":
            change = f"{rule.change:+.3f} pp"
        else:
            change = f"{rule.change - 1:+.1%}"
        rows.append(
            (
                rule.rule,
                _number(rule.baseline, rule.unit),
                _number(rule.candidate, rule.unit),
                change,
                rule.limit,
                rule.evidence_text,
                rule.status + (" (optional)" if rule.status == "skipped" and rule.optional else ""),
            )
        )
    return rows


def _verdict_table(result: GateResult) -> str:
    head = (
        "<tr><th>rule</th><th>baseline</th><th>candidate</th><th>change</th><th>limit</th>"
        '<th title="what the rule had in the run with the least (the least it is judged on)">samples</th>'
        "<th>verdict</th><th>why</th></tr>"
    )
    rows = zip(verdict_rows(result), result.rules, strict=True)
    body = "".join(_verdict_row(row, rule) for row, rule in rows)
    return f'<table class="verdicts">{head}{body}</table>'


def _verdict_row(row: tuple[str, str, str, str, str, str, str], rule: RuleResult) -> str:
    """One rule's row; a pass whose change the interval could not confirm is marked ``unconfirmed``; a rule
    that could not be judged says what it had, what it needs and how long a run would give it."""
    name, b, c, change, limit, samples, _ = row
    status = rule.status
    badge = f'<span class="{status}">{status}</span>'
    if rule.unconfirmed:
        badge += ' <span class="unconfirmed">unconfirmed</span>'
    if status == "skipped" and rule.optional:
        badge += ' <span class="skipped">optional</span>'
    marks = (" data-unconfirmed" if rule.unconfirmed else "") + (" data-unjudged" if rule.unjudged else "")
    return (
        f'<tr data-status="{status}"{marks}>'
        f"<td>{html.escape(name)}</td><td>{b}</td><td>{c}</td><td>{change}</td><td>{html.escape(limit)}</td>"
        f"<td>{html.escape(samples)}</td>"
        f'<td class="status">{badge}</td>'
        f'<td style="text-align:left;white-space:normal">{html.escape(rule.why)}</td></tr>'
    )


def comparison_html(
    result: GateResult,
    runs: Sequence[tuple[str, RunData]],
    figures: Mapping[str, go.Figure],
    block: Mapping[str, Any],
) -> str:
    """The comparison page: the verdict per rule, then every chart with both runs overlaid."""
    title = "wsgauge comparison · " + " vs ".join(label for label, _ in runs)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f'<p><span class="verdict {result.verdict}"'
        + (' style="background:#b7791f"' if result.verdict == "inconclusive" else "")
        + f">{result.verdict.upper()}</span> "
        f'<span class="muted">{html.escape(result.summary)} · warm-up '
        f"{result.warmup_s:g} s excluded · {html.escape(result.method_text)}</span></p>"
        f"{_verdict_table(result)}" + (f"<ul class='notes'>{notes}</ul>" if notes else "")
    )
    for label, data in runs:
        body += f"<h2>{html.escape(label)}</h2>{_metadata_table(data)}{_summary_table(data)}"
    overlaid = "the first run of each side overlaid" if result.method == "runs" else "both runs overlaid"
    body += f"<h2>Charts ({overlaid})</h2>{_figures(figures)}"
    return page(title, body, block)
