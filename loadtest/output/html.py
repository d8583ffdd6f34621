"""The self-contained HTML report comparing targets: inline CSS, inline SVG, a few lines of inline JS.

It reads nothing from the network, so it opens offline and can be mailed or archived as one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from loadtest.bench import BenchResult
from loadtest.config import BenchSpec
from loadtest.output.svg import Series, line_chart
from loadtest.output.table import PAIRED_HEAD, paired_rows
from loadtest.paired import PairedDiff
from loadtest.selfcheck import SelfCheck
from loadtest.summary import PointSummary

CDF_METRICS = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL (token-weighted)"), ("e2e", "E2E"),
               ("ttft_sched", "TTFT_sched"), ("icl", "ICL (chunk gaps)"))
TABLE_METRICS = ("ttft", "ttft_sched", "tpot", "itl", "icl", "e2e", "send_lag")
STAT_FIELDS = ("mean", "std", "p50", "p90", "p95", "p99", "p99_9", "max")
MAX_CDF_SERIES = 10

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1240px}
h1{font-size:22px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0 16px;display:block;overflow-x:auto;max-width:100%}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right;font-size:13px}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
.grid{stroke:#eee} .frame{fill:none;stroke:#999} .tick{font-size:11px;fill:#555} .axis{font-size:12px;fill:#333}
.title{font-size:13px;font-weight:600} .plots{display:flex;flex-wrap:wrap;gap:8px}
.plot{margin:0} .legend{font-size:12px;max-width:560px} .key{cursor:pointer;margin-right:12px;white-space:nowrap}
.key i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
.key.off{opacity:.35} .series.off{display:none} .note{color:#555} code{background:#f3f3f3;padding:0 3px}
"""

# Legend clicks hide or show a series in its chart.
_JS = """
document.querySelectorAll('.plot').forEach(function (fig) {
  fig.querySelectorAll('.key').forEach(function (key) {
    key.addEventListener('click', function () {
      var s = key.getAttribute('data-series');
      key.classList.toggle('off');
      fig.querySelectorAll('.series[data-series="' + s + '"]').forEach(function (g) { g.classList.toggle('off'); });
    });
  });
});
document.body.setAttribute('data-charts', String(document.querySelectorAll('svg.chart').length));
"""


def _label(p: PointSummary, many_points: bool) -> str:
    return f"{p.target} @ {p.x_name}={p.x:g}" if many_points else p.target


def _cdfs(points: Sequence[PointSummary]) -> str:
    many = len({p.point for p in points}) > 1
    shown = points[:MAX_CDF_SERIES]
    charts = []
    for key, title in CDF_METRICS:
        series = []
        for p in shown:
            xs = [v * 1000 for v in p.cdf.get(key, [])]
            if xs:
                n = len(xs)
                series.append(Series(_label(p, many), xs, [(i + 1) / n for i in range(n)], step=True))
        charts.append(line_chart(f"{title} CDF", f"{title} (ms)", "fraction of samples", series,
                                 chart_id=f"cdf-{key}"))
    note = (f'<p class="note">CDFs of the first {MAX_CDF_SERIES} target/point pairs; the tables list all.</p>'
            if len(points) > MAX_CDF_SERIES else "")
    return "<h2>Latency distributions</h2>" + note + '<div class="plots">' + "".join(charts) + "</div>"


