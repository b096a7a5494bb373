"""TensorRT-RTX: strongly typed engines built ahead of time for an explicit compute capability.

TensorRT-RTX (``pip install tensorrt-rtx``, module ``tensorrt_rtx``) has TensorRT's Python API,
is strongly typed like TensorRT 11 (no precision flags), and parses ONNX and builds engines
without a GPU.  So every item builds its engine for real, on any machine:

  fp32: the FP32 export        fp16: the FP16-converted ONNX model
  int8: the calibrated QDQ model, with its INT32 biases as float (onnx_variants: TensorRT's parser rule)
  -> trt_strongly_typed.write_engine(target=sm_XY) -> model.plan + build.json, in the engine cache

and then runs it only where it can: a CUDA GPU whose compute capability TensorRT-RTX supports
(SM75, 80, 86, 89, 120, 121: not Hopper's SM90) and is the one the engine was built for.
Elsewhere ``build`` raises ``base.BuiltButCannotRun``, whose message gives the engine's size and
build seconds and what running it needs: the check reports the item as skipped with that message.

The engine is built for the ``trt_target`` key (option ``--infer-trt-target``), default ``auto``:
the running GPU's capability when TensorRT-RTX supports it, else ``sm_89``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..core.spec import EngineSpec
from .base import ONNX_EXPORT, BackendDescriptor, BuildRequest, BuiltButCannotRun
from .trt_strongly_typed import (PLAN_FILE, TENSORRT_RTX, buildable_targets, deserialize, normalize_target,
                                 read_figures, write_engine)

DEFAULT_TARGET = "sm_89"  # Ada: the newest capability the lent machines never have, so builds are comparable

DESCRIPTOR = BackendDescriptor(
    name="tensorrt-rtx", implementation=f"{__name__}:TensorRTRtxBackend", precisions=("fp32", "fp16", "int8"),
    # cpu: the engine is built for real, then the item skips (BuiltButCannotRun); cuda: built and run
    # on SM75/80/86/89/120/121 (on SM90, Hopper, it builds and skips like on the CPU).
    devices=("cpu", "cuda"), libraries=(*ONNX_EXPORT, *TENSORRT_RTX.distributions), install=TENSORRT_RTX.install,
    audit_targets={"cpu": "tensorrt-rtx", "cuda": "tensorrt-rtx"},
    onnx_variants={"fp32": "fp32", "fp16": "fp16", "int8": "int8-qdq-trt"},
    profiler="tensorrt",
)


class TensorRTRtxBackend:
    descriptor = DESCRIPTOR

    def unavailable_reason(self, spec: EngineSpec, device: str) -> Optional[str]:
        """Only what stops the build: a CPU run still builds (then ``build`` raises BuiltButCannotRun)."""
        if not TENSORRT_RTX.available():
            return f"tensorrt_rtx is not installed: {TENSORRT_RTX.install}"
        return None

    def build(self, request: BuildRequest) -> Any:
        from .tensorrt import TensorRTEngine, onnx_output_names

        target = choose_target(request.trt_target, request.device)
        onnx_path = self.onnx_model(request)
        entry = build_entry(request, onnx_path, target)
        figures = read_figures(entry.path)
        blocker = run_blocker(request.device, target)
        if blocker:
            built = "built earlier (engine cache), not run" if entry.hit else "built, not run"
            raise BuiltButCannotRun(f"{built}: {figures.describe()}; {blocker}", figures)
        engine = deserialize(TENSORRT_RTX, entry.file(PLAN_FILE).read_bytes())
        variant = DESCRIPTOR.onnx_variants[request.spec.precision]
        request.note(f"TensorRT-RTX engine: {figures.describe()}, {variant} ONNX")
        return TensorRTEngine(engine, request.device, onnx_output_names(onnx_path), trt=TENSORRT_RTX.load())

    def onnx_model(self, request: BuildRequest) -> Path:
        from ..model.onnx_variants import onnx_variant

        return onnx_variant(request, DESCRIPTOR.onnx_variants[request.spec.precision])


def build_entry(request: BuildRequest, onnx_path: Path, target: str) -> Any:
    """The cached engine directory; the key holds the library version and the target capability."""
    from ..model.under_test import inputs_hash
    from .tensorrt_config import profile_shapes

    artifacts = request.artifacts
    names = artifacts.onnx_input_names() or []
    shapes = {name: tuple(t.shape) for name, t in zip(names, artifacts.model.inputs)}
    profiles = profile_shapes(shapes, dynamic_batch=artifacts.model.dynamic_batch)
    calibration = inputs_hash(request.calibration) if request.spec.precision == "int8" else "none"

    def build(directory: Path) -> None:
        write_engine(TENSORRT_RTX, onnx_path, directory, target=target, profiles=profiles)

    return artifacts.derived("tensorrt-rtx", build, precision=request.spec.precision,
                             library=f"tensorrt-rtx {TENSORRT_RTX.version()}", target=target,
                             profiles=profiles, calibration=calibration)


def supported_targets() -> tuple[str, ...]:
    return buildable_targets(TENSORRT_RTX.load())


def gpu_capability(device: str) -> Optional[str]:
    """"sm_89" for the CUDA device of this run; None on the CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    index = torch.device(device).index
    major, minor = torch.cuda.get_device_capability(torch.cuda.current_device() if index is None else index)
    return f"sm_{major}{minor}"


def choose_target(configured: Optional[str], device: str) -> str:
    """The capability to build for: the configured one, else this GPU's if supported, else DEFAULT_TARGET.

    A configured capability TensorRT-RTX cannot build for is a ValueError naming those it can.
    """
    supported = supported_targets()
    if configured and str(configured).strip().lower() != "auto":
        target = normalize_target(configured)
        if target not in supported:
            raise ValueError(f"trt_target={configured!r}: TensorRT-RTX {TENSORRT_RTX.version()} builds for "
                             f"{', '.join(supported)} (or auto)")
        return target
    here = gpu_capability(device)
    return here if here in supported else DEFAULT_TARGET


def run_blocker(device: str, target: str) -> Optional[str]:
    """Why an engine built for ``target`` cannot run on ``device`` (None when it can)."""
    if not device.startswith("cuda"):
        return f"running it needs an NVIDIA GPU of compute capability {target} (this run uses the CPU)"
    here = gpu_capability(device)
    supported = supported_targets()
    if here not in supported:
        return (f"running it needs a GPU TensorRT-RTX supports ({', '.join(supported)}); "
                f"this GPU is {here}")
    if here != target:
        return f"it was built for {target} and this GPU is {here}: set trt_target={here} (or auto) to run it here"
    return None
