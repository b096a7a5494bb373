"""The check of one engine spec, as an ordered list of stages.

    availability -> model -> reference -> pre-build audit -> build -> accuracy -> latency
        -> (an accuracy failure, repair_precision on) the keep-list repair -> verdict

Each stage is a typed function of its own module (reference.py, prebuild.py, build.py, accuracy.py,
latency.py, verdict.py) with explicit inputs and outputs; this function only passes them on and
adds the facts they return to the check's ``Facts`` (facts.py), from which the fixture builds the
frozen CheckResult once.  A stage stops the check by raising StageFailure (the item fails at that
stage) or StageSkip (it cannot run here); check/__init__.py records either as a fact, beside the
facts gathered before it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Optional

from ..measure.results import AccuracyResult, LatencyStats, RepairResult
from ..core.spec import Stage
from ..core.warning_filters import toolchain_warnings_shown
from . import accuracy, build, latency, prebuild, reference, repair
from .facts import Facts
from .failure import StageFailure, StageSkip, indent

if TYPE_CHECKING:
    from .context import CheckContext


@dataclass(frozen=True)
class CheckInputs:
    """What the user handed to ``infercheck(...)``."""

    model: Any
    example_inputs: Any
    calibration: Optional[Iterable[Any]] = None


def run_check(context: "CheckContext", settings: Any, given: CheckInputs, facts: Facts) -> None:
    """The stages in order, on the CPU with the run's thread count (the reference and every engine alike),
    torch's structured-trace records kept out of pytest's log for the whole check (Dynamo runs in builds,
    exports and the profile's re-trace of a compiled engine alike: export_common.quiet_torch_logs)."""
    from ..core.cpu_threads import cpu_threads, resolve_threads
    from ..model.export_common import quiet_torch_logs

    device = resolve_device(settings.device)
    threads = resolve_threads(settings.threads) if device == "cpu" else None
    # The model's name is in the failure's header even when the inputs are refused.
    facts.add(device=device, model_name=type(given.model).__name__, cpu_threads=threads)
    facts.notes.extend(setting_notes(settings, device, threads))
    from ..backends import descriptor_of

    if caveat := descriptor_of(context.spec.backend).pass_caveat(context.spec.precision, device):
        facts.notes.append(caveat)
    with cpu_threads(threads), quiet_torch_logs():
        run_stages(context, settings, given, facts, device, threads)


def setting_notes(settings: Any, device: str, threads: Optional[int]) -> list[str]:
    """Settings that mean nothing, or something else, on this device: said (as information, not warnings: a
    run-wide setting must not fail every check under a strict warnings filter), not silently accepted."""
    from ..core.cpu_threads import usable_cpus, xdist_workers

    notes = []
    if settings.time_transfers and device == "cpu":
        notes.append("time_transfers adds the host-device copies to a GPU engine's timing; on the CPU there are "
                     "none, so it changes nothing here")
    available, workers = usable_cpus(), xdist_workers()
    if threads is not None and threads * workers > available:
        each = f" in each of {workers} xdist workers" if workers > 1 else ""
        notes.append(f"threads={threads}{each} is more than the {available} CPU(s) this process may use (its "
                     "affinity and cgroup quota): the threads contend for them, and every figure (the eager "
                     "reference's too) includes it")
    return notes


def run_stages(context: "CheckContext", settings: Any, given: CheckInputs, facts: Facts, device: str,
               threads: Optional[int]) -> None:
    from ..backends import descriptor_of

    spec, run = context.spec, context.run
    descriptor, backend = descriptor_of(spec.backend), run.backend(spec.backend)
    why_not = descriptor.unavailable_reason(spec, device) or backend.unavailable_reason(spec, device)
    if why_not and not descriptor.audit_without_library:  # nothing to learn from the model here
        raise StageSkip(Stage.AVAILABILITY, why_not)
    mut = reference.model_under_test(given.model, given.example_inputs, dynamic_batch=settings.dynamic_batch,
                                     device=device, notes=facts.warnings)
    facts.add(model_name=mut.name, model_hash=mut.hash, inputs_hash=mut.inputs_hash, state_hash=mut.identity.state,
              widened=mut.widened)
    if settings.keep_fp32:
        from ..model.precision import TORCH_BACKENDS, KeepFp32Error, check_keepable, check_module_names

        try:
            check_module_names(mut.module, settings.keep_fp32)
            # PyTorch engines below FP32 cast the model's parameters (tied ones too); the others do not.
            check_keepable(mut.module, settings.keep_fp32,
                           casts_parameters=spec.backend in TORCH_BACKENDS and spec.precision != "fp32")
        except KeepFp32Error as err:
            raise StageFailure(Stage.MODEL, str(err)) from None
    if note := mut.identity_note():
        facts.warnings.append(note)
    artifacts = run.artifacts(mut, context.cache)
    if why_not:  # the backend's support table still says which nodes would not run where it does
        with toolchain_warnings_shown():  # the audit's export: the toolchain's warnings, as in the stages below
            predicted_audit, predicted = prebuild.predicted_gaps(artifacts, descriptor, device, settings)
        facts.add(audit=tuple(predicted_audit))
        raise StageSkip(Stage.AVAILABILITY, why_not + predicted)
    # Keyed by the inputs' values too: a test's parameter sets, or two checks in one test, often
    # share the model and the shapes but not the values.
    key = (mut.reference_key, device, settings.tf32, threads)
    twice = not settings.allow_nondeterministic
    eager = run.references.get_or((*key, twice),
                                  lambda: reference.eager_reference(mut, device, settings.tf32, twice=twice))
    expected = eager.outputs
    facts.warnings.extend(eager.notes)
    reference.judge_reference(expected, spec.precision, settings.allow_degenerate,
                              measure=lambda: reference.activation_trail(mut, device),
                              inputs=lambda: reference.nonfinite_inputs(mut))
    facts.add(reference=reference.describe_reference(device, settings.tf32), gpu=gpu_facts(device))
    # From here on the toolchain runs (exporters, compilers, ONNX Runtime): a warning about its own internals
    # is shown, not raised by an `error` filter (core/warning_filters.py); the reference above keeps the run's.
    with toolchain_warnings_shown():
        deadline = build.Deadline(settings.build_timeout)  # covers the export, conversions, calibration, build
        if descriptor.audit_target(device):
            with context.build_lock():  # an export is CPU work like a build: never beside another worker's timing
                build.export_in_time(artifacts, deadline, context.progress)
        # The export made before the build (for the audit) is part of what the engine cost: "build s"
        # counts it, or ONNX engines would read as free beside an Inductor compile that traces inside.
        exported_s = artifacts.seconds.get("onnx", 0.0)
        facts.add(audit=tuple(prebuild.audit_before_build(artifacts, descriptor, device, settings)))
        # Engines build and run under the reference's TF32 setting: an FP32 engine is then true FP32.
        with reference.tf32_setting(device, settings.tf32):
            memory = latency.device_memory_tracker(device)
            engine, request = build_stage(context, backend, artifacts, deadline, settings, given, facts, device,
                                          exported_s)
            if memory is not None:
                memory.mark_build()
            repairing = False
            try:
                prepared, found = check_outputs(backend, engine, request, mut, expected, device, settings, facts)
                timed = time_engine(context, backend, engine, request, prepared, mut, settings, facts, device)
                if memory is not None:
                    timed = replace(timed, device_memory=latency.device_memory(memory, device))
                    facts.add(latency=timed)
                if context.engine_probe is not None:
                    context.engine_probe(engine, prepared)
                # The repaired engine is timed under a short plan: the failing one is too, before it goes, so the
                # answer's p50 change compares like with like (not a full timing with a half-second one).
                repairing = settings.repair_precision and not found.passed and repair.applies(request, found)
                failing_p50 = repair.short_p50(engine, prepared, mut, device, settings, context.timing_lock) \
                    if repairing else None
            finally:
                engine.close()
            if repairing:
                facts.add(repair=repair_precision(context, backend, request, mut, expected, settings, found,
                                                  failing_p50))
        from ..backends import reference_spec

        if spec == reference_spec():
            # The eager FP32 item's own timing is the reference: no second timing of the same engine.
            facts.add(reference_latency=run.reference_latencies.put(key, timed))
        else:
            facts.add(reference_latency=run.reference_latencies.get_or(
                key, lambda: latency.reference_latency(run.backend(reference_spec().backend), artifacts, device,
                                                       settings, context.timing_lock)))
        compare_with_baseline(context, settings, facts, device)


def build_stage(context: "CheckContext", backend: Any, artifacts: Any, deadline: Any, settings: Any,
                given: CheckInputs, facts: Facts, device: str, exported_s: float = 0.0) -> tuple[Any, Any]:
    """Stages CALIBRATION and BUILD; the build's figures are recorded whether or not it succeeds
    (``exported_s``: the export this item made before the build, counted in its build seconds)."""
    attempt = build.Attempt()
    try:
        request = build.build_request(context.spec, artifacts, device, settings, given.calibration, attempt)
        if request.calibration:  # an INT8 engine's error depends on its calibration data as on its inputs
            from ..model.under_test import inputs_hash

            combined = f"{artifacts.model.inputs_hash}:{inputs_hash(request.calibration)}"
            facts.add(inputs_hash=hashlib.sha256(combined.encode()).hexdigest()[:32])
        with context.build_lock():  # builds of several workers overlap, never a CPU timing
            engine = build.build_engine(backend, request, deadline=deadline, progress=context.progress,
                                        attempt=attempt)
    finally:
        facts.warnings.extend(attempt.notes)
        facts.add(build_seconds=exported_s + attempt.seconds, cache=attempt.cache, calibration=attempt.calibration,
                  recipe=attempt.recipe, export=build.export_info(artifacts, facts.warnings))
    return engine, request


def time_engine(context: "CheckContext", backend: Any, engine: Any, request: Any, prepared: Any, mut: Any,
                settings: Any, facts: Facts, device: str) -> LatencyStats:
    """Stage LATENCY: the timing (and, on CUDA, the kernel time that says whether it is launch-bound), the
    budget with its confidence, and what explains or extends it; returns the timing as recorded."""
    from ..measure import call_path

    measured = latency.measure(engine, prepared, mut, device, settings, context.timing_lock, kernel_pass=True,
                               cuda_graph=context.spec.cuda_graphs, warnings=facts.warnings)
    timed = replace(measured, budget_verdict=latency.budget_verdict(measured, settings))
    # the timed call's host path beside its timing (the same warm and cold: call_path.py)
    facts.add(latency=timed, call_path=call_path.measure(engine, lambda: engine.run(prepared)))
    budget = timed.budget_verdict
    # The profile explains a budget not decided within (failed, or undecided, which --infer-baseline-strict fails).
    if (budget is not None and budget.decision.value != "pass") or settings.profile:
        facts.add(profile=latency.profile(engine, prepared, mut, device, backend.onnx_model(request), facts.warnings,
                                          backend.descriptor.profiler, timed))
    if settings.max_batch_search and settings.budget is None:
        facts.notes.append(f"max_batch_search={settings.max_batch_search} searched nothing: it finds the largest "
                              "batch within a latency budget, and none is set (budget= or --infer-budget)")
    elif settings.max_batch_search:
        found = latency.search_max_batch(engine, mut, device, settings, context.timing_lock)
        facts.add(max_batch=found)
        stopped = next((trial for trial in found.trials if trial.verdict is None), None)
        if stopped is not None:  # a batch the engine could not take: a static export, a CUDA graph
            hint = "" if mut.dynamic_batch else ": the engine was exported for the example's batch; give " \
                "dynamic_batch=True to search other batches"
            facts.notes.append(f"max_batch_search stopped at batch {stopped.batch}, which the engine could not run "
                                  f"({stopped.error}){hint}")
    return timed


def check_outputs(backend: Any, engine: Any, request: Any, mut: Any, expected: reference.Reference, device: str,
                  settings: Any, facts: Facts) -> tuple[Any, AccuracyResult]:
    """Stages RUN and ACCURACY: the engine's outputs against the reference; returns the prepared inputs and
    the accuracy as recorded."""
    try:
        prepared, outputs = build.first_run(engine, request.spec, mut.inputs)
    except StageFailure as failure:
        from ..model.precision import quantized_run_hint

        hint = quantized_run_hint(request, f"{failure}\n{failure.detail}", mut.inputs) if failure.stage == Stage.RUN \
            else None
        if hint is None:
            raise
        raise StageFailure(Stage.RUN, f"{failure}\n{indent(hint)}", failure.detail) from None
    facts.add(cuda_graph_drift=getattr(engine, "graph_difference", None))
    base, per_output = accuracy.tolerances(request.spec.precision, settings, [name for name, _ in expected])
    found = accuracy.compare(outputs, expected, base, per_output)
    facts.add(accuracy=found)
    if not found.passed:
        padded = accuracy.masked_positions_note(outputs, expected, found, mut.inputs)
        if padded:
            facts.notes.append(padded)
        # Localised under the bound the first failing output was held to: a per-output tolerance tighter than
        # the precision's default (tolerances=) failed it, and the default would find no node beyond it.
        bound = next((output.tolerance for output in found.outputs if not output.passed), base)
        facts.add(divergence=accuracy.locate_divergence(backend, request, bound, facts.warnings))
    if mut.dynamic_batch and not request.spec.cuda_graphs:  # a graph replays one shape by design
        facts.add(dynamic_batch=accuracy.check_doubled_batch(engine, mut, device, settings.tf32, base, per_output))
    return prepared, found


def repair_precision(context: "CheckContext", backend: Any, request: Any, mut: Any, expected: reference.Reference,
                     settings: Any, failing: AccuracyResult, failing_p50: Optional[float]) -> RepairResult:
    """The keep-list search after an accuracy failure that repair.applies to (check/repair.py).
    ``failing_p50``: the failing engine's p50 under the repair's short plan (repair.short_p50)."""
    tolerances = accuracy.tolerances(request.spec.precision, settings, [name for name, _ in expected])
    return repair.repair(repair.Repairing(context, backend, request, mut, expected, settings, tolerances,
                                          failing, failing_p50))


def compare_with_baseline(context: "CheckContext", settings: Any, facts: Facts, device: str) -> None:
    """The machine key is always recorded (a saved report can be gated later); the comparison with the
    baseline entry when a baseline is given (what it means is the verdict's to say)."""
    from ..baseline.key import machine_key

    facts.add(machine=machine_key(device, backend=context.spec.backend))
    store = context.baseline() if context.baseline is not None else None
    if store is None:
        return
    from ..baseline.comparison import compare_with_entry

    facts.add(baseline=compare_with_entry(facts.result(), store, settings,
                                          across_versions=settings.baseline_across_versions))


def gpu_facts(device: str) -> Optional[dict[str, Any]]:
    if not device.startswith("cuda"):
        return None
    from ..backends.environment import gpu_info

    return gpu_info()


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