def _sweeps(points: Sequence[PointSummary]) -> str:
    if len({p.point for p in points}) < 2:
        return ""
    x_name = points[0].x_name
    x_label = "concurrency (requests in flight)" if x_name == "concurrency" else "request rate (req/s)"
    targets = list(dict.fromkeys(p.target for p in points))

    def curves(value: str, scale: float = 1.0, suffix: str = "", dashed: bool = False) -> list[Series]:
        out = []
        for k, t in enumerate(targets):
            mine = sorted((p for p in points if p.target == t), key=lambda p: p.x)
            xs, ys = [], []
            for p in mine:
                if "." in value:
                    name, field = value.split(".")
                    st = p.stats.get(name)
                    if st is None:
                        continue
                    ys.append(float(getattr(st, field)) * scale)
                else:
                    ys.append(float(getattr(p, value)) * scale)
                xs.append(p.x)
            out.append(Series(t + suffix, xs, ys, color=k, dashed=dashed))
        return out

    charts = [
        line_chart("Request throughput", x_label, "completed req/s", curves("request_throughput"), chart_id="sw-rps"),
        line_chart("Output token throughput", x_label, "tokens/s", curves("output_token_throughput"),
                   chart_id="sw-tps"),
        line_chart("TTFT vs load (dashed: p99)", x_label, "ms",
                   curves("ttft.p50", 1000, " p50") + curves("ttft.p99", 1000, " p99", True), chart_id="sw-ttft"),
        line_chart("TPOT vs load (dashed: p99)", x_label, "ms",
                   curves("tpot.p50", 1000, " p50") + curves("tpot.p99", 1000, " p99", True), chart_id="sw-tpot"),
        line_chart("Goodput", x_label, "req/s meeting every SLO", curves("goodput"), chart_id="sw-goodput"),
        line_chart("Achieved concurrency", x_label, "sum E2E / window", curves("achieved_concurrency"),
                   chart_id="sw-conc"),
    ]
    return "<h2>Sweep</h2><div class=\"plots\">" + "".join(charts) + "</div>"


def _ms(v: float) -> str:
    return f"{v * 1000:.2f}"


def _percentiles(points: Sequence[PointSummary]) -> str:
    out = ["<h2>Percentiles (ms)</h2>"]
    for point in sorted({p.point for p in points}):
        mine = [p for p in points if p.point == point]
        out.append(f"<h3>{escape(mine[0].x_name)} = {mine[0].x:g}</h3><table><tr><th>target</th><th>metric</th>"
                   + "".join(f"<th>{f.replace('_', '.')}</th>" for f in STAT_FIELDS) + "<th>samples</th></tr>")
        for p in mine:
            for name in TABLE_METRICS:
                st = p.stats.get(name)
                if st is None:
                    continue
                cells = "".join(f"<td>{_ms(getattr(st, f))}</td>" for f in STAT_FIELDS)
                out.append(f"<tr><td>{escape(p.target)}</td><td>{name}</td>{cells}<td>{st.count}</td></tr>")
        out.append("</table>")
    return "".join(out)


def _throughput(points: Sequence[PointSummary], slo: str) -> str:
    head = ("target", "load", "measured", "completed", "failed", "incomplete", "window s", "req/s", "out tok/s",
            "total tok/s", "achieved conc", "goodput req/s", "SLO attainment", "errors")
    rows = ["<h2>Throughput and goodput</h2>", f'<p class="note">SLOs: {escape(slo)}</p><table><tr>',
            "".join(f"<th>{h}</th>" for h in head), "</tr>"]
    for p in points:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(p.errors.items())) or "-"
        cells = (p.target, f"{p.x_name}={p.x:g}", p.requests, p.completed, p.failed, p.incomplete,
                 f"{p.window_s:.2f}", f"{p.request_throughput:.2f}", f"{p.output_token_throughput:.1f}",
                 f"{p.total_token_throughput:.1f}", f"{p.achieved_concurrency:.2f}", f"{p.goodput:.2f}",
                 f"{p.slo_attainment:.1%}", errors)
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def _self_check(check: SelfCheck | None) -> str:
    if check is None:
        return '<h2>Client self-check</h2><p class="note">Not run (--no-self-check).</p>'
    rows = [p for p in (check.capacity, check.at_load) if p is not None]
    head = "<tr><th>check</th><th>load</th><th>req/s</th><th>out tok/s</th>" + "".join(
        f"<th>{name} p50</th><th>{name} p99</th>" for name in ("TTFT", "ITL", "send lag")) + "</tr>"
    body = []
    for p, what in zip(rows, ("capacity (as fast as it goes)", "overhead at the run's rate"), strict=False):
        cells = "".join(f"<td>{_ms(st.p50)}</td><td>{_ms(st.p99)}</td>" if (st := p.stats.get(n)) else "<td>-</td>" * 2
                        for n in ("ttft", "itl", "send_lag"))
        body.append(f"<tr><td>{what}</td><td>{p.x_name}={p.x:.4g}</td><td>{p.request_throughput:.1f}</td>"
                    f"<td>{p.output_token_throughput:.0f}</td>{cells}</tr>")
    return (f"<h2>Client self-check</h2><p>Against a built-in zero-latency target, after the run (latencies in ms). "
            f"The run reached {check.needed_rate:.1f} req/s.</p><table>{head}{''.join(body)}</table>"
            "<p class=\"note\">Capacity far above the run's rate means the client did not queue; the overhead row is "
            "what this client and the loopback add to every latency at that rate.</p>")


