"""The CI gate's per-item verdict: one check's result against its baseline entry.

``judge`` runs where the item ran (an xdist worker or the only process), after the accuracy and
budget verdicts; it returns the typed comparison (which travels to the controller on the result)
and the failure lines that make the item fail.  Statistics are regression.py's; this module only
decides which figures to compare and what the outcome means.
"""

from __future__ import annotations

from typing import Any

from ..regression import compare_accuracy, compare_latency
from ..results import BaselineComparison, CheckResult, Failure
from ..spec import Stage
from .key import EntryIdentity
from .store import BaselineStore, subsample


def accuracy_figures(result: CheckResult) -> dict[str, dict[str, float]]:
    if result.accuracy is None:
        return {}
    return {output.name: {"max_abs": output.max_abs, "mean_abs": output.mean_abs} for output in result.accuracy.outputs}


def identity_of(result: CheckResult) -> EntryIdentity:
    return EntryIdentity(result.nodeid, result.check_name, result.spec_id)


def judge(result: CheckResult, store: BaselineStore, settings: Any) -> tuple[BaselineComparison, list[Failure]]:
    """Compare ``result`` (its ``machine`` set) with its entry; the comparison and the failure lines.

    No failure lines while the baseline is being updated: the run is blessing what it measures.
    """
    lookup = store.lookup(identity_of(result), result.machine or {})
    comparison = BaselineComparison(lookup.status, str(store.path), differences=lookup.differences)
    updating = bool(settings.baseline_update)
    if lookup.entry is None:
        if settings.baseline_strict and not updating:
            from .summary import not_compared_reason

            return comparison, [Failure(Stage.BASELINE, f"{not_compared_reason(comparison)} "
                                               "(--infer-baseline-strict makes this a failure)")]
        return comparison, []
    entry = lookup.entry
    comparison.recorded = entry.recorded
    comparison.model_changed = bool(entry.model_hash and entry.model_hash != result.model_hash)
    if result.latency is not None and entry.latency is not None:
        latency = compare_latency(subsample(result.latency.samples_ms), entry.samples_ms,
                                  max_regression=settings.max_regression)
        comparison.latency = latency
        comparison.baseline_samples_ms = entry.samples_ms
        if latency.verdict == "regression":
            comparison.regressions.append(f"latency {latency.describe()}")
        elif latency.verdict == "improvement":
            comparison.improvements.append(f"latency {latency.describe()}")
    comparison.accuracy = compare_accuracy(accuracy_figures(result), entry.accuracy,
                                           factor=settings.accuracy_factor, floor=settings.accuracy_floor)
    comparison.regressions += [f"accuracy {change.describe()}" for change in comparison.accuracy if change.regressed]
    if updating:
        return comparison, []
    suffix = " (the model changed since the baseline was recorded)" if comparison.model_changed else ""
    return comparison, [Failure(Stage.REGRESSION, f"{line}{suffix}") for line in comparison.regressions]


def regressed_kinds(comparison: BaselineComparison) -> list[str]:
    """``["accuracy", "latency"]``: which kinds of figure regressed."""
    kinds = []
    if any(change.regressed for change in comparison.accuracy):
        kinds.append("accuracy")
    if comparison.latency is not None and comparison.latency.verdict == "regression":
        kinds.append("latency")
    return kinds

