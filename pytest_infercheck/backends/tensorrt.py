"""TensorRT on 10.x (Polygraphy's loaders) and 11.x (the strongly typed path shared with TensorRT-RTX).

No machine this project was developed on can install TensorRT.  What has run, and where:
- the 11.x build path (``write_engine`` on a strongly typed plan -> ``trt_strongly_typed``) runs
  in CI for real through TensorRT-RTX, which has the same API (tests/test_tensorrt_rtx.py);
- the 10.x path (precision builder flags, the entropy calibrator, Polygraphy's loaders and timing
  cache) has NEVER RUN: it follows the documented Python API of TensorRT 10 and Polygraphy 0.53;
- ``TensorRTEngine`` (named tensors, ``execute_async_v3``) has never run on TensorRT; the
  tensorrt-rtx backend uses it too, on GPUs TensorRT-RTX supports.
The TensorRT-free decisions live in ``tensorrt_config`` and are unit-tested.  Everything skips
with the install hint wherever ``tensorrt`` does not import.

Build (cached in the engine cache, keyed by model, precision, TensorRT version, GPU, profiles,
calibration data):
  ONNX (FP32 export; on 11.x the FP16-converted or QDQ-quantized model) -> NetworkFromOnnxPath
  -> 10.x: CreateConfig(precision flags, entropy calibrator for INT8, profiles, timing cache)
     -> EngineBytesFromNetwork -> model.plan
  -> 11.x: trt_strongly_typed.write_engine (the parser's errors, the GPU present) -> model.plan
A timing cache per TensorRT version and GPU is shared by all builds, so later builds of similar
layers skip tactic timing; a copy of the cache used is kept beside each engine.
Run: named I/O tensors bound to torch CUDA tensors, ``execute_async_v3`` on torch's current stream
(which is how the ``-cudagraph`` wrapper captures it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

from ..core.spec import EngineSpec
from .base import ONNX_EXPORT, BackendDescriptor, BuildRequest, missing_module_reason
from .trt_strongly_typed import PLAN_FILE, TENSORRT, TrtLibrary
from .tensorrt_config import (BuildPlan, UnsupportedBuild, calibration_feeds, engine_key_parts, plan_build,
                              profile_shapes, torch_dtype_name)

INSTALL_TRT = ("pip install 'pytest-infercheck[tensorrt]' (TensorRT 10.x) or pip install tensorrt (11.x) on a "
               "Linux machine with an NVIDIA GPU that can reach NVIDIA's package index (pypi.nvidia.com)")

TIMING_FILE = "timing.cache"
CALIBRATION_FILE = "calibration.cache"
DESCRIPTOR = BackendDescriptor(
    name="tensorrt", implementation=f"{__name__}:TensorRTBackend", precisions=("fp32", "fp16", "bf16", "int8"),
    devices=("cuda",), libraries=(*ONNX_EXPORT, "polygraphy", *TENSORRT.distributions), install=INSTALL_TRT,
    audit_targets={"cpu": "tensorrt", "cuda": "tensorrt"},
    # 10.x parses the FP32 export and sets precision flags; 11.x parses the variant whose types carry
    # the precision (BuildPlan.strongly_typed decides per version), Q/DQ biases as floats.
    onnx_variants={"fp32": "fp32", "fp16": "fp16", "int8": "int8-qdq-trt"},
    audit_without_library=True,  # the 10.1/10.15 support tables predict what the parser would say
    profiler="tensorrt",
    keep_fp32_gap=("TensorRT 10 builds reduced-precision engines from the FP32 export with builder flags, and no "
                   "per-layer precision is set there; TensorRT 11 builds from the converted ONNX model, which keeps them"),
)


def installed_tensorrt_version() -> Optional[str]:
    """TensorRT's version from package metadata (importing tensorrt loads CUDA: not at collection)."""
    return TENSORRT.version()


