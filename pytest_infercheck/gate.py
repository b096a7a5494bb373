"""The CI gate: one item's result against its baseline entry, and what the run as a whole found.

``judge`` runs where the item ran (an xdist worker or the only process), after the accuracy and
budget verdicts; it stores the comparison in ``result.extra["baseline"]`` (so it travels to the
controller with the result) and returns the failure lines that make the item fail.  The other
functions read those records back on the controller for the terminal summary, the JUnit
properties and the Markdown and HTML reports.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .baseline import BaselineStore, UpdateSummary, machine_key, subsample
from .regression import compare_accuracy, compare_latency
from .results import CheckResult, round_figure

UPDATE_HINT = "run with --infer-baseline-update to record it"


def accuracy_figures(result: CheckResult) -> dict[str, dict[str, float]]:
    if result.accuracy is None:
        return {}
    return {output.name: {"max_abs": output.max_abs, "mean_abs": output.mean_abs} for output in result.accuracy.outputs}


def judge(result: CheckResult, store: BaselineStore, settings: Any) -> list[str]:
    """Compare ``result`` with its entry; record the comparison; return failure lines (none while updating)."""
    machine = machine_key(result.device, backend=result.backend)
    result.extra["machine"] = machine
    lookup = store.lookup(result.nodeid, result.spec_id, machine)
    record: dict[str, Any] = {"status": lookup.status, "file": str(store.path), "differences": lookup.differences,
                              "regressions": [], "improvements": []}
    result.extra["baseline"] = record
    updating = bool(settings.baseline_update)
    if lookup.entry is None:
        if settings.baseline_strict and not updating:
            return [f"baseline: {not_compared_reason(record)} (--infer-baseline-strict makes this a failure)"]
        return []
    entry = lookup.entry
    record["recorded"] = entry.recorded
    record["model_changed"] = bool(entry.model_hash and entry.model_hash != result.model_hash)
    if result.latency is not None and entry.latency is not None:
        latency = compare_latency(subsample(result.latency.samples_ms), entry.samples_ms,
                                  max_regression=settings.max_regression)
        record["latency"] = latency.to_dict()
        record["samples_ms"] = entry.samples_ms  # the baseline's distribution, for the HTML report
        if latency.verdict == "regression":
            record["regressions"].append(f"latency {latency.describe()}")
        elif latency.verdict == "improvement":
            record["improvements"].append(f"latency {latency.describe()}")
    changes = compare_accuracy(accuracy_figures(result), entry.accuracy,
                               factor=settings.accuracy_factor, floor=settings.accuracy_floor)
    record["accuracy"] = [change.to_dict() for change in changes]
    record["regressions"] += [f"accuracy {change.describe()}" for change in changes if change.regressed]
    if updating:
        return []
    suffix = " (the model changed since the baseline was recorded)" if record["model_changed"] else ""
    return [f"regression: {line}{suffix}" for line in record["regressions"]]


def not_compared_reason(record: dict[str, Any]) -> str:
    if record["status"] == "fingerprint-mismatch":
        return (f"the entry in {record['file']} was recorded on another machine or software stack "
                f"({'; '.join(record['differences'])}), so it was not applied")
    return f"no entry for this item in {record['file']}; {UPDATE_HINT}"


# -- reading the records back ---------------------------------------------------------------------


def record_of(result: CheckResult) -> Optional[dict[str, Any]]:
    return result.extra.get("baseline")


def status_cell(result: CheckResult) -> str:
    """A short verdict for a table cell: ``+3.1% ok``, ``REGRESSION +10.2%``, ``missing``, ..."""
    record = record_of(result)
    if record is None:
        return "-"
    if record["status"] == "missing":
        return "missing"
    if record["status"] == "fingerprint-mismatch":
        return "other machine"
    latency = record.get("latency")
    change = f"{latency['ratio'] - 1:+.1%}" if latency and latency["ratio"] is not None else ""
    if record["regressions"]:
        kinds = " + ".join(sorted({line.split(" ", 1)[0] for line in record["regressions"]}))
        return f"REGRESSION {kinds} {change}".rstrip()
    if record["improvements"]:
        return f"improved {change}"
    if latency and latency["ratio"] is None:
        return "no latency verdict"
    return f"{change} ok".strip()


def baseline_properties(result: CheckResult) -> list[tuple[str, Any]]:
    """The baseline's side of every compared figure, for JUnit XML."""
    record = record_of(result)
    if record is None:
        return []
    prefix = f"infercheck.{result.spec_id}.baseline"
    props: list[tuple[str, Any]] = [(f"{prefix}.status", record["status"]), (f"{prefix}.verdict", status_cell(result))]
    latency = record.get("latency")
    if latency:
        for name in ("baseline_p50_ms", "current_p50_ms", "ratio", "ci_low", "ci_high", "p_slower", "p_faster"):
            props.append((f"{prefix}.latency.{name}", round_figure(latency[name])))
        props.append((f"{prefix}.latency.verdict", latency["verdict"]))
    for change in record.get("accuracy", []):
        props.append((f"{prefix}.{change['output']}.{change['metric']}", round_figure(change["baseline"])))
    for line in record["regressions"]:
        props.append((f"{prefix}.regression", line))
    return props


def summary_lines(results: Sequence[CheckResult], path: Optional[str], update: Optional[UpdateSummary]) -> list[str]:
    """The terminal summary's baseline section: counts, then every item that needs a reader's eye."""
    if not path:
        return []
    records = [(result, record_of(result)) for result in results]
    compared = [(r, rec) for r, rec in records if rec and rec["status"] == "found"]
    missing = [r for r, rec in records if rec and rec["status"] == "missing"]
    foreign = [(r, rec) for r, rec in records if rec and rec["status"] == "fingerprint-mismatch"]
    regressed = [(r, rec) for r, rec in compared if rec["regressions"]]
    improved = [(r, rec) for r, rec in compared if rec["improvements"]]
    lines = [f"baseline {path}: {len(compared)} compared, {len(regressed)} regressed, {len(improved)} improved, "
             f"{len(missing)} missing, {len(foreign)} not applied (other machine)"]
    lines += [f"  REGRESSION {r.nodeid}: {line}" for r, rec in regressed for line in rec["regressions"]]
    lines += [f"  improved   {r.nodeid}: {line}" for r, rec in improved for line in rec["improvements"]]
    if foreign:
        lines.append(f"  FINGERPRINT DIFFERS: {len(foreign)} entr{'y was' if len(foreign) == 1 else 'ies were'} "
                     f"recorded on another machine or software stack and NOT applied:")
        lines += [f"    {r.nodeid}: {'; '.join(rec['differences'])}" for r, rec in foreign]
    if missing and update is None:  # while updating, the missing entries are being written
        lines.append(f"  missing (no entry; {UPDATE_HINT}):")
        lines += [f"    {r.nodeid}" for r in missing]
    if update is not None:
        lines.append(f"baseline updated: {len(update.written)} entries written, {update.kept} kept, "
                     f"{len(update.not_written)} not written -> {update.path}")
        lines += [f"  not written: {line}" for line in update.not_written]
    return lines
