"""ONNX Runtime at FP32, FP16 (converted model, FP32 inputs/outputs kept) and INT8 (static QDQ).

The FP16 and INT8 models are derived from the FP32 export and kept in the engine cache: the INT8
one is keyed by the calibration data too, so new calibration batches mean a new model.  The QDQ
form is symmetric with zero points of 0, which is also what TensorRT accepts.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..core.spec import EngineSpec
from .base import ONNX_EXPORT, BackendDescriptor, BuildRequest, missing_module_reason

if TYPE_CHECKING:
    import numpy as np

INSTALL_CPU = "pip install 'pytest-infercheck[onnxruntime]' (or onnxruntime-gpu for CUDA; never both)"

DESCRIPTOR = BackendDescriptor(
    name="onnxruntime", implementation=f"{__name__}:OnnxRuntimeBackend", precisions=("fp32", "fp16", "int8"),
    devices=("cpu", "cuda"), libraries=(*ONNX_EXPORT, "onnxruntime", "onnxruntime-gpu"), install=INSTALL_CPU,
    # On CUDA, CUDA Graphs come from the CUDA provider's enable_cuda_graph option.
    supports_cuda_graphs=True,
    audit_targets={"cpu": "onnxruntime", "cuda": "onnxruntime-cuda"},
    onnx_variants={"fp32": "fp32", "fp16": "fp16", "int8": "int8-qdq"},
    profiler="onnxruntime",
    # A green here is weaker than it reads (newcomer trial 5: a sum of squares off by 59% in eager FP16 passed).
    pass_caveats={"fp16 on cpu": "on the CPU, ONNX Runtime runs many FP16 kernels in FP32 behind casts: a pass here "
                                 "does not show that FP16's range holds where the kernels are FP16 (a GPU); "
                                 "eager-fp16 or the audit's FP16 range check shows where values leave it"},
)


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def providers_for(device: str) -> Optional[list[str]]:
    """Execution providers for ``device``; None when this onnxruntime build cannot serve it.

    On CUDA the TensorRT provider goes first when it can start here (ONNX Runtime hands it the
    subgraphs it can run and the CUDA provider the rest).
    """
    available = available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            return None
        usable = "TensorrtExecutionProvider" in available and tensorrt_libraries_problem() is None
        return (["TensorrtExecutionProvider"] if usable else []) + ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


TENSORRT_LIBRARY = "libnvinfer.so.10"  # what onnxruntime-gpu's TensorRT provider links against


@functools.lru_cache(maxsize=1)  # asked for every item; the answer holds for the process
def tensorrt_libraries_problem() -> Optional[str]:
    """Why ONNX Runtime's TensorRT provider cannot start here, or None.

    onnxruntime-gpu lists TensorrtExecutionProvider whether or not TensorRT is installed; asking for
    it without TensorRT's libraries prints an "EP Error" and falls back (seen on the H100 with
    onnxruntime-gpu 1.31.1).  The pip package ``tensorrt`` loads its libraries when imported.
    """
    import ctypes
    import importlib

    try:
        importlib.import_module("tensorrt")
    except Exception:
        pass  # no Python package: the library may still be on the loader's path
    try:
        ctypes.CDLL(TENSORRT_LIBRARY)
    except OSError:
        return (f"TensorRT's library {TENSORRT_LIBRARY} cannot be loaded, so ONNX Runtime's TensorRT provider cannot "
                "start: install TensorRT 10 for onnxruntime-gpu's CUDA major version (pip install tensorrt-cu12 or "
                "tensorrt-cu13), or put its lib directory on LD_LIBRARY_PATH")
    return None


def provider_options(providers: list[str], *, device: str, stream: Any, cuda_graph: bool,
                     trt_cache_dir: Optional[Path], tf32: bool = False) -> list[dict[str, str]]:
    """Options per provider: our stream (the GPU timer records on it), CUDA graphs, TensorRT's caches.

    The CUDA provider uses TF32 for FP32 convolutions and matrix products unless told not to
    (seen on the H100: relative error 4.8e-4 for resnet50 at "FP32"), so it follows the reference's
    TF32 setting like every other engine.
    """
    options: list[dict[str, str]] = []
    for provider in providers:
        if provider == "CUDAExecutionProvider":
            cuda = {"device_id": str(_device_index(device)), "do_copy_in_default_stream": "0",
                    "use_tf32": "1" if tf32 else "0"}
            if stream is not None:
                cuda.update(has_user_compute_stream="1", user_compute_stream=str(stream.cuda_stream))
            if cuda_graph:
                cuda["enable_cuda_graph"] = "1"
            options.append(cuda)
        elif provider == "TensorrtExecutionProvider":
            trt = {"device_id": str(_device_index(device))}
            if trt_cache_dir is not None:
                trt.update(trt_engine_cache_enable="True", trt_engine_cache_path=str(trt_cache_dir),
                           trt_timing_cache_enable="True", trt_timing_cache_path=str(trt_cache_dir))
            if cuda_graph:
                trt["trt_cuda_graph_enable"] = "True"
            options.append(trt)
        else:
            options.append({})
    return options


def _device_index(device: str) -> int:
    _, _, index = device.partition(":")
    return int(index) if index else 0


class OnnxRuntimeEngine:
    def __init__(self, session: Any, device: str) -> None:
        self.session = session
        self.device = device
        self.stream = None
        self.input_names = [meta.name for meta in session.get_inputs()]
        self.output_names = [meta.name for meta in session.get_outputs()]

    def prepare(self, inputs: Sequence[Any]) -> dict[str, "np.ndarray"]:
        from ..model.inputs import onnx_feeds

        return onnx_feeds(self.input_names, inputs)  # by the graph's input names: keyword inputs may come in any order

    def run(self, prepared: dict[str, "np.ndarray"]) -> list["np.ndarray"]:
        return self.session.run(self.output_names, prepared)

    def to_numpy(self, raw_outputs: list["np.ndarray"]) -> list["np.ndarray"]:
        import numpy as np

        return [np.asarray(output) for output in raw_outputs]

    def close(self) -> None:
        self.session = None


class OnnxRuntimeCudaEngine:
    """The CUDA provider with IO binding on torch CUDA tensors: no host copies inside ``run``.

    Inputs are copied into fixed input buffers and outputs land in fixed output buffers, both
    bound once; that is also what the provider's own CUDA graph needs (it captures on the first
    run and replays afterwards, so ``captures_own_graph`` keeps the generic wrapper away).
    """

    def __init__(self, session: Any, device: str, stream: Any, cuda_graph: bool) -> None:
        self.session = session
        self.device = device
        self.stream = stream
        self.captures_own_graph = cuda_graph
        self.input_names = [meta.name for meta in session.get_inputs()]
        self.output_names = [meta.name for meta in session.get_outputs()]
        self.binding: Any = None
        self.static_inputs: tuple[Any, ...] = ()
        self.static_outputs: list[Any] = []

    def prepare(self, inputs: Sequence[Any]) -> tuple[Any, ...]:
        from ..model.inputs import as_model_inputs

        ordered = as_model_inputs(inputs).ordered_for(self.input_names)  # in the graph's input order
        prepared = tuple(t.detach().to(self.device).contiguous() for t in ordered)
        if self.binding is None:
            self._bind(prepared)
        return prepared

    def _bind(self, prepared: tuple[Any, ...]) -> None:
        import torch

        self.static_inputs = tuple(t.clone() for t in prepared)
        probe = self.session.io_binding()
        for name, tensor in zip(self.input_names, self.static_inputs):
            _bind_tensor(probe.bind_input, name, tensor)
        for name in self.output_names:
            probe.bind_output(name, "cuda", _device_index(self.device))
        self.session.run_with_iobinding(probe)  # learns the output shapes and dtypes
        shapes = [(value.shape(), value.numpy().dtype) for value in probe.get_outputs()]
        self.static_outputs = [torch.empty(shape, dtype=_torch_dtype(dtype), device=self.device)
                               for shape, dtype in shapes]
        self.binding = self.session.io_binding()
        for name, tensor in zip(self.input_names, self.static_inputs):
            _bind_tensor(self.binding.bind_input, name, tensor)
        for name, tensor in zip(self.output_names, self.static_outputs):
            _bind_tensor(self.binding.bind_output, name, tensor)

    def run(self, prepared: tuple[Any, ...]) -> list[Any]:
        import torch

        with torch.cuda.stream(self.stream):
            for static, given in zip(self.static_inputs, prepared):
                if static.data_ptr() != given.data_ptr():
                    static.copy_(given, non_blocking=True)
        self.session.run_with_iobinding(self.binding)
        return self.static_outputs

    def to_numpy(self, raw_outputs: list[Any]) -> list["np.ndarray"]:
        from ..model.under_test import to_numpy

        if self.stream is not None:
            self.stream.synchronize()
        return [to_numpy(tensor) for tensor in raw_outputs]

    def close(self) -> None:
        self.session = self.binding = None
        self.static_inputs, self.static_outputs = (), []


def _bind_tensor(bind: Any, name: str, tensor: Any) -> None:
    bind(name, "cuda", tensor.device.index or 0, _numpy_dtype(tensor), list(tensor.shape), tensor.data_ptr())


def _numpy_dtype(tensor: Any) -> Any:
    import numpy as np
    import torch

    return np.dtype(str(torch.empty((), dtype=tensor.dtype).numpy().dtype))


def _torch_dtype(dtype: Any) -> Any:
    import numpy as np
    import torch

    return torch.from_numpy(np.zeros((), dtype=dtype)).dtype


class OnnxRuntimeBackend:
    descriptor = DESCRIPTOR

    def unavailable_reason(self, spec: EngineSpec, device: str) -> Optional[str]:
        reason = missing_module_reason("onnxruntime", INSTALL_CPU)
        if reason:
            return reason
        if providers_for(device) is None:
            return ("this onnxruntime build has no CUDAExecutionProvider: "
                    "pip uninstall onnxruntime && pip install 'pytest-infercheck[onnxruntime-gpu]'")
        return None

    def build(self, request: BuildRequest) -> Any:
        path = self.onnx_model(request)
        providers = providers_for(request.device) or []
        if not request.device.startswith("cuda"):
            return OnnxRuntimeEngine(create_session(path, providers), request.device)
        import torch

        from .artifacts import device_target

        stream = torch.cuda.Stream(device=request.device)
        trt_dir = None
        if "TensorrtExecutionProvider" in providers and request.artifacts.cache.enabled:
            trt_dir = request.artifacts.derived("ort-trt-cache", lambda d: None, target=device_target(request.device),
                                                precision=request.spec.precision).path
        options = provider_options(providers, device=request.device, stream=stream,
                                   cuda_graph=request.spec.cuda_graphs, trt_cache_dir=trt_dir, tf32=request.tf32)
        session = create_session(path, providers, options)
        running = session.get_providers()
        request.note(f"ONNX Runtime providers: {', '.join(running)}")
        if request.spec.precision == "int8" and "TensorrtExecutionProvider" not in running:
            request.note("the CUDA provider runs the QDQ model's QuantizeLinear/DequantizeLinear pairs around float "
                         "kernels: these are INT8's errors, not INT8's speed (the TensorRT provider fuses them)")
        return OnnxRuntimeCudaEngine(session, request.device, stream, request.spec.cuda_graphs)

    def onnx_model(self, request: BuildRequest) -> Path:
        from ..model.onnx_variants import onnx_variant

        return onnx_variant(request, DESCRIPTOR.onnx_variants[request.spec.precision])


def create_session(path: Path, providers: list[str], options_per_provider: Optional[list[dict[str, str]]] = None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the verdict carries what matters
    if not any(provider.startswith(("CUDA", "Tensorrt")) for provider in providers):
        from ..core.cpu_threads import configure_session

        configure_session(options)  # the check's CPU thread count, no spinning pool threads
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers,
                                        provider_options=options_per_provider)
