"""``--infer-html=PATH``: one self-contained HTML file a reviewer can open from a CI artifact.

What it holds, top to bottom: the counts; a matrix of models x engine specs coloured by outcome
(regressions marked); per engine its figures, its failure reasons, its comparison with the
baseline and its latency distribution (histogram and empirical CDF, the baseline's beside this
run's) drawn by matplotlib as inline SVG; and the environment the figures were measured in.
No scripts, no external files: it opens the same from a laptop, a CI artifact or an e-mail.
"""

from __future__ import annotations

from typing import AbstractSet

import hashlib
import html
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from ..backends.environment import fingerprint
from ..baseline.summary import UNMATCHED_WHY, entry_names, not_compared_reason, status_cell, unmatched_heading
from ..measure.results import BaselineStatus
from ..measure.results import CheckResult, FailedBeforeCheck, check_label, several_checks
from .table import item_name, outcome_cell, test_name

OUTCOME_CLASSES = ("passed", "failed", "skipped", "xfailed", "xpassed")
PLOT_POINTS = 500  # samples drawn per curve: enough for the shape, small enough to keep the file light

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d232a; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 0 0 6px; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; margin: 6px 0; } td, th { border: 1px solid #d0d7de; padding: 3px 8px; }
th { background: #f6f8fa; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.matrix td { text-align: center; }
/* ten engines fit a 1280 px window: names wrap at their hyphens, long test names anywhere */
.matrix td, .matrix th { font-size: 13px; max-width: 104px; overflow-wrap: anywhere; }
.matrix tr > th:first-child { max-width: 220px; }
.passed { background: #d8f3dc; } .failed { background: #ffccd0; } .skipped { background: #eceff1; color: #57606a; }
.xfailed { background: #fff3bf; } .xpassed { background: #ffe8cc; }
.regression { background: #ff8a95; font-weight: 700; } .improved { background: #c5e4ff; } .undecided { background: #fff3b0; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 12px; margin: 12px 0; }
.card .row { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
pre { background: #f6f8fa; padding: 8px; white-space: pre-wrap; margin: 6px 0; }
.note { color: #57606a; } .warn { color: #9a6700; font-weight: 600; } .badge { padding: 1px 6px; border-radius: 4px; }
svg { max-width: 100%; height: auto; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Optional[float], spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def cell_class(result: CheckResult) -> str:
    comparison = result.baseline
    if comparison is not None and comparison.regressions:
        return "regression"
    if comparison is not None and comparison.improvements and result.outcome == "passed":
        return "improved"
    return result.outcome if result.outcome in OUTCOME_CLASSES else "failed"


def row_label(result: CheckResult, model_names: dict[str, str]) -> str:
    """``test (check)``: one matrix row per check of a test (a test may check several models, or one
    model on several inputs); the check is named after its model unless ``name=`` was given."""
    test = test_name(result.nodeid)
    check = result.check_name or model_names.get(test)  # a saved report from before checks had names
    return f"{test} ({check})" if check else test


def _model_names(results: Sequence[CheckResult]) -> dict[str, str]:
    """Test name -> its model's name, for results that carry no check name."""
    names: dict[str, str] = {}
    for result in results:
        if result.model_name:
            names.setdefault(test_name(result.nodeid), result.model_name)
    return names


def _anchor(result: CheckResult) -> str:
    """Readable, and unique: ids that differ only in punctuation (``a/b`` and ``a-b``) read alike."""
    readable = "".join(ch if ch.isalnum() else "-" for ch in f"{test_name(result.nodeid)}-{result.spec_id}")
    exact = hashlib.sha256(f"{result.nodeid}\0{result.spec_id}\0{result.check_name}".encode()).hexdigest()[:10]
    return f"r-{readable}-{exact}"


def engine_order(result: CheckResult) -> tuple[int, int, bool, str]:
    """The matrix's columns in one fixed order whatever ran first: backend as the registry lists them
    (eager first), then precision (fp32, fp16, bf16, int8, fp8), then without before with a CUDA graph."""
    from ..backends import names
    from ..core.spec import PRECISIONS

    backends, precision = names(), str(result.precision)
    return (backends.index(result.backend) if result.backend in backends else len(backends),
            PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS), bool(result.cuda_graphs),
            result.spec_id)


def matrix(results: Sequence[CheckResult]) -> str:
    """Checks down (a test's checks each on a row of their own), engine specs across; each cell links
    to its engine's card."""
    names = _model_names(results)
    labels = {id(result): row_label(result, names) for result in results}
    models = list(dict.fromkeys(labels[id(r)] for r in results))
    first = {result.spec_id: result for result in reversed(results)}  # one result of each engine
    specs = sorted(first, key=lambda spec: engine_order(first[spec]))
    by_cell: dict[tuple[str, str], list[CheckResult]] = {}
    for result in results:
        by_cell.setdefault((labels[id(result)], result.spec_id), []).append(result)
    head = "<tr><th>model \\ engine</th>" + "".join(f"<th>{_e(spec)}</th>" for spec in specs) + "</tr>"
    body = []
    for model in models:
        cells = []
        for spec in specs:
            found = by_cell.get((model, spec), [])
            if not found:
                cells.append("<td class='note'>-</td>")
                continue
            worst = max(found, key=lambda r: ("passed", "improved", "skipped", "xfailed", "xpassed", "failed",
                                              "regression").index(cell_class(r)))
            verdict = status_cell(worst)
            warn = " class='warn'" if verdict in ("missing", "other machine") else ""  # not gated: say so
            extra = "" if verdict == "-" else f"<br><small{warn}>{_e(verdict)}</small>"
            cells.append(f"<td class='{cell_class(worst)}'><a href='#{_anchor(worst)}'>{_e(outcome_cell(worst))}</a>"
                         f"{extra}</td>")
        body.append(f"<tr><th>{_e(model)}</th>{''.join(cells)}</tr>")
    return f"<table class='matrix'>{head}{''.join(body)}</table>"


def latency_table(result: CheckResult) -> str:
    lat = result.latency
    if lat is None:
        return ""
    base = result.baseline.latency if result.baseline else None
    rows = [*((f"{name.removesuffix('_ms')} ms", value) for name, value in lat.figures().items()),
            ("mean ms", lat.mean_ms), ("std ms", lat.std_ms), ("samples", lat.count)]
    head = "<tr><th>latency</th><th>this run</th>" + ("<th>baseline</th>" if base else "") + "</tr>"
    lines = []
    for label, value in rows:
        baseline_cell = ""
        if base and label == "p50 ms":
            baseline_cell = f"<td class='num'>{_num(base.baseline_p50_ms, '.4g')}</td>"
        elif base and label == "samples":
            baseline_cell = f"<td class='num'>{base.n_baseline} kept</td>"
        elif base:
            baseline_cell = "<td></td>"
        lines.append(f"<tr><td>{label}</td><td class='num'>{_num(value, '.4g')}</td>{baseline_cell}</tr>")
    lines += kernel_rows(result)
    speed = f"<tr><td>speedup vs eager</td><td class='num'>{_num(result.speedup, '.2f')}</td></tr>" if result.speedup else ""
    kernel = f"<div class='note'>{_e(lat.kernel.describe())}</div>" if lat.kernel is not None else ""
    return f"<table>{head}{''.join(lines)}{speed}</table><div class='note'>timer: {_e(lat.timer)}</div>{kernel}"


def kernel_rows(result: CheckResult) -> list[str]:
    """A GPU engine's kernel time beside its wall p50: the kernel p50 (and the baseline's) and the busy fraction."""
    kernel = result.latency.kernel if result.latency is not None else None
    if kernel is None:
        return []
    base = result.baseline.kernel if result.baseline else None
    baseline_cell = (f"<td class='num'>{_num(base.baseline_p50_ms, '.4g')}</td>" if base else
                     "<td></td>" if result.baseline and result.baseline.latency else "")
    empty = "<td></td>" if baseline_cell else ""
    return [f"<tr><td>kernel p50 ms</td><td class='num'>{_num(kernel.p50_ms, '.4g')}</td>{baseline_cell}</tr>",
            f"<tr><td>GPU busy</td><td class='num'>{_num(kernel.busy_fraction * 100, '.0f')}%</td>{empty}</tr>"]


def accuracy_table(result: CheckResult) -> str:
    if result.accuracy is None:
        return ""
    old = {(c.output, c.metric): c for c in (result.baseline.accuracy if result.baseline else [])}
    head = ("<tr><th>output</th><th>max abs</th><th>max rel</th><th>mean abs</th><th>cosine</th><th>mismatch</th>"
            + ("<th>baseline max abs</th><th>baseline mean abs</th>" if old else "") + "</tr>")
    lines = []
    for out in result.accuracy.outputs:
        cls = "" if out.passed else " class='failed'"
        cells = [_num(out.max_abs, ".3g"), _num(out.max_rel, ".3g"), _num(out.mean_abs, ".3g"),
                 _num(out.cosine, ".6f"), f"{out.mismatch_ratio:.2%}"]
        if old:
            for metric in ("max_abs", "mean_abs"):
                change = old.get((out.name, metric))
                mark = " class='num regression'" if change and change.regressed else " class='num'"
                cells.append(f"<span{mark}>{_num(change.baseline, '.3g')}</span>" if change else "-")
        lines.append(f"<tr{cls}><td>{_e(out.name)}</td>" + "".join(f"<td class='num'>{c}</td>" for c in cells) + "</tr>")
    structure = f"<pre>{_e(result.accuracy.structure_error)}</pre>" if result.accuracy.structure_error else ""
    return f"<table>{head}{''.join(lines)}</table>{structure}"


def latency_plot(result: CheckResult) -> str:
    """Histogram and empirical CDF of this run's samples, the baseline's beside them: inline SVG."""
    if result.latency is None or not result.latency.samples_ms:
        return ""
    try:
        from matplotlib import rc_context
        from matplotlib.figure import Figure
    except ImportError:
        return "<p class='note'>install matplotlib (pip install 'pytest-infercheck[html]') for latency plots</p>"
    import numpy as np

    from ..baseline.store import subsample

    curves = [("this run", subsample(result.latency.samples_ms, PLOT_POINTS), "#0969da")]
    baseline_samples = result.baseline.baseline_samples_ms if result.baseline else None
    if baseline_samples:
        curves.insert(0, ("baseline", subsample(baseline_samples, PLOT_POINTS), "#8c959f"))
    every = np.concatenate([np.asarray(s) for _, s, _ in curves])
    # The histogram shows the body up to the 95th percentile (a few stalls would squash it into one
    # bar); the CDF on a log axis shows everything, tails included.
    low, high = float(every.min()), float(np.percentile(every, 95))
    bins = np.linspace(low, high if high > low else low * 1.01 + 1e-9, 40)
    with rc_context({"svg.fonttype": "none", "font.size": 8}):
        figure = Figure(figsize=(7.2, 2.4))
        hist, cdf = figure.subplots(1, 2)
        for label, samples, colour in curves:
            values = np.asarray(samples)
            hist.hist(values[values <= bins[-1]], bins=bins, alpha=0.55, color=colour, label=label)
            ordered = np.sort(values)
            cdf.step(ordered, np.arange(1, ordered.size + 1) / ordered.size, where="post", color=colour, label=label)
        hist.set_xlabel("latency ms (up to p95)")
        hist.set_ylabel("samples")
        cdf.set_xlabel("latency ms (log)")
        cdf.set_ylabel("fraction at or below")
        _log_axis(cdf, float(every.min()), float(every.max()))
        cdf.legend(loc="lower right", frameon=False)
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prologue: the SVG sits inside HTML


def _log_axis(axes: Any, low: float, high: float) -> None:
    """Log scale with plain numbers as labels; within one decade the in-between ticks are labelled too."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(plain)
    axes.xaxis.set_minor_formatter(plain if high < 10 * low else NullFormatter())


def card(result: CheckResult, several: AbstractSet[str] = frozenset()) -> str:
    """``several``: the items that ran several checks, whose titles say which check they are."""
    status = status_cell(result)
    badge = f" <span class='badge {cell_class(result)}'>{_e(result.outcome)}</span>"
    gate = f" <span class='badge {cell_class(result)}'>baseline: {_e(status)}</span>" if status != "-" else ""
    parts = [f"<div class='card' id='{_anchor(result)}'><h3>{_e(item_name(result.nodeid, result.spec_id))}"
             + _e(check_label(result, several)) + f"{badge}{gate}</h3>",
             f"<div class='note'>{_e(result.model_name or 'model not built')} on {_e(result.device or '?')}"
             + (f"; budget {_e(result.budget)}" if result.budget else "")
             + (f"; recipe: {_e(result.recipe.describe())}" if result.recipe is not None else "")
             + (f"; build {result.build_seconds:.1f} s, cache {_e(result.cache_summary)}" if result.build_seconds is not None else "")
             + "</div>"]
    if result.outcome != "passed" and (result.failures or result.message):
        parts.append(f"<pre>{_e(chr(10).join(map(str, result.failures)) or result.message)}</pre>")
    parts += [f"<div class='undecided'>undecided: {_e(note)}</div>" for note in result.undecided]
    parts += baseline_notes(result)
    parts.append(f"<div class='row'><div>{latency_table(result)}</div><div>{accuracy_table(result)}</div></div>")
    parts.append(latency_plot(result))
    return "".join(parts) + "</div>"


def baseline_notes(result: CheckResult) -> list[str]:
    """The card's lines about the baseline: regressions, improvements, the ratio, or why not compared."""
    comparison = result.baseline
    if comparison is None:
        return []
    failed = "\n".join(map(str, result.failures))
    parts = [f"<div class='regression'>regression: {_e(line)}</div>"
             for line in comparison.regression_lines if line not in failed]  # e.g. while updating: not a failure
    parts += [f"<div class='improved'>improved: {_e(line)}</div>" for line in comparison.improvements]
    latency, figure = comparison.judged, comparison.judged_figure  # kernel time for a launch-bound engine
    if latency is not None and latency.ratio != latency.ratio:  # NaN: too few samples
        parts.append(f"<div class='note'>vs baseline: no {figure} verdict ({latency.n_baseline} vs "
                     f"{latency.n_current} samples: too few)</div>")
    elif latency is not None and not comparison.regressions and not comparison.improvements:
        parts.append(f"<div class='note'>vs baseline recorded {_e(comparison.recorded or '?')}: "
                     f"{figure} median {latency.ratio - 1:+.1%}, {_e(latency.verdict)} "
                     f"(allowed +{latency.max_regression:.1%} when significant)</div>")
    wall = comparison.latency
    if comparison.judged_on == "kernel" and wall is not None and wall.ratio == wall.ratio:
        why = ("dense GPU engine whose wall time could not decide: judged on GPU kernel time"
               if comparison.corroboration == "kernels decided" else "launch-bound: judged on GPU kernel time")
        parts.append(f"<div class='note'>{why}; wall median {wall.ratio - 1:+.1%} ({_e(wall.verdict)} by the "
                     "wall-time allowance) is information</div>")
    elif comparison.corroboration == "kernels did not move" and wall is not None and comparison.kernel is not None:
        parts.append(f"<div class='note'>wall median {wall.ratio - 1:+.1%} ({_e(wall.verdict)} by the wall-time "
                     f"allowance), GPU kernel time {comparison.kernel.ratio - 1:+.1%} ({_e(comparison.kernel.verdict)}): "
                     "the host's share moved, so undecided</div>")
    if comparison.status != BaselineStatus.FOUND:
        parts.append(f"<div class='note'>not compared: {_e(not_compared_reason(comparison))}</div>")
    elif comparison.differences:
        parts.append(f"<div class='note'>compared with an entry of other library versions: "
                     f"{_e('; '.join(comparison.differences))}</div>")
    return parts


def environment_table(results: Sequence[CheckResult], env: Optional[dict[str, Any]] = None) -> str:
    """The environment the figures were measured in: this process's, or a saved report's (``env``)."""
    env = env if env is not None else fingerprint()
    rows = [(name, env.get(name, "-")) for name in ("python", "platform", "cpu")]
    gpus = {str(r.machine.get("gpu")) for r in results if r.machine and r.machine.get("gpu")}
    gpu = env.get("gpu") or (", ".join(sorted(gpus)) if gpus else None)
    rows.append(("gpu", gpu or "none seen"))
    rows += [(name, version) for name, version in sorted((env.get("libraries") or {}).items())]
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def render_html(results: Sequence[CheckResult], environment: Optional[dict[str, Any]] = None,
                failed_before_check: Sequence[FailedBeforeCheck] = (), unmatched: Sequence[Any] = ()) -> str:
    """``failed_before_check``: the run's tests that failed before any check made a result (no card shows
    them, and a page of green cards must not read as a green run); ``unmatched``: the baseline's entries of
    this machine that no result matched (baseline/summary.unmatched_entries), listed after the cards."""
    from .markdown import headline

    ordered = sorted(results, key=lambda r: (r.nodeid, r.spec_id))
    several = several_checks(ordered)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    title = f"infercheck: {headline(ordered).replace('**', '')}"
    if failed_before_check:
        title += f", {len(failed_before_check)} failed before any check"
    failed = ([f"<h2>Failed before any check ({len(failed_before_check)})</h2><ul>"]
              + [f"<li class='regression'>{_e(item.nodeid)} ({_e(item.when)}): {_e(item.message)}</li>"
                 for item in failed_before_check] + ["</ul>"] if failed_before_check else [])
    body = [f"<h1>{_e(title)}</h1><div class='note'>{_e(created)} UTC, {len(ordered)} engine checks</div>",
            *failed,
            "<h2>Models x engines</h2>", matrix(ordered),
            "<h2>Engines</h2>", *(card(result, several) for result in ordered),
            *unmatched_section(unmatched),
            "<h2>Environment</h2>", environment_table(ordered, environment)]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def unmatched_section(unmatched: Sequence[Any]) -> list[str]:
    """The baseline entries no result matched: a test not selected, or renamed or deleted since its blessing."""
    if not unmatched:
        return []
    return [f"<h2>{_e(unmatched_heading(len(unmatched)).capitalize())}</h2>"
            f"<div class='note'>{_e(UNMATCHED_WHY.capitalize())}.</div><ul>",
            *(f"<li>{_e(name)}</li>" for name in entry_names(unmatched)), "</ul>"]


def write_html(path: Path, results: Sequence[CheckResult], environment: Optional[dict[str, Any]] = None,
               failed_before_check: Sequence[FailedBeforeCheck] = (), unmatched: Sequence[Any] = ()) -> None:
    """``environment``: a saved report's fingerprint (``infercheck report``/``gate``); this process's by default."""
    from ..core.files import write_atomic

    write_atomic(Path(path), render_html(results, environment, failed_before_check, unmatched))
