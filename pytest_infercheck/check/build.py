"""The build stage: calibration data, the backend's build under the deadline, the CUDA graph wrapper,
and the engine's first run on the example inputs.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Optional

from ..measure.results import CalibrationInfo, ExportInfo, PrecisionRecipe
from ..core.spec import Stage
from .failure import BATCH_OF_ONE, EXPORT_BATCH_OF_ONE, StageFailure, StageSkip, indent, short

if TYPE_CHECKING:
    from ..backends.artifacts import ModelArtifacts
    from ..backends.base import Backend, BuildRequest, Engine
    from ..core.spec import EngineSpec


@dataclass
class Attempt:
    """A build's figures whether or not it succeeded: the result records them either way."""

    seconds: float = 0.0
    cache: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    calibration: Optional[CalibrationInfo] = None
    recipe: Optional[PrecisionRecipe] = None


class Deadline:
    """--infer-build-timeout for everything a build needs: the export, conversions, calibration, the
    build itself (0 or ``off``: none).  Each step runs with what is left of it."""

    def __init__(self, timeout_s: Optional[float]) -> None:
        self.timeout_s = timeout_s or None
        self.start = time.monotonic()

    def remaining(self) -> Optional[float]:
        if self.timeout_s is None:
            return None
        return max(self.timeout_s - (time.monotonic() - self.start), 1e-3)


def export_in_time(artifacts: "ModelArtifacts", deadline: Deadline, progress: Any) -> None:
    """The ONNX export the pre-build audit reads, under the build's deadline; an export that fails is
    left for the build stage, which reports it with the exporter's reason."""
    from ..model.export import ExportError
    from ..core.progress import BuildTimeout, run_build

    try:
        run_build(artifacts.onnx_path, what=f"the ONNX export of {artifacts.model.name}",
                  timeout_s=deadline.remaining(), reporter=progress, limit_s=deadline.timeout_s)
    except ExportError:
        return
    except BuildTimeout as err:
        raise StageFailure(Stage.EXPORT, str(err)) from None
    except OSError:  # a full disk (ENOSPC, EFBIG) writing the export was a raw traceback at stage "test":
        return  # the build stage meets it again and reports it as a stage failure, with its reason


def build_request(spec: "EngineSpec", artifacts: "ModelArtifacts", device: str, settings: Any,
                  calibration: Optional[Iterable[Any]], attempt: Attempt) -> "BuildRequest":
    """Stage CALIBRATION (INT8 only) and the request every backend builds from."""
    from ..backends.base import BuildRequest

    request = BuildRequest(spec=spec, artifacts=artifacts, device=device, compile_mode=settings.compile_mode,
                           trt_target=settings.trt_target, tf32=settings.tf32, time_transfers=settings.time_transfers,
                           int8_ops=settings.int8_ops, keep_fp32=settings.keep_fp32,
                           fp8_granularity=settings.fp8_granularity)
    if spec.precision == "int8" and not (calibration is None and _calibration_optional(spec)):
        from ..backends import descriptor_of
        from ..model.calibration import calibration_batches, dtype_mismatch, shape_mismatch, value_range

        model = artifacts.model
        try:
            chosen = calibration_batches(calibration, model.inputs, model.module)
        except ValueError as err:
            raise StageFailure(Stage.CALIBRATION, str(err)) from None
        if model.widened:  # the example inputs were checked in their FP32 form (ModelUnderTest.create): so are these
            from ..model.under_test import LOW_PRECISION_FLOATS

            chosen = dataclasses.replace(chosen, batches=[batch.widened(LOW_PRECISION_FLOATS)
                                                          for batch in chosen.batches])
        # Backends that calibrate the ONNX export (its shapes fixed) need batches of the example's shapes;
        # torchao's static INT8 calibrates the eager module, which takes any.
        onnx_calibrated = "int8" in descriptor_of(spec.backend).onnx_variants
        mismatch = (shape_mismatch(chosen.batches, model.inputs, model.dynamic_batch)
                    or dtype_mismatch(chosen.batches, model.inputs)) if onnx_calibrated else None
        if mismatch is not None:
            raise StageFailure(Stage.CALIBRATION, mismatch)
        request.calibration, request.calibration_generated = chosen.batches, chosen.generated
        attempt.notes.extend(chosen.notes)
        attempt.calibration = CalibrationInfo(len(chosen.batches), chosen.generated, tuple(value_range(chosen.batches)),
                                              tuple(value_range([model.inputs])))
    return request


def _calibration_optional(spec: "EngineSpec") -> bool:
    """The backend's INT8 engine needs no calibration data (torchao's dynamic INT8)."""
    from ..backends import descriptor_of

    return descriptor_of(spec.backend).int8_calibration_optional


