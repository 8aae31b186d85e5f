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

from charts.health import GeneratorHealth
from charts.load import describe_load
from reports.data import RunData, error_rates, latency_summary, request_type, throughput
from reports.embed import data_block
from reports.figures import FIGURE_TITLES
from reports.gate import GateResult, RuleResult
from reports.headline import Headline, headline

__all__ = [
    "comparison_html",
    "figure_fragment",
    "headline_html",
    "health_banner",
    "incomplete_banner",
    "page",
    "report_html",
    "verdict_rows",
]

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
.headlines{display:flex;gap:16px;flex-wrap:wrap}
.headline{flex:1 1 560px;border:1px solid #d9e2ec;border-radius:6px;padding:10px 14px;margin:8px 0}
.headline h3{margin:0 0 6px;font-size:1em}.headline .verdict{font-size:1.05em;margin-right:8px}
.not-judged{background:#718096}.inconclusive{background:#b7791f}
.tiles{display:flex;gap:10px;flex-wrap:wrap;margin:8px 0}
.tile{background:#f5f7fa;border-radius:4px;padding:6px 12px;min-width:110px}
.incomplete{background:#fed7d7;border:1px solid #c53030;border-radius:4px;padding:6px 12px;margin:8px 0}
.generator-bound{background:#fefcbf;border:1px solid #d69e2e;border-radius:4px;padding:6px 12px;margin:8px 0}
.tile b{display:block;font-size:1.25em}.tile span{color:#616e7c;font-size:.8em}
table.options td{text-align:left;white-space:normal;font-family:ui-monospace,monospace;font-size:.95em}
ul.rules{margin:4px 0;padding-left:18px;font-size:.85em}
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


def _value(value: Any) -> str:
    """One option's value as text: scalars as they are, lists and tables as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _options_table(options: Mapping[str, Any]) -> str:
    """The run's options, one row per key, sorted (the JSON itself stays in the data block)."""
    if not options:
        return "-"
    rows = "".join(
        f'<tr data-option="{html.escape(str(k))}"><th>{html.escape(str(k))}</th>'
        f"<td>{html.escape(_value(v))}</td></tr>"
        for k, v in sorted(options.items(), key=lambda kv: str(kv[0]))
    )
    return f'<table class="options">{rows}</table>'


def _load_rows(data: RunData) -> list[tuple[str, str]]:
    """``users`` (-u / -r) for an ordinary run; ``shape``, ``stages`` and ``peak users`` for a shape run."""
    load = describe_load(data.run.get("options"), data.run.get("summary"))
    if load.shape_class is None:
        return [("users", html.escape(load.short or "-"))]
    rows = [("shape", html.escape(load.shape_class))]
    if load.stages:
        rows.append(("stages", html.escape(load.stages)))
    peak = "-" if load.peak_users is None else f"{load.peak_users:,} observed"
    rows.append(("peak users", html.escape(peak)))
    return rows


def health_banner(health: GeneratorHealth | None) -> str:
    """The report's warning when the load generator, not the target, set some seconds' latency; empty when
    it never did or the run has no health gauges."""
    if health is None or not health.bound:
        return ""
    return (
        f'<p class="generator-bound" role="alert" data-bound="{health.bound}" data-judged="{health.judged}">'
        f"<b>Generator-bound:</b> {html.escape(health.sentence)} "
        '<span class="muted">(shaded on the latency charts; see "Load generator health")</span></p>'
    )


def incomplete_banner(reason: str | None) -> str:
    """The report's warning when a worker's last samples never reached the master: the run's counts and
    rates are short by that worker's share of its last seconds; empty for a complete run."""
    if not reason:
        return ""
    return (
        f'<p class="incomplete" role="alert"><b>Incomplete run:</b> {html.escape(reason)} '
        '<span class="muted">(its counts and rates undercount)</span></p>'
    )


def _metadata_table(data: RunData) -> str:
    run = data.run
    options = run.get("options") or {}
    rows = [
        ("run", html.escape(f"{run.get('id')} · {run.get('name')} · {run.get('status')}")),
        ("target", html.escape(str(run.get("target")))),
        ("started", html.escape(_stamp(run.get("started_at")))),
        ("duration", html.escape(f"{data.duration_s:,} s of samples")),
        *_load_rows(data),
        ("git commit", html.escape(str(run.get("git_commit") or "-"))),
        ("options", _options_table(options)),
        ("versions", _json(run.get("versions"))),
        ("machine", _json(run.get("machine"))),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="meta">{body}</table>'


_VERDICT_WORDS = {"pass": "healthy", "regression": "unhealthy"}


def _count(value: int) -> str:
    """``9,500``, ``14.4 k``, ``3.46 M``: exact below 10,000, three digits above."""
    for factor, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= max(factor, 1e4):
            return f"{value / factor:.3g}{suffix}"
    return f"{value:,}"


def _percent(fraction: float) -> str:
    """``0 %``, ``0.0087 %``, ``1.25 %``: small rates keep their first digits."""
    pct = fraction * 100.0
    if pct == 0:
        return "0 %"
    return f"{pct:.2g} %" if pct < 0.01 else f"{pct:.3g} %"


def _tile(value: str, what: str, key: str) -> str:
    value, what = html.escape(value), html.escape(what)
    return f'<div class="tile" data-tile="{key}"><b>{value}</b><span>{what}</span></div>'


def headline_html(line: Headline, title: str | None = None) -> str:
    """The five-second summary of a run: verdict of the built-in rules, key numbers, key message types."""
    status = line.verdict.replace(" ", "-")
    word = _VERDICT_WORDS.get(line.verdict, line.verdict)
    broken = [r for r in line.rules if r.status not in ("pass", "improved")]
    if line.note:
        why = f"built-in rules not judged: {line.note}"
    elif broken:
        why = f"{len(broken)} of {len(line.rules)} built-in rules broken"
    else:
        why = f"all {len(line.rules)} built-in rules met (errors under 1 %, every p99 under 250 ms)"
    tiles = "".join(
        (
            _tile("-" if line.peak_users is None else f"{line.peak_users:,}", "peak users", "peak-users"),
            _tile(_count(line.sent), "messages sent", "sent"),
            _tile(_count(line.received), "messages received", "received"),
            _tile(_percent(line.error_rate), f"errors ({line.errors:,})", "error-rate"),
            _tile(f"{line.duration_s:,} s", "of samples", "duration"),
        )
    )
    load = ""
    if line.load.shape_class is not None:
        stages = f" · stages {line.load.stages}" if line.load.stages else ""
        shape = html.escape(line.load.shape_class)
        load = f'<p class="load muted" data-shape="{shape}">load: {shape} shape{html.escape(stages)}</p>'
    elif line.load.short:
        load = f'<p class="load muted">load: {html.escape(line.load.short)}</p>'
    rows = "".join(
        f'<tr data-metric="{html.escape(t.metric)}" data-p50-us="{t.p50_us}" data-p99-us="{t.p99_us}">'
        f"<td>{html.escape(t.metric)}</td><td>{_ms(t.p50_us)}</td><td>{_ms(t.p99_us)}</td>"
        f"<td>{'-' if t.error_rate is None else f'{t.error_rate * 100:.3f} %'}</td><td>{t.count:,}</td></tr>"
        for t in line.types
    )
    table = (
        '<table class="headline-types"><tr><th>message type</th><th>p50 ms</th><th>p99 ms</th>'
        f"<th>error rate</th><th>samples</th></tr>{rows}</table>"
    )
    rules = "".join(
        f'<li data-status="{html.escape(r.status)}">{html.escape(r.rule)}: {html.escape(r.reason)}</li>'
        for r in broken
    )
    return (
        f'<section class="headline" data-verdict="{html.escape(line.verdict)}">'
        + (f"<h3>{html.escape(title)}</h3>" if title else "")
        + f'<p><span class="verdict {html.escape(status)}">{html.escape(word.upper())}</span>'
        f'<span class="muted">{html.escape(why)}</span></p>'
        + (f'<ul class="rules">{rules}</ul>' if rules else "")
        + health_banner(line.health)
        + incomplete_banner(line.incomplete)
        + f"{load}<div class='tiles'>{tiles}</div>{table}</section>"
    )


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
    """The report of one run: the headline first, then the run's details, the per-type tables, every chart."""
    title = f"wsgauge report · run {data.run.get('id')} · {data.run.get('name')}"
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="muted">generated {_stamp(datetime.now(UTC).timestamp())} · figures: '
        f"{', '.join(FIGURE_TITLES[f] for f in figures)}</p>"
        f"{headline_html(headline(data))}"
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
    headlines = "".join(headline_html(headline(data), label) for label, data in runs)
    body += f"<h2>Both runs at a glance</h2><div class='headlines'>{headlines}</div>"
    for label, data in runs:
        body += f"<h2>{html.escape(label)}</h2>{_metadata_table(data)}{_summary_table(data)}"
    overlaid = "the first run of each side overlaid" if result.method == "runs" else "both runs overlaid"
    body += f"<h2>Charts ({overlaid})</h2>{_figures(figures)}"
    return page(title, body, block)
