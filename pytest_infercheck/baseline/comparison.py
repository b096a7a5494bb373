"""One check's figures against its baseline entry: the typed comparison the verdict reads.

``compare_with_entry`` runs where the item ran (an xdist worker or the only process), and again in
``infercheck gate`` against the gate's baseline; it returns the typed comparison, which travels on
the result.  What the comparison means (a failure, an undecided figure) is judge/verdict.py's.
Statistics are regression.py's; this module only decides which figures to compare.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from ..measure.regression import (CONTENTION_AMPLIFICATION, LatencyComparison, compare_accuracy, compare_latency,
                                  run_noise)
from ..measure.results import BaselineComparison, CheckResult, LatencyStats, compared_across
from .key import EntryIdentity
from .store import BaselineStore, Entry, subsample

KERNEL_OPTION = "--infer-kernel-tolerance"
WALL_OPTION = "--infer-max-regression"


def accuracy_figures(result: CheckResult) -> dict[str, dict[str, float]]:
    if result.accuracy is None:
        return {}
    return {output.name: {"max_abs": output.max_abs, "mean_abs": output.mean_abs} for output in result.accuracy.outputs}


def identity_of(result: CheckResult) -> EntryIdentity:
    return EntryIdentity(result.nodeid, result.check_name, result.spec_id)


def compare_with_entry(result: CheckResult, store: BaselineStore, settings: Any, *,
                       across_versions: bool = False) -> BaselineComparison:
    """``result`` (its ``machine`` set) against its entry in ``store``, under ``settings``' allowances
    (max_regression, kernel_tolerance, accuracy_factor, accuracy_floor): the typed comparison, which
    judge/verdict.py reads.  A launch-bound GPU engine is judged on its kernel time (``judged_on``), its
    wall time compared as information; another GPU engine with kernel figures on its wall time read with
    its kernel time (``corroborate``); every other engine on its wall time alone (docs/gate.md).
    ``across_versions`` (--infer-baseline-across-versions): an entry of other library versions on the same
    hardware is compared too, and each regression or improvement names the versions it was compared across."""
    lookup = store.lookup(identity_of(result), result.machine or {}, across_versions=across_versions)
    if lookup.entry is None:
        return BaselineComparison(lookup.status, str(store.path), differences=tuple(lookup.differences),
                                  versions_only=lookup.versions_only)
    entry = lookup.entry
    latency: Optional[LatencyComparison] = None
    kernel: Optional[LatencyComparison] = None
    judged_on, corroboration = "wall", ""
    wall_judged: Optional[LatencyComparison] = None
    regressions: list[str] = []
    improvements: list[str] = []
    if result.latency is not None and entry.latency is not None:
        noise = machine_noise(result.latency, entry, on_cpu=result.device == "cpu")
        latency = compare_latency(subsample(result.latency.samples_ms), entry.samples_ms,
                                  max_regression=settings.max_regression, noise=noise)
        if launch_bound(result.latency, entry):
            kernel = kernel_comparison(result.latency, entry, settings.kernel_tolerance)
            judged_on = "kernel" if kernel is not None else "wall"
            extra = wall_information(latency) if kernel is not None else ""
        else:
            # A dense GPU engine's wall time is its kernels' time plus the host's share: its kernels, held
            # to the same allowance, say which of the two moved (corroborate, below).
            kernel = kernel_comparison(result.latency, entry, settings.max_regression, option=WALL_OPTION)
            extra = ""
            if kernel is not None:
                read = corroborate(latency, kernel)
                judged_on, corroboration, wall_judged, extra = (read.judged_on, read.corroboration,
                                                                read.wall_judged, read.text)
        judged = kernel if judged_on == "kernel" and kernel is not None else (wall_judged or latency)
        figure = "kernel time" if judged_on == "kernel" else "latency"
        line = f"{figure} {judged.describe()}{extra}"
        if judged.verdict == "regression":
            regressions.append(line)
        elif judged.verdict == "improvement":
            improvements.append(line)
    figures = accuracy_figures(result)
    accuracy = compare_accuracy(figures, entry.accuracy,
                                factor=settings.accuracy_factor, floor=settings.accuracy_floor)
    model_changed = bool(entry.model_hash and entry.model_hash != result.model_hash)
    # A change of code alone (a refactored forward, a library upgrade) is what the accuracy gate is for, and is
    # judged; other weights or other inputs make the figures another model's (other_model_accuracy).
    weights_changed = bool(entry.state_hash and result.state_hash and entry.state_hash != result.state_hash)
    inputs_changed = bool(entry.inputs_hash and result.inputs_hash and entry.inputs_hash != result.inputs_hash)
    worse = [f"accuracy {change.describe()}" for change in accuracy if change.regressed]
    other_model = ""
    if (weights_changed or inputs_changed) and worse:
        other_model = other_model_accuracy(worse, weights_changed, inputs_changed)
    else:
        regressions += worse
    across = compared_across(lookup.differences)  # found under other library versions: each finding says so
    return BaselineComparison(lookup.status, str(store.path), differences=tuple(lookup.differences),
                              regressions=tuple(line + across for line in regressions),
                              improvements=tuple(line + across for line in improvements), recorded=entry.recorded,
                              model_changed=model_changed, accuracy_other_model=other_model,
                              latency=latency, accuracy=tuple(accuracy), kernel=kernel, judged_on=judged_on,
                              corroboration=corroboration, wall_judged=wall_judged,
                              baseline_samples_ms=tuple(entry.samples_ms) if latency is not None else (),
                              accuracy_unmatched=unmatched_outputs(figures, entry.accuracy))


def machine_noise(latency: LatencyStats, entry: Entry, *, on_cpu: bool) -> Any:
    """The comparison's noise figures (regression.RunNoise). On the CPU the machine's drift is read as a
    bursty neighbour taught (a CPU A/A beside one failed 2 of 72 comparisons at +40% and +69%, and 6 of 144
    with the second probe and the steadier spread alone; docs/benchmarks.md): the probe
    after the samples too, the blessed runs' median probe, the steadier run's probe spread as the probe's
    own noise, and an engine moving up to CONTENTION_AMPLIFICATION times the probe. On CUDA (the host's
    launch probe) as it ran in the H100 A/As: the probe before the samples against the entry's, the larger
    spread, once its size."""
    recorded = entry.latency or {}
    if on_cpu:
        blessed, spread = blessed_probe(entry), steadier(latency.probe_spread, recorded.get("probe_spread"))
        after, amplification = latency.probe_after_ms, CONTENTION_AMPLIFICATION
    else:
        blessed, spread = recorded.get("probe_ms"), max(latency.probe_spread, float(recorded.get("probe_spread") or 0))
        after, amplification = None, 1.0
    return run_noise([run["p50_ms"] for run in entry.history], latency.block_medians_ms,
                     recorded.get("block_medians_ms") or [], latency.probe_ms, blessed, probe_spread=spread,
                     probe_after=after, amplification=amplification)


def blessed_probe(entry: Entry) -> Optional[float]:
    """The machine probe of the blessed runs: the median over the entry's history (one blessing made while
    load came and went read 0.454 ms against 0.354 ms for the others, and hid a +56% false regression),
    else the entry's own."""
    import statistics

    probes = [float(run["probe_ms"]) for run in entry.history if run.get("probe_ms")]
    if probes:
        return statistics.median(probes)
    recorded = (entry.latency or {}).get("probe_ms")
    return float(recorded) if recorded else None