def build_engine(backend: "Backend", request: "BuildRequest", *, deadline: Deadline, progress: Any,
                 attempt: Attempt) -> "Engine":
    """Stage EXPORT/BUILD: the backend's build with progress lines and the deadline, then CUDA graphs."""
    from ..backends.base import BuiltButCannotRun
    from ..backends.cudagraphs import wrap_for_graphs
    from ..model.export import ExportError
    from ..core.progress import BuildTimeout, run_build

    spec, model = request.spec, request.artifacts.model
    start = time.perf_counter()
    try:
        engine = run_build(lambda: backend.build(request), what=f"{spec.id} of {model.name}",
                           timeout_s=deadline.remaining(), reporter=progress, limit_s=deadline.timeout_s)
        if request.keep_fp32 and spec.precision != "fp32" and request.recipe is None:
            from ..model.precision import not_honoured

            not_honoured(request, backend.descriptor.keep_fp32_gap or "the backend has no way to run modules in FP32")
        return wrap_for_graphs(engine, spec.cuda_graphs)
    except ExportError as err:
        hint = f"\n      {EXPORT_BATCH_OF_ONE}: {BATCH_OF_ONE}" if "0/1 specialized" in err.reason else ""
        raise StageFailure(Stage.EXPORT, f"{err.exporter} could not export {model.name}:\n{indent(err.reason)}{hint}",
                           err.detail) from None
    except StageFailure:
        raise
    except BuiltButCannotRun as built:  # a real build, then a skip that says what running it needs
        raise StageSkip(Stage.RUN, str(built)) from None
    except BuildTimeout as err:
        raise StageFailure(Stage.BUILD, str(err)) from None
    except Exception as exc:
        raise StageFailure(Stage.BUILD, f"the {spec.backend} backend could not build {spec.id}:\n"
                           f"{indent(short(exc))}", traceback.format_exc()) from None
    finally:
        attempt.seconds = time.perf_counter() - start
        attempt.cache = dict(request.artifacts.cache_states)
        attempt.notes += request.notes
        attempt.recipe = request.recipe


def export_info(artifacts: "ModelArtifacts", notes: list[str]) -> Optional[ExportInfo]:
    """Which exporter made the ONNX model (None when none was made), with a note on a fallback and on
    every value a trace froze."""
    info = artifacts.export_info
    if not info:
        return None
    if info.get("fallback_reason"):
        first = str(info["fallback_reason"]).splitlines()
        notes.append(f"exported with {info['exporter']}: the dynamo exporter failed "
                     f"({'; '.join(line.strip() for line in first[:2])})")
    notes.extend(frozen_value_notes(info.get("frozen_values") or []))
    return ExportInfo(str(info["exporter"]), info.get("fallback_reason"), tuple(info.get("frozen_values") or ()))


def frozen_value_notes(frozen_values: list[str], shown: int = 3) -> list[str]:
    """One note per place a trace froze values, with how often, the first ``shown`` places only: a
    detection model's trace freezes the same line of torchvision's code many times over."""
    counts: dict[str, int] = {}
    for frozen in frozen_values:
        counts[frozen] = counts.get(frozen, 0) + 1
    notes = [f"the trace froze a value {frozen}{f' ({n} times)' if n > 1 else ''}: the ONNX model is checked on "
             "inputs like the example's" for frozen, n in list(counts.items())[:shown]]
    if len(counts) > shown:
        rest = list(counts.values())[shown:]
        notes.append(f"the trace froze {sum(rest)} more values at {len(rest)} other places (the JSON report lists them)")
    return notes


def first_run(engine: "Engine", spec: "EngineSpec", inputs: Any) -> tuple[Any, list[Any]]:
    """Stage RUN: the engine's outputs on the example inputs (and the prepared inputs, for timing)."""
    from ..backends.cudagraphs import CudaGraphError

    try:
        prepared = engine.prepare(inputs)
        return prepared, engine.to_numpy(engine.run(prepared))
    except CudaGraphError as err:
        # The reason's first line (the item's header and pytest -rf's line name the engine already), then the
        # model's line and the detail.
        head, _, rest = str(err).partition("\n")
        raise StageFailure(Stage.CUDA_GRAPH, head + (f"\n{indent(rest)}" if rest else ""),
                           traceback.format_exc()) from None
    except Exception as exc:
        raise StageFailure(Stage.RUN, f"the {spec.id} engine failed on the example inputs:\n{indent(short(exc))}",
                           traceback.format_exc()) from None
