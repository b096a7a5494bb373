"""ONNX Runtime at FP32, FP16 (converted model, FP32 inputs/outputs kept) and INT8 (static QDQ).

The FP16 and INT8 models are derived from the FP32 export and kept in the engine cache: the INT8
one is keyed by the calibration data too, so new calibration batches mean a new model.  The QDQ
form is symmetric with zero points of 0, which is also what TensorRT accepts.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..model import to_numpy
from ..spec import EngineSpec
from .base import BuildRequest, common_unavailable_reason, missing_module_reason

INSTALL_CPU = "pip install 'pytest-infercheck[onnxruntime]' (or onnxruntime-gpu for CUDA; never both)"
FP16_FILE = "model.fp16.onnx"
INT8_FILE = "model.int8.onnx"


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def providers_for(device: str) -> Optional[list[str]]:
    """Execution providers for ``device``; None when this onnxruntime build cannot serve it."""
    available = available_providers()
    if device.startswith("cuda"):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available else None
    return ["CPUExecutionProvider"]


class OnnxRuntimeEngine:
    def __init__(self, session: Any, device: str) -> None:
        self.session = session
        self.device = device
        self.stream = None
        self.input_names = [meta.name for meta in session.get_inputs()]
        self.output_names = [meta.name for meta in session.get_outputs()]

    def prepare(self, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"the ONNX model takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                             f"{len(inputs)} were given")
        return {name: np.ascontiguousarray(to_numpy(tensor)) for name, tensor in zip(self.input_names, inputs)}

    def run(self, prepared: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, prepared)

    def to_numpy(self, raw_outputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(output) for output in raw_outputs]

    def close(self) -> None:
        self.session = None


class OnnxRuntimeBackend:
    name = "onnxruntime"
    precisions = ("fp32", "fp16", "int8")
    supports_cuda_graphs = False

    def unavailable_reason(self, spec: EngineSpec, device: str) -> Optional[str]:
        reason = common_unavailable_reason(self, spec, device) or missing_module_reason("onnxruntime", INSTALL_CPU)
        if reason:
            return reason
        if providers_for(device) is None:
            return ("this onnxruntime build has no CUDAExecutionProvider: "
                    "pip uninstall onnxruntime && pip install 'pytest-infercheck[onnxruntime-gpu]'")
        return None

    def build(self, request: BuildRequest) -> OnnxRuntimeEngine:
        path = self.model_path(request)
        return OnnxRuntimeEngine(create_session(path, providers_for(request.device) or []), request.device)

    def model_path(self, request: BuildRequest) -> Path:
        artifacts = request.artifacts
        fp32_path = artifacts.onnx_path()
        if request.spec.precision == "fp32":
            return fp32_path
        if request.spec.precision == "fp16":
            return artifacts.derived("onnx-fp16", lambda d: convert_fp16(fp32_path, d / FP16_FILE)).file(FP16_FILE)
        from ..model import inputs_hash

        batches = request.calibration or []
        if request.calibration_generated:
            request.note(f"INT8 calibrated on {len(batches)} generated batches drawn like the example inputs "
                         "(no calibration= given): pass real data for figures that mean something")
        names = artifacts.onnx_input_names() or []
        return artifacts.derived(
            "onnx-int8", lambda d: quantize_qdq(fp32_path, d / INT8_FILE, names, batches),
            calibration=inputs_hash(batches)).file(INT8_FILE)


def create_session(path: Path, providers: list[str]) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the verdict carries what matters
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)


def convert_fp16(source: Path, target: Path) -> None:
    """Weights and activations to float16; graph inputs and outputs stay float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    with _quiet():
        converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(converted, str(target))


def quantize_qdq(source: Path, target: Path, input_names: list[str], batches: list[tuple[Any, ...]]) -> None:
    """Static INT8 quantization in QDQ format, symmetric (zero points 0), calibrated on ``batches``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([{name: to_numpy(t) for name, t in zip(input_names, batch)} for batch in batches])

        def get_next(self) -> Optional[dict[str, np.ndarray]]:
            return next(self._feeds, None)

    with _quiet():
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


@contextlib.contextmanager
def _quiet() -> Any:
    """The converters log advice at WARNING through the root logger; keep it out of test output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