def steadier(current: float, recorded: Any) -> float:
    """The probe's own noise a machine drift must stand out of: the steadier run's spread. A probe timed
    while load came and went spreads wide itself, and the larger spread (as before) hid its own move: beside
    a bursty neighbour the probe read +22% with a spread of 7.6% against the blessed run's 0.4%, and an A/A
    comparison failed at +40% (undecided now: the machine moved). A side without a spread does not count."""
    spreads = [float(value) for value in (current, recorded) if value]
    return min(spreads) if spreads else 0.0


def other_model_accuracy(worse: list[str], weights_changed: bool, inputs_changed: bool) -> str:
    """The error figures that grew, when the model's weights (its tensor values) or the example inputs' values
    differ from the blessed entry's: an undecided figure in one line.  The error of an FP16 or INT8 engine is a
    property of the weights it runs and the inputs it is fed: another model's or other inputs' figures
    cannot tell whether this engine got worse (they moved 2-3x between processes with the same code on a
    model built with random weights at import).  The common cause is random weights or inputs made outside
    the test body (at import, in a module-level fixture), which the plugin's seed of the test body does not
    reach.  Latency is still judged: the same shapes run the same kernels."""
    what = " and ".join(part for part, changed in (("the model's weights (its parameters and buffers)", weights_changed),
                                                   ("the example inputs' (or calibration data's) values",
                                                    inputs_changed)) if changed)
    return ("; ".join(worse) + f": not judged: {what} differ from the blessed run's, so the error figures belong to "
            "another model or other inputs; random weights or inputs made outside the test body differ in every "
            "process: seed them (torch.manual_seed) or make them inside the test; bless this run once the change "
            "is intended")


