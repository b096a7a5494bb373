"""The check of one engine spec, as an ordered list of stages.

    availability -> model -> reference -> pre-build audit -> build -> accuracy -> latency
        -> (an accuracy failure, repair_precision on) the keep-list repair -> verdict

Each stage is a typed function of its own module (reference.py, prebuild.py, build.py, accuracy.py,
latency.py, verdict.py) with explicit inputs and outputs; this function only passes them on and
records them on the result.  A stage stops the check by raising StageFailure (the item fails at
that stage) or StageSkip (it cannot run here); check/__init__.py turns either into the item's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional

from ..results import AccuracyResult, CheckResult, RepairResult
from ..spec import Stage
from . import accuracy, build, latency, prebuild, reference, repair
from .failure import StageFailure, StageSkip, indent

if TYPE_CHECKING:
    from .context import CheckContext


@dataclass(frozen=True)
class CheckInputs:
    """What the user handed to ``infercheck(...)``."""

    model: Any
    example_inputs: Any
    calibration: Optional[Iterable[Any]] = None


def run_check(context: "CheckContext", settings: Any, given: CheckInputs, result: CheckResult) -> None:
    """The stages in order, on the CPU with the run's thread count (the reference and every engine alike)."""
    from ..cpu_threads import cpu_threads, resolve_threads

    device = result.device = resolve_device(settings.device)
    result.model_name = type(given.model).__name__  # in the failure's header even when the inputs are refused
    result.cpu_threads = resolve_threads(settings.threads) if device == "cpu" else None
    with cpu_threads(result.cpu_threads):
        run_stages(context, settings, given, result)


def run_stages(context: "CheckContext", settings: Any, given: CheckInputs, result: CheckResult) -> None:
    from ..backends import descriptor_of

    spec, run, device = context.spec, context.run, result.device
    descriptor, backend = descriptor_of(spec.backend), run.backend(spec.backend)
    why_not = descriptor.unavailable_reason(spec, device) or backend.unavailable_reason(spec, device)
    if why_not and not descriptor.audit_without_library:  # nothing to learn from the model here
        raise StageSkip(Stage.AVAILABILITY, why_not)
    mut = reference.model_under_test(given.model, given.example_inputs, dynamic_batch=settings.dynamic_batch)
    result.model_name, result.model_hash = mut.name, mut.hash
    if settings.keep_fp32:
        from ..precision import KeepFp32Error, check_module_names

        try:
            check_module_names(mut.module, settings.keep_fp32)
        except KeepFp32Error as err:
            raise StageFailure(Stage.MODEL, str(err)) from None
    if note := mut.identity_note():
        result.warnings.append(note)
    artifacts = run.artifacts(mut, context.cache)
    if why_not:  # the backend's support table still says which nodes would not run where it does
        result.audit, predicted = prebuild.predicted_gaps(artifacts, descriptor, device, settings)
        raise StageSkip(Stage.AVAILABILITY, why_not + predicted)
    # Keyed by the inputs' values too: a test's parameter sets, or two checks in one test, often
    # share the model and the shapes but not the values.
    key = (mut.reference_key, device, settings.tf32, result.cpu_threads)
    twice = not settings.allow_nondeterministic
    eager = run.references.get_or((*key, twice),
                                  lambda: reference.eager_reference(mut, device, settings.tf32, twice=twice))
    expected = eager.outputs
    result.warnings.extend(eager.notes)
    reference.judge_reference(expected, spec.precision, settings.allow_degenerate,
                              measure=lambda: reference.activation_trail(mut, device))
    result.reference = reference.describe_reference(device, settings.tf32)
    result.gpu = gpu_facts(device)
    deadline = build.Deadline(settings.build_timeout)  # covers the export, conversions, calibration, build
    if descriptor.audit_target(device):
        with context.build_lock():  # an export is CPU work like a build: never beside another worker's timing
            build.export_in_time(artifacts, deadline, context.progress)
    # The export made before the build (for the audit) is part of what the engine cost: "build s"
    # counts it, or ONNX engines would read as free beside an Inductor compile that traces inside.
    exported_s = artifacts.seconds.get("onnx", 0.0)
    result.audit = prebuild.audit_before_build(artifacts, descriptor, device, settings)
    # Engines build and run under the reference's TF32 setting: an FP32 engine is then true FP32.
    with reference.tf32_setting(device, settings.tf32):
        memory = latency.device_memory_tracker(device)
        engine, request = build_stage(context, backend, artifacts, deadline, settings, given, result, exported_s)
        if memory is not None:
            memory.mark_build()
        try:
            prepared = check_outputs(backend, engine, request, mut, expected, device, settings, result)
            time_engine(context, backend, engine, request, prepared, mut, settings, result)
            if memory is not None and result.latency is not None:
                result.latency.device_memory = latency.device_memory(memory, device)
            if context.engine_probe is not None:
                context.engine_probe(engine, prepared)
        finally:
            engine.close()
        if settings.repair_precision and result.accuracy is not None and not result.accuracy.passed:
            result.repair = repair_precision(context, backend, request, mut, expected, settings, result.accuracy,
                                             result)
    from ..backends import reference_spec

    if spec == reference_spec() and result.latency is not None:
        # The eager FP32 item's own timing is the reference: no second timing of the same engine.
        result.reference_latency = run.reference_latencies.put(key, result.latency)
    else:
        result.reference_latency = run.reference_latencies.get_or(
            key, lambda: latency.reference_latency(run.backend(reference_spec().backend), artifacts, device, settings,
                                                   context.timing_lock))
    compare_with_baseline(context, settings, result)


