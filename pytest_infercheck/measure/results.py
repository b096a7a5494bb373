"""The result objects that flow out of a check, and their JSON form.

Plain, typed dataclasses and enums with no numpy or torch inside, so a result can travel from an
xdist worker to the controller, into the JSON report and the baseline file, and back unchanged
(codec.py turns them into JSON-ready data and back by their field types).  Each stage of the check
finds its own field: nothing travels as text to be split again, or in a free-form dict.

Every record is frozen and holds its sequences as tuples: a stage returns its fact, check/facts.py
gathers them and builds the ``CheckResult`` once, and whatever judges it later (judge/verdict.apply,
session.settle, the gate) makes a new record with ``dataclasses.replace``, never an assignment.
(The few dict fields, ``settings``, ``cache``, ``gpu``, ``machine`` and ``percentiles_ms``, are
plain data from their makers, and nothing writes into them after the build.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Iterator, Optional, Sequence

from ..audit.findings import Finding
from .budget import BudgetVerdict
from ..core.codec import from_data
from ..core.jsonsafe import json_safe
from .kernel_time import KernelTime
from .max_batch import MaxBatchResult
from .memory import DeviceMemory
from .profiling import ProfileTable
from .regression import AccuracyChange, LatencyComparison
from ..core.spec import Outcome, Stage, TextEnum

# Bumped when a field changes meaning or type; readers take older reports field by field.
# 2: typed fields (failures with their stage, audit, divergence, calibration, dynamic batch,
#    baseline comparison, machine key) instead of the free-form "extra" dict of version 1.
# 3: the facts the verdict is computed from (stopped, skipped, raise_on_failure, the test's outcome)
#    and the undecided figures, so a saved report is judged again by the same function.
# A field added with a default does not bump it (latency.kernel, baseline.kernel, judged_on, corroboration,
# wall_judged): a report written before it reads as one without the figure, and judges as it did.
SCHEMA_VERSION = 3


@dataclass(frozen=True)
class FailedBeforeCheck:
    """A test of the infercheck fixture that failed before any check made a result, a test file that failed
    to collect, or an xdist worker that crashed (plugin/session.py): no CheckResult shows it, so the JSON
    report keeps it and ``infercheck gate`` fails on it."""

    nodeid: str
    when: str  # setup | call | collection | worker crashed
    message: str = ""

    def describe(self) -> str:
        return f"{self.nodeid} ({self.when}): {self.message}"


@dataclass(frozen=True)
class Tolerance:
    """When an engine's output counts as matching the reference.

    An element mismatches when ``|engine - ref| > atol + rtol * |ref|`` (numpy.allclose's rule);
    the output passes when at most ``max_mismatch`` of its elements mismatch, its relative error
    ``||engine - ref|| / ||ref||`` is at most ``max_rel_l2``, its cosine similarity to the reference
    is at least ``min_cosine``, and no element is NaN or Inf where the reference is finite.
    """

    atol: float
    rtol: float
    max_mismatch: float = 0.0
    min_cosine: float = 0.0
    min_top1: Optional[float] = None
    max_rel_l2: float = float("inf")

    def describe(self) -> str:
        text = (f"atol={self.atol:g} rtol={self.rtol:g} max_mismatch={self.max_mismatch:.2%} "
                f"max_rel_l2={self.max_rel_l2:g} min_cosine={self.min_cosine:g}")
        return text + (f" min_top1={self.min_top1:.2%}" if self.min_top1 is not None else "")


@dataclass(frozen=True)
class OutputAccuracy:
    """How far one output of the engine is from the eager reference."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    mean_abs: float
    rel_l2: float
    cosine: float
    mismatched: int
    total: int
    worst_index: tuple[int, ...]
    worst_value: float
    worst_reference: float
    nonfinite: int
    tolerance: Tolerance
    top1_agreement: Optional[float] = None
    failures: tuple[str, ...] = ()
    # An integer or bool output (class indices, counts, masks): compared element by element, exactly; its
    # cosine and relative error, meaningless on indices, are figures only (compare._failures).
    exact: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def mismatch_ratio(self) -> float:
        return self.mismatched / self.total if self.total else 0.0

    def describe(self) -> str:
        """One paragraph: the output, each metric against its bound, and the worst element."""
        index = ", ".join(map(str, self.worst_index))
        text = (f"output {self.name!r} {list(self.shape)}: " + "; ".join(self.failures) +
                f"; worst element [{index}]: engine {self.worst_value:.6g} vs reference {self.worst_reference:.6g} "
                f"(abs err {abs(self.worst_value - self.worst_reference):.4g})")
        if not self.exact and not any(failure.startswith("relative error") for failure in self.failures):
            text += f"; relative error {self.rel_l2:.3g}"  # the whole-output figure, when not already named
        return text


@dataclass(frozen=True)
class AccuracyResult(Mapping):
    """Every output's figures, a read-only mapping from output name to its ``OutputAccuracy``.

    ``structure_error`` when outputs could not even be paired.  An output can be named in full
    (``output['logits']``) or by its short name (``logits``): outputs.resolve_output_name says how.
    """

    outputs: tuple[OutputAccuracy, ...] = ()
    structure_error: Optional[str] = None

    @property
    def passed(self) -> bool:
        return self.structure_error is None and all(output.passed for output in self.outputs)

    def __bool__(self) -> bool:  # Polygraphy's convention: the truth value is "passed"
        return self.passed

    def worst(self) -> Optional[OutputAccuracy]:
        """The output furthest from its tolerance (failed first, then the largest relative error)."""
        if not self.outputs:
            return None
        return max(self.outputs, key=lambda o: (not o.passed, _finite(o.rel_l2)))

    def __getitem__(self, name: str) -> OutputAccuracy:
        from ..model.outputs import resolve_output_name

        wanted = resolve_output_name(name, [output.name for output in self.outputs])  # OutputNameError: a KeyError
        return next(output for output in self.outputs if output.name == wanted)

    def __iter__(self) -> Iterator[str]:
        return iter([output.name for output in self.outputs])

    def __len__(self) -> int:
        return len(self.outputs)


@dataclass(frozen=True)
class LatencyStats:
    """Per-iteration latency samples (milliseconds) and their statistics."""

    samples_ms: tuple[float, ...]
    timer: str
    batch_size: int = 1
    warmup_iterations: int = 0
    peak_memory_bytes: Optional[int] = None
    includes_transfers: bool = False
    count: int = 0
    min_ms: float = math.nan
    mean_ms: float = math.nan
    std_ms: float = math.nan
    # Every percentile of stats.PERCENTILES, by name ({"p50": ..., "p90": ..., "p99": ...}); read one as
    # ``stats.p50_ms``. A new percentile is a row in that table: every report iterates it.
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    # Medians of consecutive blocks of the samples, in time order (stats.BLOCKS): how much the engine
    # drifted while it was timed, the within-run part of the gate's noise (regression.RunNoise).
    block_medians_ms: tuple[float, ...] = ()
    # A fixed reference workload timed just before the engine, under the same lock (timing.machine_probe):
    # a machine that got slower between two runs shows here, whatever the engine did.
    probe_ms: Optional[float] = None
    probe_spread: float = 0.0  # the probe's own spread (std of ln over its repeats): how far it moves alone
    # The same probe right after the samples: load that came or went around the samples (0.1-1 s) shows in
    # one of the two (the CPU gate reads the larger move: baseline/comparison.machine_noise).
    probe_after_ms: Optional[float] = None
    stop_reason: str = ""  # why sampling stopped (timing.Stop): decided, max_iters, max_time, ...
    stop_unmet: str = ""  # at a cap: what the stopping rule still lacked
    budget_verdict: Optional[BudgetVerdict] = None  # the budget's statistic with its confidence bounds
    device_memory: Optional[DeviceMemory] = None  # every allocator's device memory (CUDA), with its method
    # GPU engines: the device-busy time per iteration, its busy fraction and the launch-bound label
    # (kernel_time.py); None on the CPU, or where the profiler could not measure it (a warning says why).
    kernel: Optional[KernelTime] = None

    def __getattr__(self, name: str) -> float:
        """``p50_ms``, ``p90_ms``...: a percentile of stats.PERCENTILES (NaN before any sample)."""
        from .stats import PERCENTILES

        if name.endswith("_ms") and name[:-3] in PERCENTILES:
            return self.__dict__.get("percentiles_ms", {}).get(name[:-3], math.nan)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def throughput(self) -> float:
        """Items per second at the mean latency."""
        return self.batch_size * 1000.0 / self.mean_ms if self.mean_ms > 0 else math.nan

    def statistic(self, name: str) -> float:
        """A percentile of stats.PERCENTILES (``p50``...) or ``mean``: the figure a budget or a report names."""
        return self.mean_ms if name == "mean" else getattr(self, f"{name}_ms")

    def figures(self) -> dict[str, float]:
        """``{"p50_ms": ..., "p90_ms": ..., "p99_ms": ...}`` in the table's order: what reports list."""
        from .stats import PERCENTILES

        return {f"{name}_ms": self.statistic(name) for name in PERCENTILES}

    def describe(self) -> str:
        from .stats import PERCENTILES

        figures = ", ".join(f"{name} {self.statistic(name):.3f} ms" for name in PERCENTILES)
        kernel = f"; {self.kernel.describe()}" if self.kernel is not None else ""
        return f"{figures} over {self.count} samples ({self.timer}){kernel}"


@dataclass(frozen=True)
class Failure:
    """One reason an item failed, with the stage that found it."""

    stage: Stage
    message: str

    def __str__(self) -> str:
        return f"{self.stage}: {self.message}"


@dataclass(frozen=True)
class TestOutcome:
    """What pytest said of the test that ran the check, once it ended (session.settle records it)."""

    __test__ = False  # a name pytest would otherwise collect from a test module that imports it

    failed: bool = False  # the test failed on its own (an assert after the check), not by the check's raise
    skipped: bool = False
    xfail: bool = False  # pytest's wasxfail: skipped means it failed as expected, passed that it did not
    reason: str = ""  # the failure's last line, or the skip's reason


@dataclass(frozen=True)
class TensorError:
    tensor: str
    max_abs: float
    rel_l2: float
    nonfinite: int
    reference_max: float  # largest |value| in the reference: shows a value outside FP16's range at a glance


@dataclass(frozen=True)
class Divergence:
    """The first node of the engine's ONNX model whose output leaves tolerance (divergence.py)."""

    node: str
    operator: str
    module_path: str
    output: TensorError
    inputs: tuple[TensorError, ...] = ()
    failures: tuple[str, ...] = ()
    compared_nodes: int = 0

    def describe(self) -> str:
        module = f" in {self.module_path}" if self.module_path else ""
        out = self.output
        text = (f"first divergent node: {self.node} ({self.operator}){module}: output {out.tensor!r} "
                f"max abs err {out.max_abs:.4g}, rel L2 {out.rel_l2:.3g}"
                + (f", {out.nonfinite} NaN/Inf" if out.nonfinite else "") + f" (reference |max| {out.reference_max:.4g})")
        if self.inputs:
            text += "; its inputs: " + ", ".join(f"{i.tensor!r} max abs err {i.max_abs:.3g}, rel L2 {i.rel_l2:.3g}"
                                                 + (f", {i.nonfinite} NaN/Inf" if i.nonfinite else "")
                                                 for i in self.inputs)
        return text


@dataclass(frozen=True)
class ExportInfo:
    """Which exporter made the ONNX model, why the first one failed, what a trace froze (export.py)."""

    exporter: str
    fallback_reason: Optional[str] = None
    frozen_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class CalibrationInfo:
    """What an INT8 engine was calibrated on (calibration.py), for the hint on an accuracy failure."""

    batches: int
    generated: bool
    range: tuple[float, ...] = ()  # [min, max] over the calibration data's floats
    example_range: tuple[float, ...] = ()  # the same over the example inputs

    def hint(self) -> str:
        """What the INT8 engine was calibrated on, and whether that looks like the inputs it got."""
        source = "generated" if self.generated else "given"
        text = f"the INT8 engine was calibrated on {self.batches} {source} batch(es)"
        calib, example = self.range, self.example_range
        if not calib or not example:
            return text
        text += (f" spanning [{calib[0]:.3g}, {calib[1]:.3g}]; the example inputs span "
                 f"[{example[0]:.3g}, {example[1]:.3g}]")
        if self.range_ratio is not None:
            text += (f" -- a {self.range_ratio:.3g}x different range: the quantization scales fit data "
                     "unlike what the model sees; calibrate on representative inputs")
        return text

    @property
    def range_ratio(self) -> Optional[float]:
        """Calibration range width over the example inputs', when it is more than 4x off either way (the
        calibration data is then a suspect of the failure); None when it is alike or unknown."""
        calib, example = self.range, self.example_range
        if not calib or not example:
            return None
        calib_width, example_width = calib[1] - calib[0], example[1] - example[0]
        if example_width > 0 and calib_width > 0 and not 0.25 <= calib_width / example_width <= 4:
            return calib_width / example_width
        return None


@dataclass(frozen=True)
class PrecisionRecipe:
    """How a reduced-precision engine was made from the model (precision.py): the method, what it
    converted, and which modules stayed in FP32 (``keep_fp32``) and whether the backend honoured them."""

    method: str  # e.g. "ONNX Runtime static INT8, QDQ, symmetric, per-channel 7-bit weights"
    quantized_ops: tuple[str, ...] = ()  # INT8: the ONNX operator types quantized
    keep_fp32: tuple[str, ...] = ()  # module names kept in FP32, as given
    kept_nodes: int = 0  # ONNX nodes those modules map to (ONNX engines), or modules kept (PyTorch ones)
    not_honoured: str = ""  # why this backend ran keep_fp32's modules at the reduced precision anyway
    label: str = ""  # the method in a few words, in the engine cell of the item's row ("dynamic, per-row")
    quantized_modules: int = 0  # PyTorch modules quantized (torchao engines)

    def describe(self) -> str:
        text = self.method
        if self.quantized_ops:
            text += f"; quantized: {', '.join(self.quantized_ops)}"
            text += f" ({self.quantized_modules} modules)" if self.quantized_modules else ""
        if self.keep_fp32:
            kept = ", ".join(self.keep_fp32)
            text += (f"; keep_fp32 ignored ({self.not_honoured}): {kept}" if self.not_honoured else
                     f"; kept in FP32: {kept}" + (f" ({self.kept_nodes} ONNX nodes)" if self.kept_nodes else ""))
        return text


@dataclass(frozen=True)
class RepairTrial:
    """One keep-list the repair built and checked (check/repair.py): how close the engine came."""

    keep_fp32: tuple[str, ...]
    passed: bool
    rel_err: float  # the worst output's relative error against the reference
    nonfinite: int  # NaN/Inf elements over every output where the reference is finite
    seconds: float  # the rebuild and the accuracy check
    p50_ms: Optional[float] = None  # a passing engine's median latency (a short plan)
    stopped: str = ""  # why the trial could not be judged (a build or run failure), "" when it was


@dataclass(frozen=True)
class RepairResult:
    """The mixed-precision repair of an engine that failed accuracy (check/repair.py, docs/precision.md):
    the smallest keep-list found that makes the same backend's engine pass, or how far the best got."""

    engine: str  # the spec id the repair rebuilt, e.g. "onnxruntime-fp16"
    keep_fp32: tuple[str, ...]  # the passing keep-list (the user's own included), or the best one tried
    passed: bool
    rel_err: float  # of ``keep_fp32``'s engine (NaN when nothing was tried)
    nonfinite: int
    failing_rel_err: float  # the engine's own, without the repair
    failing_nonfinite: int
    p50_ms: Optional[float] = None  # the passing engine's median latency (a short plan)
    p50_change: Optional[float] = None  # against failing_p50_ms: +0.06 is 6% slower
    failing_p50_ms: Optional[float] = None  # the failing engine's median latency under the same short plan
    tried: int = 0  # keep-lists built and checked
    seconds: float = 0.0
    cap_s: float = 0.0  # repair_time
    candidates: tuple[str, ...] = ()  # modules the per-module comparisons pointed at, in order
    trials: tuple[RepairTrial, ...] = ()
    note: str = ""  # why there was nothing to try, or what stopped the search

    def describe(self) -> str:
        """The paste-ready answer (or how far the best keep-list got), in one line."""
        shown = "[" + ", ".join(f'"{name}"' for name in self.keep_fp32) + "]"
        search = (f"{self.tried} keep-list(s) built in {self.seconds:.1f} s"
                  + (f", candidates from the per-module comparison: {', '.join(self.candidates)}"
                     if self.candidates else ""))
        if self.passed:
            change = "" if self.p50_change is None else f", p50 {self.p50_change:+.0%}"
            return (f"keep_fp32={shown} makes {self.engine} pass (rel err {self.rel_err:.2g}{change}); "
                    f"repair: {search}")
        if not self.tried:
            return f"repair: no keep_fp32 list to try for {self.engine}: {self.note}"
        stopped = [trial for trial in self.trials if trial.stopped]
        if stopped and len(stopped) == len(self.trials):
            # No list was judged: there is no "best", and what stopped them is the answer.
            return (f"repair: none of the {len(stopped)} keep_fp32 list(s) built for {self.engine} could be judged: "
                    f"{stopped[0].stopped} ({search}" + (f"; {self.note}" if self.note else "") + ")")
        # A list no closer than keeping nothing is no "best": saying so keeps it from being pasted.
        helped = (self.nonfinite, _finite_or_inf(self.rel_err)) < (self.failing_nonfinite,
                                                                   _finite_or_inf(self.failing_rel_err))
        closest = (f"the best, keep_fp32={shown}, leaves" if helped else
                   f"none improves on keeping nothing: the closest, keep_fp32={shown}, leaves")
        return (f"repair: no keep_fp32 list tried within repair_time={self.cap_s:g}s makes {self.engine} pass; "
                f"{closest} rel err {_figure(self.rel_err, self.nonfinite)} against "
                f"{_figure(self.failing_rel_err, self.failing_nonfinite)} without it ({search}"
                + (f"; {len(stopped)} of them could not be judged: {stopped[0].stopped}" if stopped else "")
                + (f"; {self.note}" if self.note else "") + ")")


def _finite_or_inf(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _figure(rel_err: float, nonfinite: int) -> str:
    return f"{rel_err:.3g}" + (f" ({nonfinite} NaN/Inf)" if nonfinite else "")


@dataclass(frozen=True)
class DynamicBatchCheck:
    """The re-run at twice the batch that proves a dynamic batch axis is dynamic."""

    batch: int
    passed: bool
    problems: tuple[str, ...] = ()  # what went wrong at that batch, one line each


class BaselineStatus(TextEnum):
    FOUND = "found"
    MISSING = "missing"
    OTHER_MACHINE = "fingerprint-mismatch"


@dataclass(frozen=True)
class CallPath:
    """What one call of the engine runs on the host (call_path.py), recorded once after its timing.
    An engine built cold and the same engine loaded from the cache must take the same path."""

    kind: str  # the engine's chain of callables, e.g. "TorchEngine > PrecompiledForward"
    python_calls: int  # Python function calls one call makes (the host work beside the kernels)
    digest: str  # of every (file, function, count) those calls entered: equal digests, equal paths


def compared_across(differences: Sequence[str]) -> str:
    """`` (compared across torch 2.12.0 -> 2.13.0)`` for a found entry's library differences, "" for none."""
    return f" (compared across {'; '.join(differences)})" if differences else ""


@dataclass(frozen=True)
class BaselineComparison:
    """This item against its baseline entry (baseline/comparison.py): what was compared and found."""

    status: BaselineStatus
    file: str
    # Machine-key differences: why an OTHER_MACHINE entry was not applied, or the library versions a FOUND
    # entry was compared across (--infer-baseline-across-versions); () for an entry of this very key.
    differences: tuple[str, ...] = ()
    # OTHER_MACHINE, and only library versions differ: --infer-baseline-across-versions would compare with it.
    versions_only: bool = False
    regressions: tuple[str, ...] = ()
    improvements: tuple[str, ...] = ()
    recorded: str = ""
    model_changed: bool = False
    latency: Optional[LatencyComparison] = None  # wall time
    baseline_samples_ms: tuple[float, ...] = ()  # the entry's distribution, for the HTML report
    accuracy: tuple[AccuracyChange, ...] = ()
    kernel: Optional[LatencyComparison] = None  # GPU kernel time, where both sides measured it
    # "kernel": a launch-bound engine, judged on its kernel time (wall time is information), or a dense
    # GPU engine whose wall time could not decide and whose kernels did (corroboration "kernels decided");
    # "wall": every other engine (docs/gate.md, "Launch-bound engines", "Dense GPU engines").
    judged_on: str = "wall"
    # A dense GPU engine's wall verdict read with its kernel time (baseline/comparison.corroborate): "" where
    # it does not apply or changed nothing, else "kernels moved too", "kernels did not move" (the wall's
    # verdict turned undecided) or "kernels decided" (the wall could not; judged on kernel time).
    corroboration: str = ""
    # The wall comparison as judged, where its kernels changed its verdict (the wall moved and the kernels
    # did not: undecided); ``latency`` keeps the wall time's own verdict.
    wall_judged: Optional[LatencyComparison] = None
    # Outputs the accuracy comparison could not pair with the entry's (renamed, added, gone), in one line:
    # an undecided figure, not a quiet pass ("" when every output was compared).
    accuracy_unmatched: str = ""
    # Accuracy figures that grew beyond the allowance while the model's content hash differs from the entry's
    # (baseline/comparison.other_model_accuracy): undecided, as another model's error says nothing of this one.
    accuracy_other_model: str = ""

    @property
    def regression_lines(self) -> tuple[str, ...]:
        """``regressions`` as every report says them: with the model's change where its content differs from the
        entry's (a regression of changed code, not of the same model on a slower day)."""
        suffix = " (the model changed since the baseline was recorded)" if self.model_changed else ""
        return tuple(f"{line}{suffix}" for line in self.regressions)

    @property
    def accuracy_undecided(self) -> str:
        """Every accuracy figure the comparison could not judge, in one line ("" when all were judged)."""
        return "; ".join(text for text in (self.accuracy_unmatched, self.accuracy_other_model) if text)

    @property
    def across(self) -> str:
        """`` (compared across torch 2.12.0 -> 2.13.0)`` for an entry of other library versions
        (--infer-baseline-across-versions), else "": said after every finding and undecided figure."""
        return compared_across(self.differences) if self.status == BaselineStatus.FOUND else ""

    @property
    def judged(self) -> Optional[LatencyComparison]:
        """The latency comparison the verdict reads: kernel time where judged on it, else the wall time as
        judged (``wall_judged``, where the kernels changed its verdict, else ``latency``)."""
        if self.judged_on == "kernel":
            return self.kernel
        return self.wall_judged if self.wall_judged is not None else self.latency

    @property
    def judged_figure(self) -> str:
        """What the judged comparison is of, in the verdict's words: ``kernel time`` or ``latency`` (wall)."""
        return "kernel time" if self.judged_on == "kernel" else "latency"


@dataclass(frozen=True)
class CheckResult:
    """Everything one check found: what ran, how it went, every figure."""

    nodeid: str
    spec_id: str
    backend: str
    precision: str
    cuda_graphs: bool
    check_name: str = ""  # which check of the test: the model, or name=, with its position when repeated
    device: str = "cpu"
    model_name: str = ""
    model_hash: str = ""
    # The example inputs' values, and an INT8 engine's calibration data (model_hash holds the inputs' names,
    # shapes and dtypes only, as engines do not depend on values): an error figure depends on them and on the
    # model, so the gate compares accuracy only where both hashes match.
    inputs_hash: str = ""
    # The model's tensor and array values alone (model_identity.Identity.state): where it differs from the
    # blessed entry's, its error figures are another model's; a change of code alone is judged.
    state_hash: str = ""
    # -- the verdict (judge/verdict.py computes it from the facts below; judge.verdict.apply writes it)
    outcome: Outcome = Outcome.PASSED
    stage: Optional[Stage] = None  # where it stopped (the first failure's stage)
    message: str = ""
    failures: tuple[Failure, ...] = ()
    undecided: tuple[str, ...] = ()  # figures that could not tell pass from fail
    # raise_on_failure=False: a failed check handed to the test's own asserts, so pytest's outcome
    # is the test's; the reports keep the check's verdict and say it was not raised.
    not_raised: bool = False
    # -- facts: what the stages found
    stopped: Optional[Failure] = None  # the stage that could not complete, and why
    skipped: Optional[Failure] = None  # the stage that found the engine cannot run here, and why
    raise_on_failure: bool = True  # the infercheck() call's own choice
    test: Optional[TestOutcome] = None  # pytest's outcome of the test, once known
    accuracy: Optional[AccuracyResult] = None
    latency: Optional[LatencyStats] = None
    reference_latency: Optional[LatencyStats] = None
    budget: Optional[str] = None
    build_seconds: Optional[float] = None
    cache: dict[str, str] = field(default_factory=dict)  # artifact -> hit | miss | off
    traceback: Optional[str] = None
    warnings: tuple[str, ...] = ()
    # Information about this check (its settings, what its engine's pass shows), not a warning (a strict warnings
    # filter must not fail a check for a run-wide setting that means nothing here): in a failure's notes, the
    # terminal's "notes" section and the JSON report.
    notes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)  # setting -> {value, source}
    reference: str = ""  # how the reference was computed (eager FP32, device, TF32)
    # What of an FP16/BF16 model and its inputs was widened to float32 before the check (the model's FP32 form,
    # model/under_test.py), e.g. "parameters and buffers in float16 (4 tensors)"; () when nothing was.
    widened: tuple[str, ...] = ()
    gpu: Optional[dict[str, Any]] = None  # environment.gpu_info() of the device it ran on
    cpu_threads: Optional[int] = None  # the intra-op threads torch and ONNX Runtime used (--infer-threads)
    export: Optional[ExportInfo] = None
    machine: Optional[dict[str, Any]] = None  # baseline/key.machine_key: what its figures are tied to
    audit: tuple[Finding, ...] = ()  # the pre-build audit's findings for this backend
    divergence: Optional[Divergence] = None
    calibration: Optional[CalibrationInfo] = None
    recipe: Optional[PrecisionRecipe] = None  # how a reduced-precision engine was made (precision.py)
    dynamic_batch: Optional[DynamicBatchCheck] = None
    cuda_graph_drift: Optional[float] = None  # largest eager-vs-replay difference, in units of the allowed drift
    profile: Optional[ProfileTable] = None  # where the time goes (a failed budget, or --infer-profile)
    max_batch: Optional[MaxBatchResult] = None  # the largest batch within the budget (--infer-max-batch-search)
    baseline: Optional[BaselineComparison] = None
    repair: Optional[RepairResult] = None  # the keep-list search after an accuracy failure (repair_precision)
    call_path: Optional[CallPath] = None  # what one timed call runs on the host (call_path.py)

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED

    @property
    def speedup(self) -> Optional[float]:
        """Eager FP32 reference p50 over this engine's p50."""
        if not self.latency or not self.reference_latency or not self.latency.p50_ms > 0:
            return None
        return self.reference_latency.p50_ms / self.latency.p50_ms

    @property
    def cache_summary(self) -> str:
        """``hit`` when every cached artifact came from disk, ``miss``/``off``/``partial`` otherwise."""
        states = set(self.cache.values())
        if not states:
            return "-"
        return states.pop() if len(states) == 1 else "partial"

    def to_dict(self) -> dict[str, Any]:
        data = json_safe(self)
        if self.latency:
            # Derived figures beside the typed ones, for readers of the JSON (jq, dashboards); ignored on reading.
            data["latency"].update(json_safe(self.latency.figures()))
            data["latency"]["throughput"] = json_safe(self.latency.throughput)
            if self.latency.kernel is not None:
                data["latency"]["kernel"].update(json_safe(self.latency.kernel.figures()))
        data["speedup"] = json_safe(self.speedup)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckResult":
        return from_data(cls, data)


def round_figure(value: Any) -> Any:
    """Six significant digits for report properties; non-floats (and NaN/Inf) pass through."""
    return float(f"{value:.6g}") if isinstance(value, float) and math.isfinite(value) else value


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def several_checks(results: Sequence[CheckResult]) -> AbstractSet[str]:
    """The items that ran more than one check: every report names the check on their rows."""
    checks: dict[str, set[str]] = {}
    for result in results:
        checks.setdefault(result.nodeid, set()).add(result.check_name)
    return {nodeid for nodeid, names in checks.items() if len(names) > 1}


def check_label(result: CheckResult, several: AbstractSet[str]) -> str:
    """`` (name)`` after an item that ran several checks (``several``: several_checks), else nothing."""
    return f" ({result.check_name})" if result.nodeid in several else ""