def unmatched_outputs(current: dict[str, Any], recorded: dict[str, Any]) -> str:
    """What the accuracy comparison could not pair, in one line ("" when every output was compared): an
    output renamed or added since the blessing has no figure to be held to, and passing it quietly would
    be a pass that compared nothing."""
    if not current or not recorded:  # no accuracy on one side: nothing to pair (not compared, said elsewhere)
        return ""
    new, gone = sorted(set(current) - set(recorded)), sorted(set(recorded) - set(current))
    if not new and not gone:
        return ""
    parts = []
    if new:
        parts.append(f"output(s) {', '.join(new)} have no figure in the baseline")
    if gone:
        parts.append(f"the baseline's {', '.join(gone)} {'have' if len(gone) > 1 else 'has'} no output in this run")
    return (" and ".join(parts) + ": not compared (outputs renamed or changed since the run was blessed?); "
            "bless this run once the change is intended (--infer-baseline-update, or infercheck baseline update)")


def kernel_comparison(latency: LatencyStats, entry: Entry, tolerance: float,
                      option: str = KERNEL_OPTION) -> Optional[LatencyComparison]:
    """This run's GPU kernel time against the entry's, under ``tolerance`` (named by ``option`` when the
    noise exceeds it) and its own noise (the kernel p50s of the entry's history, both runs' kernel blocks;
    no machine probe: it times the host, not the kernels; nor the GPU's probe, which moved 8 times more
    than the kernels between H100 processes and not with them: docs/gate.md); None unless both sides
    measured it."""
    kernel = latency.kernel
    recorded = (entry.latency or {}).get("kernel")
    if kernel is None or not kernel.samples_ms or not isinstance(recorded, dict):
        return None
    history = [run["kernel_ms"] for run in entry.history if run.get("kernel_ms")]
    noise = run_noise(history, kernel.block_medians_ms, recorded.get("block_medians_ms") or [], None, None)
    return compare_latency(subsample(kernel.samples_ms), recorded["samples_ms"], max_regression=tolerance,
                           noise=noise, option=option)


DECIDED = ("regression", "improvement")
OPPOSITE = {"regression": "improvement", "improvement": "regression"}

# What a dense GPU engine's kernel time said of its wall verdict (BaselineComparison.corroboration).
KERNELS_AGREE = "kernels moved too"  # the wall's verdict stands, its kernels moved the same way
HOST_ONLY = "kernels did not move"  # the wall moved, its kernels did not or went the other way: undecided
KERNELS_DECIDED = "kernels decided"  # the wall could not decide, its kernels regressed: judged on them
# "" otherwise: the wall's verdict as it is (within; undecided with kernels that regressed not; decided with
# kernels that could not tell)


@dataclass(frozen=True)
class Corroborated:
    """corroborate's answer: what the verdict reads and why (BaselineComparison's fields of the same names)."""

    judged_on: str  # "wall" or "kernel"
    corroboration: str  # one of the three above, or ""
    wall_judged: Optional[LatencyComparison] = None  # the wall comparison with its verdict changed, if it was
    text: str = ""  # after the judged figure's line


