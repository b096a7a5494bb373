"""The ``infercheck`` fixture's callable: the whole flow for one engine spec.

model + inputs -> reference -> artifacts/build -> outputs vs reference -> timing -> verdict.
Each stage's failure becomes this item's failure with the stage named; nothing propagates to the
session.  The result is recorded whatever happens, so the summary and reports see every item.
"""

from __future__ import annotations

import traceback
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import pytest

from .progress import BuildTimeout
from .results import AccuracyResult, CheckResult, LatencyStats
from .settings import CALL_KEYS, CheckSettings, Layer, parse_layer, resolve
from .spec import EngineSpec

class InfercheckWarning(UserWarning):
    """Something the user should know that does not fail the check (e.g. generated calibration data)."""


class StageFailure(Exception):
    """A stage could not complete: ``stage`` names it, the message says why in a few lines."""

    def __init__(self, stage: str, message: str, detail: Optional[str] = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.detail = detail


class _Memo(OrderedDict):
    """A small LRU: reference outputs and reference timings are shared by a test's items."""

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value


_references = _Memo()
_reference_latencies = _Memo()


@dataclass
class CheckContext:
    """What the fixture knows about the item: its spec, the settings layers below the call, where to record."""

    nodeid: str
    spec: EngineSpec
    layers: list[Layer]
    cache: Any  # EngineCache
    record: Callable[[CheckResult], None]
    gpu_lock: Optional[Callable[[], Any]] = None  # a context manager factory serialising GPU timing
    progress: Any = None  # a progress.ProgressReporter: long builds print "building ..." lines through it
    # Called with (engine, prepared inputs) after timing, before the engine closes: lets a benchmark
    # time the very engine the check timed with another tool.
    engine_probe: Optional[Callable[[Any, Any], None]] = None
    baseline: Optional[Callable[[], Any]] = None  # -> the BaselineStore (read lazily), or None without one


class Infercheck:
    """``infercheck(model, example_inputs, calibration=None, **settings) -> CheckResult``.

    Raises pytest's failure (with a message naming what fell short) when the engine fails its
    accuracy or latency check, and pytest's skip when the engine cannot run here.  Use
    ``raise_on_failure=False`` to get the result back and assert on it yourself.
    """

    def __init__(self, context: CheckContext) -> None:
        self.context = context
        self.results: list[CheckResult] = []

    @property
    def spec(self) -> EngineSpec:
        return self.context.spec

    def audit(self, model: Any, example_inputs: Any = None, *, targets: Optional[Iterable[str]] = None,
              trt_version: Optional[str] = None, allow_ops: Iterable[str] = (),
              allow_nodes: Iterable[str] = ()) -> Any:
        """The compatibility audit (``AuditReport``) of ``model`` for the test's own assertions.

        ``targets`` defaults to this item's backend (onnxruntime on the CPU or CUDA, tensorrt), or
        tensorrt and onnxruntime for backends the audit does not cover.  Known gaps given here or
        in the marker (allow_ops=/allow_nodes=) are marked allowed and stop blocking.
        """
        from .audit.engine_gate import backend_target
        from .audit.runner import DEFAULT_TARGETS, audit

        settings = resolve(self.context.layers)
        if targets is None:
            own = backend_target(self.spec.backend, resolve_device(settings.device))
            targets = [own] if own else list(DEFAULT_TARGETS)
        return audit(model, example_inputs, targets=targets, trt_version=trt_version,
                     allow_ops=[*settings.allow_ops, *allow_ops], allow_nodes=[*settings.allow_nodes, *allow_nodes],
                     dynamic_batch=settings.dynamic_batch)

    def __call__(self, model: Any, example_inputs: Any, *, calibration: Optional[Iterable[Any]] = None,
                 raise_on_failure: bool = True, **overrides: Any) -> CheckResult:
        settings = resolve(self.context.layers + [("fixture call", parse_layer("infercheck() call", overrides, CALL_KEYS))])
        spec = self.context.spec
        result = CheckResult(nodeid=self.context.nodeid, spec_id=spec.id, backend=spec.backend,
                             precision=spec.precision, cuda_graphs=spec.cuda_graphs,
                             budget=str(settings.budget) if settings.budget else None,
                             settings=settings.describe())
        self.results.append(result)
        try:
            _Run(self.context, settings, result).execute(model, example_inputs, calibration)
        except StageFailure as failure:
            result.outcome, result.stage = "failed", failure.stage
            result.failures.append(f"{failure.stage}: {failure}")
            result.traceback = failure.detail
        finally:
            result.message = failure_message(result) if result.failures else result.message
            self.context.record(result)
        for note in result.warnings:
            warnings.warn(InfercheckWarning(f"{spec.id}: {note}"), stacklevel=2)
        if result.outcome == "skipped":
            # Point the skip at the test, not at this line (what pytest's own skip marker does).
            raise pytest.skip.Exception(result.message, _use_item_location=True)
        if result.failures and raise_on_failure:
            pytest.fail(result.message, pytrace=False)
        return result


class _Run:
    """One pass of the flow; fills ``result`` as it goes."""

    def __init__(self, context: CheckContext, settings: CheckSettings, result: CheckResult) -> None:
        self.context = context
        self.settings = settings
        self.result = result
        self.spec = context.spec
        self.artifacts: Any = None  # ModelArtifacts, made once and shared by the audit gate and the build
        self.request: Any = None  # the BuildRequest, kept for divergence localisation
        self.tolerance: Any = None  # the precision's tolerance after overrides, kept for the same

    def execute(self, model: Any, example_inputs: Any, calibration: Optional[Iterable[Any]]) -> None:
        from .cpu_threads import cpu_threads, resolve_threads

        device = resolve_device(self.settings.device)
        self.result.device = device
        threads = resolve_threads(self.settings.threads) if device == "cpu" else None
        if threads is not None:
            self.result.extra["cpu_threads"] = threads
        with cpu_threads(threads):  # every engine and the reference run with the same thread count
            self._execute_on(device, model, example_inputs, calibration)

    def _execute_on(self, device: str, model: Any, example_inputs: Any, calibration: Optional[Iterable[Any]]) -> None:
        from .backends import get_backend

        backend = get_backend(self.spec.backend)
        reason = backend.unavailable_reason(self.spec, device)
        if reason:
            prediction = self._predicted_gaps(model, example_inputs, device) if self.spec.backend == "tensorrt" else ""
            self.result.outcome, self.result.stage = "skipped", "availability"
            self.result.message = f"{self.spec.id}: {reason}{prediction}"
            return
        mut = self._model(model, example_inputs)
        reference = self._reference(mut, device)
        if device.startswith("cuda"):
            from .environment import gpu_info

            self.result.extra["gpu"] = gpu_info()
            self.result.extra["reference"] = f"eager FP32 on {device}, TF32 {'on' if self.settings.tf32 else 'off'}"
        if self._audit_gate(mut, device):
            return  # every gap the audit found is declared known (allow_ops/allow_nodes): skipped, naming them
        # Engines build and run under the reference's TF32 setting: an FP32 engine is then true FP32.
        with _tf32(device, self.settings.tf32):
            engine = self._build(backend, mut, device, calibration)
            try:
                prepared, outputs = self._run_engine(engine, mut)
                self.result.accuracy = self._compare(outputs, reference)
                if not self.result.accuracy.passed:
                    self._localise_divergence(backend, mut)
                if mut.dynamic_batch and not self.spec.cuda_graphs:  # a graph replays one shape by design
                    self._check_other_batch(engine, mut, device)
                self.result.latency = self._time(engine, prepared, mut.batch_size, device, mut.inputs)
                if self.context.engine_probe is not None:
                    self.context.engine_probe(engine, prepared)
            finally:
                engine.close()
        self.result.reference_latency = self._reference_latency(mut, device, backend)
        self._verdict()

    # -- stages ---------------------------------------------------------------------------------

    def _artifacts(self, mut: Any) -> Any:
        if self.artifacts is None:
            from .artifacts import ModelArtifacts

            self.artifacts = ModelArtifacts(mut, self.context.cache)
        return self.artifacts

    def _audit_gate(self, mut: Any, device: str) -> bool:
        """The audit stage for this backend on the exported ONNX, before the build (see audit/engine_gate.py).

        Fails the item with the offending nodes when the backend cannot run them; skips it when every
        such node is a declared known gap; returns False (go on and build) otherwise.
        """
        from .audit.engine_gate import backend_target, gate, listing
        from .export import ExportError

        if backend_target(self.spec.backend, device) is None:
            return False
        try:
            onnx_path = self._artifacts(mut).onnx_path()
        except ExportError:
            return False  # the build stage reports the export failure with its own message
        verdict = gate(onnx_path, self.spec.backend, device, allow_ops=self.settings.allow_ops,
                       allow_nodes=self.settings.allow_nodes)
        if verdict is None:
            return False
        self.result.extra["audit"] = verdict.as_dicts()
        self.result.warnings.extend(f"audit: {f.describe()}" for f in verdict.notes)
        if verdict.blocking:
            raise StageFailure("audit", f"{self.spec.backend} cannot run {len(verdict.blocking)} node(s) of "
                               f"{mut.name}; offending nodes:\n{listing(verdict.blocking)}")
        if verdict.allowed_blocking:
            self.result.outcome, self.result.stage = "skipped", "audit"
            self.result.message = (f"{self.spec.id}: only known gaps (allowed): the engine cannot be built, "
                                   f"nothing new to check:\n{listing(verdict.allowed_blocking)}")
            return True
        return False

    def _predicted_gaps(self, model: Any, example_inputs: Any, device: str) -> str:
        """Where TensorRT cannot run here, say what its operator table predicts for this model.

        The item still skips (nothing was built), but a CPU-only CI run learns that the model
        would not parse, node by node, before anyone books a GPU machine.
        """
        from .audit.engine_gate import gate, listing
        from .export import ExportError

        try:
            mut = self._model(model, example_inputs)
            verdict = gate(self._artifacts(mut).onnx_path(), "tensorrt", device, allow_ops=self.settings.allow_ops,
                           allow_nodes=self.settings.allow_nodes)
        except (ExportError, StageFailure):
            return ""  # the model does not even export: the items that can run say so
        if verdict is None or not verdict.blocking:
            return ""
        self.result.extra["audit"] = verdict.as_dicts()
        return f"; where it runs, it could not run {len(verdict.blocking)} node(s) of this model:\n{listing(verdict.blocking)}"

    def _localise_divergence(self, backend: Any, mut: Any) -> None:
        """On an accuracy failure only: the first node of the engine's ONNX model that leaves tolerance.

        Covers engines that run an ONNX model derived from the FP32 export (the backend says which
        through ``model_path``); the FP32 export run on ONNX Runtime is the reference.
        """
        model_path = getattr(backend, "model_path", None)
        if model_path is None or self.request is None or self.spec.precision == "fp32":
            return  # an FP32 engine runs the reference's own ONNX model: no intermediate to compare
        from .divergence import feeds_for, locate_divergence

        try:
            reference = self._artifacts(mut).onnx_path()
            divergence = locate_divergence(reference, model_path(self.request), feeds_for(reference, mut.inputs),
                                           self.tolerance)
        except Exception as exc:  # localisation explains a failure; it must never replace it
            self.result.warnings.append(f"divergence localisation failed: {_short(exc)}")
            return
        if divergence is not None:
            self.result.extra["divergence"] = {**divergence.to_dict(), "summary": divergence.describe()}

    def _model(self, model: Any, example_inputs: Any) -> Any:
        from .model import ModelUnderTest

        self.result.model_name = type(model).__name__  # in the failure's header even when the inputs are refused
        try:
            mut = ModelUnderTest.create(model, example_inputs, dynamic_batch=self.settings.dynamic_batch)
        except TypeError as err:
            raise StageFailure("inputs", str(err)) from None
        self.result.model_name = mut.name
        self.result.model_hash = mut.hash
        return mut

    def _reference(self, mut: Any, device: str) -> list[tuple[str, Any]]:
        from .model import to_numpy

        def run_reference() -> list[tuple[str, Any]]:
            with _tf32(device, self.settings.tf32):
                return [(name, to_numpy(tensor)) for name, tensor in mut.reference_outputs(device)]

        from .model import ModelCopyError
        from .outputs import OutputError

        try:
            return _references.get_or((mut.hash, device, self.settings.tf32), run_reference)
        except OutputError as err:
            raise StageFailure("outputs", str(err)) from None
        except ModelCopyError as err:
            raise StageFailure("model", str(err)) from None
        except Exception as exc:
            raise StageFailure("reference", f"the eager model itself failed: {_short(exc)}", traceback.format_exc()) from None

    def _build(self, backend: Any, mut: Any, device: str, calibration: Optional[Iterable[Any]]) -> Any:
        import time

        from .backends.base import BuildRequest
        from .export import ExportError
        from .locks import cpu_work_lock

        artifacts = self._artifacts(mut)
        request = self.request = BuildRequest(spec=self.spec, artifacts=artifacts, device=device,
                               compile_mode=self.settings.compile_mode, tf32=self.settings.tf32,
                               time_transfers=self.settings.time_transfers)
        if self.spec.precision == "int8":
            from .calibration import calibration_batches, value_range

            try:
                calib = calibration_batches(calibration, mut.inputs, mut.module)
            except ValueError as err:
                raise StageFailure("calibration", str(err)) from None
            request.calibration, request.calibration_generated = calib.batches, calib.generated
            self.result.warnings.extend(calib.notes)
            self.result.extra["calibration"] = {
                "batches": len(request.calibration), "generated": request.calibration_generated,
                "range": value_range(request.calibration), "example_range": value_range([mut.inputs])}
        start = time.perf_counter()
        try:
            with cpu_work_lock():  # builds of several workers overlap, never a CPU timing
                engine = self._build_with_deadline(backend, request, mut)
        except ExportError as err:
            raise StageFailure("export", f"{err.exporter} could not export {mut.name}:\n{_indent(err.reason)}",
                               err.detail) from None
        except StageFailure:
            raise
        except BuildTimeout as err:
            raise StageFailure("build", str(err)) from None
        except Exception as exc:
            raise StageFailure("build", f"the {self.spec.backend} backend could not build {self.spec.id}:\n"
                               f"{_indent(_short(exc))}", traceback.format_exc()) from None
        finally:
            self.result.build_seconds = time.perf_counter() - start
            self.result.cache = dict(artifacts.cache_states)
            self.result.warnings.extend(request.notes)
            _record_exporter(self.result, artifacts.export_info)
        return engine

    def _build_with_deadline(self, backend: Any, request: Any, mut: Any) -> Any:
        """The backend's build with progress lines and --infer-build-timeout; then the CUDA graph wrapper."""
        from .cudagraphs import wrap_for_graphs
        from .progress import run_build

        engine = run_build(lambda: backend.build(request), what=f"{self.spec.id} of {mut.name}",
                           timeout_s=self.settings.build_timeout, reporter=self.context.progress)
        return wrap_for_graphs(engine, self.spec.cuda_graphs)

    def _run_engine(self, engine: Any, mut: Any) -> tuple[Any, list[Any]]:
        from .cudagraphs import CudaGraphError

        try:
            prepared = engine.prepare(mut.inputs)
            outputs = engine.to_numpy(engine.run(prepared))
        except CudaGraphError as err:
            raise StageFailure("cuda-graph", f"{self.spec.id}: {err}", traceback.format_exc()) from None
        except Exception as exc:
            raise StageFailure("run", f"the {self.spec.id} engine failed on the example inputs:\n{_indent(_short(exc))}",
                               traceback.format_exc()) from None
        if getattr(engine, "graph_difference", None) is not None:
            self.result.extra["cuda_graph_drift"] = engine.graph_difference  # in units of the allowed drift
        return prepared, outputs

    def _compare(self, outputs: list[Any], reference: list[tuple[str, Any]]) -> AccuracyResult:
        from .compare import compare_outputs, tolerance_for

        s = self.settings
        base = self.tolerance = tolerance_for(self.spec.precision, atol=s.atol, rtol=s.rtol,
                                              max_mismatch=s.max_mismatch, min_cosine=s.min_cosine,
                                              max_rel_l2=s.max_rel_l2)
        from .outputs import OutputNameError, resolve_output_name

        names = [name for name, _ in reference]
        try:  # short names (logits) and full ones (output['logits']) alike
            named = {resolve_output_name(name, names): fields_ for name, fields_ in s.tolerances.items()}
        except OutputNameError as err:
            raise StageFailure("accuracy", f"tolerances: {err}") from None
        per_output = {name: tolerance_for(self.spec.precision, **{**_fields(base), **fields_})
                      for name, fields_ in named.items()}
        return compare_outputs(outputs, reference, base, per_output)

    def _check_other_batch(self, engine: Any, mut: Any, device: str) -> None:
        """A dynamic batch axis must really be dynamic: run at twice the batch and compare again."""
        from .model import ModelUnderTest, to_numpy

        doubled = ModelUnderTest(mut.module, mut.inputs.doubled(), True, mut.name)
        try:
            with _tf32(device, self.settings.tf32):
                reference = [(name, to_numpy(t)) for name, t in doubled.reference_outputs(device)]
        except Exception as exc:  # the eager model itself cannot take the doubled batch
            self.result.failures.append(f"dynamic batch: the eager model fails at batch {doubled.batch_size}: {_short(exc)}")
            return
        try:
            outputs = engine.to_numpy(engine.run(engine.prepare(doubled.inputs)))
        except Exception as exc:
            self.result.failures.append(f"dynamic batch: the engine rejects batch {doubled.batch_size} "
                                        f"(exported at {mut.batch_size}): {_short(exc)}")
            return
        accuracy = self._compare(outputs, reference)
        self.result.extra["dynamic_batch"] = {"batch": doubled.batch_size, "passed": accuracy.passed}
        if not accuracy.passed:
            from .compare import describe_failure

            detail = accuracy.structure_error or "; ".join(describe_failure(o) for o in accuracy.outputs if not o.passed)
            self.result.failures.append(f"dynamic batch: at batch {doubled.batch_size}: {detail}")

    def _time(self, engine: Any, prepared: Any, batch_size: int, device: str,
              host_inputs: Optional[Sequence[Any]] = None) -> LatencyStats:
        from .timing import TimingPlan, timer_for

        plan = TimingPlan(warmup=self.settings.warmup, min_iters=self.settings.min_iters,
                          max_iters=max(self.settings.max_iters, 1), min_time=self.settings.min_time)
        timer = timer_for(device, getattr(engine, "stream", None))
        run: Callable[[], Any] = lambda: engine.run(prepared)  # noqa: E731
        transfers = bool(self.settings.time_transfers and device.startswith("cuda") and host_inputs is not None)
        if transfers:
            # Host inputs in, host outputs out: what a caller holding CPU tensors waits for.
            run = lambda: engine.to_numpy(engine.run(engine.prepare(host_inputs)))  # noqa: E731
        with self._gpu_lock(device):
            try:
                return timer.measure(run, plan, batch_size=batch_size, includes_transfers=transfers)
            except Exception as exc:
                raise StageFailure("latency", f"timing the engine failed: {_short(exc)}", traceback.format_exc()) from None

    def _reference_latency(self, mut: Any, device: str, backend: Any) -> Optional[LatencyStats]:
        """The eager FP32 engine's timing, measured once per model and device, for the speedup column.

        The eager-fp32 item's own timing becomes the figure later items divide by, so their speedup
        agrees with the eager-fp32 row of the table.
        """
        key = (mut.hash, device, self.settings.tf32, self.result.extra.get("cpu_threads"))
        if self.spec.backend == "eager" and self.spec.precision == "fp32" and not self.spec.cuda_graphs:
            if self.result.latency is not None:
                _reference_latencies.pop(key, None)  # this row's figure replaces one measured apart
                _reference_latencies.get_or(key, lambda: self.result.latency)
            return self.result.latency
        from .backends import get_backend
        from .backends.base import BuildRequest
        from .artifacts import ModelArtifacts

        def measure() -> Optional[LatencyStats]:
            eager = get_backend("eager")
            spec = EngineSpec("eager", "fp32")
            engine = eager.build(BuildRequest(spec=spec, artifacts=ModelArtifacts(mut, self.context.cache), device=device))
            try:
                prepared = engine.prepare(mut.inputs)
                return self._time(engine, prepared, mut.batch_size, device)
            finally:
                engine.close()

        try:
            return _reference_latencies.get_or(key, measure)
        except StageFailure:
            return None

    def _verdict(self) -> None:
        accuracy, latency, budget = self.result.accuracy, self.result.latency, self.settings.budget
        failures = self.result.failures
        if accuracy is not None and not accuracy.passed:
            from .compare import describe_failure

            if accuracy.structure_error:
                failures.append(f"accuracy: {accuracy.structure_error}")
            failures.extend(f"accuracy: {describe_failure(output)}" for output in accuracy.outputs if not output.passed)
            if "divergence" in self.result.extra:
                failures.append(f"accuracy: {self.result.extra['divergence']['summary']}")
            if "calibration" in self.result.extra:
                from .calibration import calibration_hint

                failures.append(f"calibration: {calibration_hint(self.result.extra['calibration'])}")
        if budget is not None and latency is not None:
            value = latency.statistic(budget.statistic)
            if value > budget.limit_ms:
                failures.append(f"latency: {budget.statistic} {value:.3f} ms > budget {budget.limit_ms:g} ms "
                                f"(over by {value / budget.limit_ms - 1:.1%}; {latency.describe()})")
        store = self.context.baseline() if self.context.baseline is not None else None
        if store is not None:
            from .gate import judge

            failures.extend(judge(self.result, store, self.settings))
        if failures:
            self.result.outcome = "failed"
            self.result.stage = failures[0].split(":", 1)[0]

    @contextmanager
    def _gpu_lock(self, device: str) -> Iterator[None]:
        if device.startswith("cuda") and self.context.gpu_lock is not None:
            with self.context.gpu_lock():
                yield
        elif not device.startswith("cuda"):
            from .locks import timing_lock

            with timing_lock(device):  # one CPU timing at a time across xdist workers
                yield
        else:
            yield


def failure_message(result: CheckResult) -> str:
    """What fell short, by how much: the first line names the item, one line (or block) per failure."""
    head = f"{result.spec_id} on {result.device or '?'}" + (f" ({result.model_name})" if result.model_name else "")
    lines = [f"infercheck {head} failed:"] + [f"  - {failure}" for failure in result.failures]
    lines += [f"  note: {warning}" for warning in result.warnings]
    return "\n".join(lines)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def _tf32(device: str, allow: bool) -> Iterator[None]:
    """The CUDA reference is true FP32 unless the user allows TF32: save, set, restore torch's flags."""
    if not device.startswith("cuda"):
        yield
        return
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _record_exporter(result: CheckResult, export_info: dict[str, Any]) -> None:
    """Which exporter made the ONNX model, and a note when it was the fallback (and why)."""
    if export_info:
        result.extra["export"] = dict(export_info)
    if export_info.get("fallback_reason"):
        first = str(export_info["fallback_reason"]).splitlines()
        result.warnings.append(f"exported with {export_info['exporter']}: the dynamo exporter failed "
                               f"({'; '.join(line.strip() for line in first[:2])})")
    for frozen in export_info.get("frozen_values") or []:
        result.warnings.append(f"the trace froze a value {frozen}: the ONNX model is checked on inputs like the example's")


def _fields(tolerance: Any) -> dict[str, Any]:
    return {"atol": tolerance.atol, "rtol": tolerance.rtol, "max_mismatch": tolerance.max_mismatch,
            "min_cosine": tolerance.min_cosine, "max_rel_l2": tolerance.max_rel_l2}


def _short(exc: BaseException) -> str:
    from .export import short_reason

    return short_reason(exc)


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())