def build_stage(context: "CheckContext", backend: Any, artifacts: Any, deadline: Any, settings: Any,
                given: CheckInputs, result: CheckResult, exported_s: float = 0.0) -> tuple[Any, Any]:
    """Stages CALIBRATION and BUILD; the build's figures are recorded whether or not it succeeds
    (``exported_s``: the export this item made before the build, counted in its build seconds)."""
    attempt = build.Attempt()
    try:
        request = build.build_request(context.spec, artifacts, result.device, settings, given.calibration, attempt)
        with context.build_lock():  # builds of several workers overlap, never a CPU timing
            engine = build.build_engine(backend, request, deadline=deadline, progress=context.progress,
                                        attempt=attempt)
    finally:
        result.build_seconds, result.cache, result.calibration = (exported_s + attempt.seconds, attempt.cache,
                                                                  attempt.calibration)
        result.recipe = attempt.recipe
        result.warnings.extend(attempt.notes)
        result.export = build.export_info(artifacts, result.warnings)
    return engine, request


def time_engine(context: "CheckContext", backend: Any, engine: Any, request: Any, prepared: Any, mut: Any,
                settings: Any, result: CheckResult) -> None:
    """Stage LATENCY: the timing, the budget with its confidence, and what explains or extends it."""
    from .. import call_path

    device = result.device
    result.latency = latency.measure(engine, prepared, mut, device, settings, context.timing_lock)
    result.call_path = call_path.measure(engine, lambda: engine.run(prepared))  # the timed call's host path
    budget = result.latency.budget_verdict = latency.budget_verdict(result.latency, settings)
    if (budget is not None and not budget.passed) or settings.profile:  # the profile explains a failed budget
        result.profile = latency.profile(engine, prepared, mut, device, backend.onnx_model(request), result.warnings,
                                         backend.descriptor.profiler)
    if settings.max_batch_search and settings.budget is not None:
        result.max_batch = latency.search_max_batch(engine, mut, device, settings, context.timing_lock)


def check_outputs(backend: Any, engine: Any, request: Any, mut: Any, expected: reference.Reference, device: str,
                  settings: Any, result: CheckResult) -> Any:
    """Stages RUN and ACCURACY: the engine's outputs against the reference; returns the prepared inputs."""
    try:
        prepared, outputs = build.first_run(engine, request.spec, mut.inputs)
    except StageFailure as failure:
        from ..precision import quantized_run_hint

        hint = quantized_run_hint(request, f"{failure}\n{failure.detail}", mut.inputs) if failure.stage == Stage.RUN \
            else None
        if hint is None:
            raise
        raise StageFailure(Stage.RUN, f"{failure}\n{indent(hint)}", failure.detail) from None
    result.cuda_graph_drift = getattr(engine, "graph_difference", None)
    base, per_output = accuracy.tolerances(request.spec.precision, settings, [name for name, _ in expected])
    result.accuracy = accuracy.compare(outputs, expected, base, per_output)
    if not result.accuracy.passed:
        result.divergence = accuracy.locate_divergence(backend, request, base, result.warnings)
    if mut.dynamic_batch and not request.spec.cuda_graphs:  # a graph replays one shape by design
        result.dynamic_batch = accuracy.check_doubled_batch(engine, mut, device, settings.tf32, base, per_output)
    return prepared


def repair_precision(context: "CheckContext", backend: Any, request: Any, mut: Any, expected: reference.Reference,
                     settings: Any, failing: AccuracyResult, result: CheckResult) -> Optional[RepairResult]:
    """The keep-list search after an accuracy failure (check/repair.py); None for an engine it does not cover."""
    if request.spec.precision not in repair.PRECISIONS or failing.structure_error is not None:
        return None
    tolerances = accuracy.tolerances(request.spec.precision, settings, [name for name, _ in expected])
    failing_p50 = result.latency.p50_ms if result.latency is not None else None
    return repair.repair(repair.Repairing(context, backend, request, mut, expected, settings, tolerances,
                                          failing, failing_p50))


def compare_with_baseline(context: "CheckContext", settings: Any, result: CheckResult) -> None:
    """The machine key is always recorded (a saved report can be gated later); the comparison with the
    baseline entry when a baseline is given (what it means is the verdict's to say)."""
    from ..baseline.key import machine_key

    result.machine = machine_key(result.device, backend=result.backend)
    store = context.baseline() if context.baseline is not None else None
    if store is None:
        return
    from ..baseline.comparison import compare_with_entry

    result.baseline = compare_with_entry(result, store, settings)


def gpu_facts(device: str) -> Optional[dict[str, Any]]:
    if not device.startswith("cuda"):
        return None
    from ..environment import gpu_info

    return gpu_info()


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
