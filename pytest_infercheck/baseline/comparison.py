"""One check's figures against its baseline entry: the typed comparison the verdict reads.

``compare_with_entry`` runs where the item ran (an xdist worker or the only process), and again in
``infercheck gate`` against the gate's baseline; it returns the typed comparison, which travels on
the result.  What the comparison means (a failure, an undecided figure) is judge/verdict.py's.
Statistics are regression.py's; this module only decides which figures to compare.
"""

from __future__ import annotations

from typing import Any

from ..measure.regression import compare_accuracy, compare_latency, run_noise
from ..measure.results import BaselineComparison, CheckResult
from .key import EntryIdentity
from .store import BaselineStore, subsample


def accuracy_figures(result: CheckResult) -> dict[str, dict[str, float]]:
    if result.accuracy is None:
        return {}
    return {output.name: {"max_abs": output.max_abs, "mean_abs": output.mean_abs} for output in result.accuracy.outputs}


def identity_of(result: CheckResult) -> EntryIdentity:
    return EntryIdentity(result.nodeid, result.check_name, result.spec_id)


def compare_with_entry(result: CheckResult, store: BaselineStore, settings: Any) -> BaselineComparison:
    """``result`` (its ``machine`` set) against its entry in ``store``, under ``settings``' allowances
    (max_regression, accuracy_factor, accuracy_floor): the typed comparison, which judge/verdict.py reads."""
    lookup = store.lookup(identity_of(result), result.machine or {})
    comparison = BaselineComparison(lookup.status, str(store.path), differences=lookup.differences)
    if lookup.entry is None:
        return comparison
    entry = lookup.entry
    comparison.recorded = entry.recorded
    comparison.model_changed = bool(entry.model_hash and entry.model_hash != result.model_hash)
    if result.latency is not None and entry.latency is not None:
        noise = run_noise([run["p50_ms"] for run in entry.history], result.latency.block_medians_ms,
                          entry.latency.get("block_medians_ms") or [], result.latency.probe_ms,
                          entry.latency.get("probe_ms"),
                          probe_spread=max(result.latency.probe_spread, float(entry.latency.get("probe_spread") or 0)))
        latency = compare_latency(subsample(result.latency.samples_ms), entry.samples_ms,
                                  max_regression=settings.max_regression, noise=noise)
        comparison.latency = latency
        comparison.baseline_samples_ms = entry.samples_ms
        if latency.verdict == "regression":
            comparison.regressions.append(f"latency {latency.describe()}")
        elif latency.verdict == "improvement":
            comparison.improvements.append(f"latency {latency.describe()}")
    comparison.accuracy = compare_accuracy(accuracy_figures(result), entry.accuracy,
                                           factor=settings.accuracy_factor, floor=settings.accuracy_floor)
    comparison.regressions += [f"accuracy {change.describe()}" for change in comparison.accuracy if change.regressed]
    return comparison


def regressed_kinds(comparison: BaselineComparison) -> list[str]:
    """``["accuracy", "latency"]``: which kinds of figure regressed."""
    kinds = []
    if any(change.regressed for change in comparison.accuracy):
        kinds.append("accuracy")
    if comparison.latency is not None and comparison.latency.verdict == "regression":
        kinds.append("latency")
    return kinds