def _engine_metrics(points: Sequence[PointSummary]) -> str:
    scraped = [p for p in points if p.metrics_delta]
    if not scraped:
        return ""
    out = ["<h2>Target /metrics (after - before)</h2>"]
    for p in scraped:
        assert p.metrics_delta is not None
        rows = "".join(f"<tr><td>{escape(k)}</td><td>{v:g}</td></tr>" for k, v in list(p.metrics_delta.items())[:60])
        out.append(f"<h3>{escape(_label(p, True))}</h3><table><tr><th>series</th><th>delta</th></tr>{rows}</table>")
    return "".join(out)


def _order(spec: BenchSpec) -> str:
    if spec.interleave:
        return "interleaved request by request"
    return "concurrently" if spec.concurrent_targets else "in alternating order"


def _paired(paired: Sequence[PairedDiff]) -> str:
    if not paired:
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in PAIRED_HEAD)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in paired_rows(paired))
    return ("<h2>Added latency, request by request (ms)</h2><p>Interleaved run: every request went to each target in "
            "turn, so each pair met the engine at the same moment. <i>p50 added</i>: the target's p50 minus the "
            "first target's over the requests both completed; <i>median diff</i>: the median of the per-request "
            f"differences, with its distribution-free 95% interval.</p><table><tr>{head}</tr>{body}</table>")


def render(result: BenchResult) -> str:
    spec = result.spec
    slo = ", ".join(f"{n} <= {v * 1000:g} ms" for n, v in (("TTFT", spec.slo.ttft_s), ("TPOT", spec.slo.tpot_s),
                                                           ("E2E", spec.slo.e2e_s)) if v is not None) or "none"
    targets = "".join(f"<li><b>{escape(t.name)}</b>: <code>{escape(t.base_url)}</code> model "
                      f"<code>{escape(t.model)}</code></li>" for t in spec.targets)
    body = [
        f"<h1>lockgate bench: {escape(' vs '.join(t.name for t in spec.targets))}</h1>",
        f'<p class="note">{escape(result.created)} · dataset {escape(spec.dataset.kind)} (seed {spec.dataset.seed}) · '
        f"schedule seed {spec.seed} · {spec.rounds} round(s), targets "
        f"{_order(spec)} · endpoint {spec.endpoint}"
        f" · definitions: docs/bench.md</p><ul>{targets}</ul>",
        _paired(result.paired), _throughput(result.points, slo), _cdfs(result.points), _sweeps(result.points),
        _percentiles(result.points), _self_check(result.self_check), _engine_metrics(result.points),
    ]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>lockgate bench report</title>"
            "<link rel=\"icon\" href=\"data:,\">"
            f"<style>{_CSS}</style></head><body>{''.join(body)}<script>{_JS}</script></body></html>\n")