def corroborate(wall: LatencyComparison, kernel: LatencyComparison) -> Corroborated:
    """A GPU engine that is not launch-bound (a dense CUDA graph, a device-bound engine): its wall verdict
    read with its kernel-time comparison under the same allowance.

    Its wall time is the kernels' time plus what the host adds (the replay's bookkeeping, gaps the
    host leaves), and the host's share is what moves most between processes with the code unchanged: on
    the H100 an Inductor CUDA graph (91% busy) ran 26% slower on wall time in one process of eight, and
    dense graphs' wall blocks drift 2-4% within a run while their kernels hold within 0.1%, so their wall
    history spreads too wide to judge a 5% step (docs/gate.md).  The kernels move too, less: 2% between
    some processes, which their own history measures.  So:

    - wall and kernels moved the same way beyond the allowance: the wall's verdict, corroborated;
    - the wall moved and the kernels did not, or went the other way: undecided, as the change is in the
      host's share, which another process's host speed explains as well as a slower host path;
    - the wall cannot decide (its noise exceeds the allowance) and the kernels are significantly slower
      beyond the allowance and their own noise: a regression, judged on kernel time, as a dense engine's
      wall time cannot shed its kernels' time (not the mirror: faster kernels need not make a faster
      wall, the host may then set the pace);
    - otherwise (the kernels' comparison undecided or too short): the wall's verdict, as before.
    """
    if wall.verdict in DECIDED and kernel.verdict == wall.verdict:
        return Corroborated("wall", KERNELS_AGREE, text=f"; its GPU kernel time moved too ({kernel.change:+.1%})")
    if wall.verdict in DECIDED and kernel.verdict in ("within", OPPOSITE[wall.verdict]):
        moved = ("did not move" if kernel.verdict == "within" else
                 f"moved the other way ({kernel.verdict}: significant and beyond the allowance)")
        why = (f"its GPU kernel time {moved} (p50 {kernel.baseline_p50_ms:.4g} ms -> {kernel.current_p50_ms:.4g} ms, "
               f"{kernel.change:+.1%}), so the change is in what the host adds to the kernels: another process's "
               "host speed explains it as well as a changed host path (a budget on wall time still judges it)")
        return Corroborated("wall", HOST_ONLY, wall_judged=replace(wall, verdict="undecided", why_undecided=why))
    if wall.verdict == "undecided" and kernel.verdict == "regression":
        # The wall's reason, its first clause: the advice after it is for a wall verdict no longer asked for.
        reason = (wall.why_undecided or "undecided").split(": raise ")[0].split("; ")[0]
        return Corroborated("kernel", KERNELS_DECIDED,
                            text=f"; its wall time could not decide ({reason}), and a dense GPU engine's wall time "
                                 f"holds its kernels' time, so its GPU kernel time decided; wall p50 "
                                 f"{wall.baseline_p50_ms:.4g} ms -> {wall.current_p50_ms:.4g} ms ({wall.change:+.1%})")
    return Corroborated("wall", "")


def launch_bound(latency: LatencyStats, entry: Entry) -> bool:
    """Launch-bound in this run or in the entry's: either way one side's wall median carries the host's noise."""
    recorded = (entry.latency or {}).get("kernel") or {}
    return bool((latency.kernel is not None and latency.kernel.launch_bound) or recorded.get("launch_bound") is True)


def wall_information(wall: Optional[LatencyComparison]) -> str:
    """For an engine judged on kernel time (``wall`` given), its wall time beside it, said to be information only."""
    if wall is None:
        return ""
    change = f" ({wall.change:+.1%})" if wall.ratio == wall.ratio else ""
    return (f"; launch-bound, so judged on GPU kernel time ({KERNEL_OPTION}); wall p50 {wall.baseline_p50_ms:.4g} ms "
            f"-> {wall.current_p50_ms:.4g} ms{change} is information")


def regressed_kinds(comparison: BaselineComparison) -> list[str]:
    """``["accuracy", "latency"]``: which kinds of figure regressed."""
    kinds = []
    if any(change.regressed for change in comparison.accuracy):
        kinds.append("accuracy")
    if comparison.judged is not None and comparison.judged.verdict == "regression":
        kinds.append(comparison.judged_figure)
    return kinds

