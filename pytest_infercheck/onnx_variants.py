"""The ONNX models an ONNX-based backend consumes, one per variant, all derived from the FP32 export.

- ``fp32``: the export itself (artifacts.ModelArtifacts.onnx_path);
- ``fp16``: weights and activations converted to float16, graph inputs and outputs kept float32;
- ``int8-qdq``: static INT8 in QDQ form, symmetric with zero points of 0, calibrated on the item's
  calibration batches;
- ``int8-qdq-trt``: the same model in the form TensorRT's parser reads (TensorRT 11, TensorRT-RTX):
  biases as floats (float_biases says why).

A backend's descriptor names the variant per precision; every backend asking for the same variant of
the same model gets the same cache entry (ONNX Runtime and TensorRT share the FP16 and QDQ models).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

if TYPE_CHECKING:
    import onnx

FP16_FILE = "model.fp16.onnx"
INT8_FILE = "model.int8.onnx"
# Part of the INT8 model's cache key: models quantized by an earlier recipe must not be reused.
INT8_RECIPE = "qdq-s8-symmetric-per-channel-7bit-weights"
TRT_QDQ_FILE = "model.int8.trt.onnx"
VARIANTS = ("fp32", "fp16", "int8-qdq", "int8-qdq-trt")


def onnx_variant(request: Any, variant: str) -> Path:
    """The ONNX model of ``variant`` for ``request`` (a BuildRequest), made once and cached."""
    artifacts = request.artifacts
    fp32_path = artifacts.onnx_path()
    if variant == "fp32":
        return fp32_path
    if variant == "fp16":
        return artifacts.derived("onnx-fp16", lambda d: convert_fp16(fp32_path, d / FP16_FILE)).file(FP16_FILE)
    if variant == "int8-qdq-trt":
        from .model import inputs_hash

        qdq = onnx_variant(request, "int8-qdq")
        return artifacts.derived("onnx-int8-trt", lambda d: tensorrt_qdq_file(qdq, d / TRT_QDQ_FILE),
                                 calibration=inputs_hash(request.calibration), recipe=INT8_RECIPE).file(TRT_QDQ_FILE)
    if variant != "int8-qdq":
        raise ValueError(f"unknown ONNX variant {variant!r}; known: {', '.join(VARIANTS)}")
    from .model import inputs_hash

    batches = request.calibration or []
    if request.calibration_generated:
        request.note(f"INT8 calibrated on {len(batches)} generated batches drawn like the example inputs "
                     "(no calibration= given): pass real data for figures that mean something")
    names = artifacts.onnx_input_names() or []
    return artifacts.derived(
        "onnx-int8", lambda d: quantize_qdq(fp32_path, d / INT8_FILE, names, batches),
        calibration=inputs_hash(batches), recipe=INT8_RECIPE).file(INT8_FILE)


def convert_fp16(source: Path, target: Path) -> None:
    """Weights and activations to float16; graph inputs and outputs stay float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    with _quiet(), _inside(target.parent):
        converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(converted, str(target))


def quantize_qdq(source: Path, target: Path, input_names: list[str], batches: list[tuple[Any, ...]]) -> None:
    """Static INT8 quantization in QDQ format, symmetric (zero points 0), calibrated on ``batches``.

    Weights get 7 bits (``reduce_range``): on x86 CPUs without VNNI (AVX2, AVX-512 before VNNI) the
    fused INT8 kernels add u8*s8 products in pairs into int16, which full-range weights overflow; on
    an AMD EPYC (AVX2) that took SmallCNN's cosine from 0.99996 to 0.987. ONNX Runtime's quantization
    guide asks for reduce_range with per-channel weights on such CPUs; 7-bit weights overflow nowhere.
    """
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            from .inputs import onnx_feeds

            self._feeds = iter([onnx_feeds(input_names, batch) for batch in batches])

        def get_next(self) -> Optional[dict[str, "np.ndarray"]]:
            return next(self._feeds, None)

    with _quiet(), _inside(target.parent):
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=True, extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


@contextlib.contextmanager
def _inside(directory: Path) -> Iterator[None]:
    """Run in ``directory``: ORT's shape inference can drop sym_shape_infer_temp.onnx in the working
    directory, which would otherwise be the user's repository."""
    previous = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converters log advice at WARNING through the root logger; keep it out of test output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def float_biases(model: "onnx.ModelProto") -> tuple["onnx.ModelProto", list[str]]:
    """The model with every INT32 initializer -> DequantizeLinear pair replaced by a float initializer.

    ONNX Runtime's static quantizer stores each bias as INT32 behind a DequantizeLinear (its CPU
    kernels add the bias in integer arithmetic).  TensorRT's parser (TensorRT-RTX 1.7 checked here,
    TensorRT 11 documents the same rule) dequantizes only FP8, FP4, INT4, INT8 and UINT8 and rejects
    the node: "input has type Int32 but must have type FP8, FP4, Int4, Int8, or UInt8".  TensorRT adds
    biases in floating point after its INT8 GEMM/convolution anyway, so each such bias is replaced by
    its dequantized float value: the same numbers, the form TensorRT reads.  Everything else (the
    INT8 weights and activations with their calibrated scales) is left exactly as calibrated.

    Returns the (modified in place) model and the names of the DequantizeLinear nodes removed.
    """
    import numpy as np
    from onnx import TensorProto, numpy_helper

    initializers = {init.name: init for init in model.graph.initializer}
    removed, kept = [], []
    for node in model.graph.node:
        source = initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" and node.input else None
        if source is None or source.data_type != TensorProto.INT32:
            kept.append(node)
            continue
        scale = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)
        zero = numpy_helper.to_array(initializers[node.input[2]]) if len(node.input) > 2 and node.input[2] else 0
        values = (numpy_helper.to_array(source).astype(np.int64) - np.int64(zero)).astype(np.float32) * scale
        model.graph.initializer.append(numpy_helper.from_array(values.astype(np.float32), node.output[0]))
        removed.append(node.name or node.output[0])
    del model.graph.node[:]
    model.graph.node.extend(kept)
    _drop_unused_initializers(model)
    return model, removed


def _drop_unused_initializers(model: "onnx.ModelProto") -> None:
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    unused = [init for init in model.graph.initializer if init.name not in used]
    for init in unused:
        model.graph.initializer.remove(init)


def tensorrt_qdq_file(source: Path, target: Path) -> list[str]:
    """Write ``source``'s QDQ model with float biases to ``target``; the removed node names."""
    import onnx

    model, removed = float_biases(onnx.load(str(source)))
    onnx.save(model, str(target))
    return removed