class TensorRTBackend:
    descriptor = DESCRIPTOR

    def unavailable_reason(self, spec: EngineSpec, device: str) -> Optional[str]:
        reason = missing_module_reason("tensorrt", INSTALL_TRT) or missing_module_reason(
            "polygraphy", "pip install polygraphy")
        if reason:
            return reason
        version = installed_tensorrt_version()
        if version is None:
            return f"tensorrt imports but reports no version: reinstall it ({INSTALL_TRT})"
        try:
            plan_build(version, spec.precision)
        except UnsupportedBuild as err:
            return str(err)
        return None

    def build(self, request: BuildRequest) -> "TensorRTEngine":
        version = installed_tensorrt_version() or "unknown"
        plan = plan_build(version, request.spec.precision, tf32=request.tf32)
        onnx_path = self.onnx_for(plan, request)
        entry = build_engine_entry(plan, request, onnx_path, version)
        request.note(f"TensorRT engine: {plan.describe()}")
        if plan.strongly_typed:
            from .trt_strongly_typed import deserialize

            engine = deserialize(TENSORRT, entry.file(PLAN_FILE).read_bytes())
            return TensorRTEngine(engine, request.device, onnx_output_names(onnx_path), trt=TENSORRT.load())
        from polygraphy.backend.common import BytesFromPath  # 10.x: never run
        from polygraphy.backend.trt import EngineFromBytes

        engine = EngineFromBytes(BytesFromPath(str(entry.file(PLAN_FILE))))()
        return TensorRTEngine(engine, request.device, onnx_output_names(onnx_path))

    @staticmethod
    def onnx_for(plan: BuildPlan, request: BuildRequest) -> Path:
        """10.x parses the FP32 export; 11.x the converted model that carries the precision in its types."""
        from ..model.onnx_variants import onnx_variant

        return onnx_variant(request, DESCRIPTOR.onnx_variants[plan.precision] if plan.strongly_typed else "fp32")

    def onnx_model(self, request: BuildRequest) -> Optional[Path]:
        version = installed_tensorrt_version()
        if version is None:
            return None
        return self.onnx_for(plan_build(version, request.spec.precision, tf32=request.tf32), request)


def build_engine_entry(plan: BuildPlan, request: BuildRequest, onnx_path: Path, version: str) -> Any:
    from .artifacts import device_target
    from ..model.under_test import inputs_hash

    artifacts = request.artifacts
    names = artifacts.onnx_input_names() or []
    shapes = {name: tuple(t.shape) for name, t in zip(names, artifacts.model.inputs.ordered_for(names))}
    profiles = profile_shapes(shapes, dynamic_batch=artifacts.model.dynamic_batch)
    target = device_target(request.device)
    shared_timing = timing_cache_path(artifacts.cache, version, target)
    key = engine_key_parts(plan, trt_version=version, target=target, profiles=profiles,
                           calibration=inputs_hash(request.calibration))

    def build(directory: Path) -> None:
        feeds = calibration_feeds(request.calibration or [], names) if plan.calibrate else None
        write_engine(plan, onnx_path, directory, profiles=profiles, feeds=feeds, shared_timing=shared_timing)

    return artifacts.derived("tensorrt", build, precision=request.spec.precision, **key)


def timing_cache_path(cache: Any, version: str, target: str) -> Optional[Path]:
    if not cache.enabled or cache.root is None:
        return None
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{version}-{target}")
    return Path(cache.root) / "tensorrt-timing" / f"{safe}.cache"


