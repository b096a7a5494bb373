"""One check's figures against its baseline entry: the typed comparison the verdict reads.

``compare_with_entry`` runs where the item ran (an xdist worker or the only process), and again in
``infercheck gate`` against the gate's baseline; it returns the typed comparison, which travels on
the result.  What the comparison means (a failure, an undecided figure) is judge/verdict.py's.
Statistics are regression.py's; this module only decides which figures to compare.
"""

from __future__ import annotations

from typing import Any, Optional

from ..measure.regression import LatencyComparison, compare_accuracy, compare_latency, run_noise
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
    if lookup.entry is None:
        return BaselineComparison(lookup.status, str(store.path), differences=tuple(lookup.differences))
    entry = lookup.entry
    latency: Optional[LatencyComparison] = None
    regressions: list[str] = []
    improvements: list[str] = []
    if result.latency is not None and entry.latency is not None:
        noise = run_noise([run["p50_ms"] for run in entry.history], result.latency.block_medians_ms,
                          entry.latency.get("block_medians_ms") or [], result.latency.probe_ms,
                          entry.latency.get("probe_ms"),
                          probe_spread=max(result.latency.probe_spread, float(entry.latency.get("probe_spread") or 0)))
        latency = compare_latency(subsample(result.latency.samples_ms), entry.samples_ms,
                                  max_regression=settings.max_regression, noise=noise)
        if latency.verdict == "regression":
            regressions.append(f"latency {latency.describe()}")
        elif latency.verdict == "improvement":
            improvements.append(f"latency {latency.describe()}")
    accuracy = compare_accuracy(accuracy_figures(result), entry.accuracy,
                                factor=settings.accuracy_factor, floor=settings.accuracy_floor)
    regressions += [f"accuracy {change.describe()}" for change in accuracy if change.regressed]
    return BaselineComparison(lookup.status, str(store.path), differences=tuple(lookup.differences),
                              regressions=tuple(regressions), improvements=tuple(improvements), recorded=entry.recorded,
                              model_changed=bool(entry.model_hash and entry.model_hash != result.model_hash),
                              latency=latency, accuracy=tuple(accuracy),
                              baseline_samples_ms=tuple(entry.samples_ms) if latency is not None else ())


def regressed_kinds(comparison: BaselineComparison) -> list[str]:
    """``["accuracy", "latency"]``: which kinds of figure regressed."""
    kinds = []
    if any(change.regressed for change in comparison.accuracy):
        kinds.append("accuracy")
    if comparison.latency is not None and comparison.latency.verdict == "regression":
        kinds.append("latency")
    return kinds