def write_engine(plan: BuildPlan, onnx_path: Path, directory: Path, *, profiles: Any, feeds: Optional[list],
                 shared_timing: Optional[Path], library: TrtLibrary = TENSORRT, target: Optional[str] = None) -> None:
    """11.x: the shared strongly typed path (run in CI through TensorRT-RTX, passed as ``library`` with a
    ``target`` capability); 10.x: Polygraphy's loader chain, lazily evaluated by the final call (never run)."""
    if plan.strongly_typed:
        from .trt_strongly_typed import write_engine as write_strongly_typed

        write_strongly_typed(library, onnx_path, directory, target=target, profiles=profiles, tf32=plan.tf32)
        return
    from polygraphy.backend.trt import Calibrator, CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile

    network = NetworkFromOnnxPath(str(onnx_path))
    trt_profiles = None
    if profiles:
        profile = Profile()
        for name, (low, opt, high) in profiles.items():
            profile.add(name, min=low, opt=opt, max=high)
        trt_profiles = [profile]
    # 10.x only, never run: precision builder flags and the entropy calibrator.
    calibrator = Calibrator(feeds, cache=str(directory / CALIBRATION_FILE)) if plan.calibrate else None
    flags: dict[str, Any] = dict(tf32=plan.tf32, fp16=plan.fp16, bf16=plan.bf16, int8=plan.int8, calibrator=calibrator)
    load_timing = str(shared_timing) if shared_timing is not None and shared_timing.exists() else None
    config = CreateConfig(profiles=trt_profiles, load_timing_cache=load_timing, **flags)
    local_timing = directory / TIMING_FILE
    engine_bytes = EngineBytesFromNetwork(network, config=config, save_timing_cache=str(local_timing))()
    (directory / PLAN_FILE).write_bytes(bytes(engine_bytes))
    if shared_timing is not None and local_timing.exists():
        publish_timing_cache(local_timing, shared_timing)


def publish_timing_cache(source: Path, shared: Path) -> None:
    """Replace the shared timing cache atomically: concurrent workers never read half a file."""
    shared.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=shared.parent, prefix=".timing.")
    os.close(handle)
    shutil.copyfile(source, staging)
    os.replace(staging, shared)


def onnx_output_names(onnx_path: Path) -> list[str]:
    import onnx

    return [output.name for output in onnx.load(str(onnx_path), load_external_data=False).graph.output]


class TensorRTEngine:
    """An ICudaEngine's execution context with torch CUDA tensors as I/O buffers."""

    def __init__(self, engine: Any, device: str, output_names: Sequence[str], trt: Any = None) -> None:
        if trt is None:  # the tensorrt module; tensorrt-rtx passes tensorrt_rtx (same API)
            import tensorrt

            trt = tensorrt

        self.engine = engine
        self.context = engine.create_execution_context()
        self.device = device
        self.stream = None  # runs on torch's current stream; the -cudagraph wrapper supplies its own
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        engine_outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.output_names = [n for n in output_names if n in engine_outputs] or engine_outputs
        self._outputs: dict[str, Any] = {}

    def _dtype(self, name: str) -> Any:
        import torch

        return getattr(torch, torch_dtype_name(self.engine.get_tensor_dtype(name)))

    def prepare(self, inputs: Sequence[Any]) -> tuple[Any, ...]:
        from ..model.inputs import as_model_inputs

        ordered = as_model_inputs(inputs).ordered_for(self.input_names)  # by name: keyword inputs in any order
        return tuple(t.detach().to(device=self.device, dtype=self._dtype(name)).contiguous()
                     for name, t in zip(self.input_names, ordered))

    def run(self, prepared: tuple[Any, ...]) -> list[Any]:
        import torch

        for name, tensor in zip(self.input_names, prepared):
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = []
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            buffer = self._outputs.get(name)
            if buffer is None or tuple(buffer.shape) != shape:  # reuse: no allocation per inference
                buffer = self._outputs[name] = torch.empty(shape, dtype=self._dtype(name), device=self.device)
            self.context.set_tensor_address(name, buffer.data_ptr())
            outputs.append(buffer)
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise RuntimeError("TensorRT's execute_async_v3 reported failure (see TensorRT's log above)")
        return outputs

    def to_numpy(self, raw_outputs: list[Any]) -> list[Any]:
        from ..model.under_test import to_numpy

        return [to_numpy(t) for t in raw_outputs]

    def close(self) -> None:
        self.context = None
        self.engine = None
        self._outputs = {}
