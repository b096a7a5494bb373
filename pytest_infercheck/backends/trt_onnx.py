"""The ONNX model a strongly typed TensorRT build parses, per precision (TensorRT 11 and TensorRT-RTX).

fp32: the FP32 export; fp16: the FP16-converted model; int8: the calibrated QDQ model, with
the one change below.  The FP16 and QDQ models are the ONNX Runtime backend's, from the same
cache entries.

ONNX Runtime's static quantizer stores each bias as INT32 behind a DequantizeLinear (its CPU
kernels add the bias in integer arithmetic).  TensorRT's parser (TensorRT-RTX 1.7 checked here,
TensorRT 11 documents the same rule) dequantizes only FP8, FP4, INT4, INT8 and UINT8 and rejects
the node: "input has type Int32 but must have type FP8, FP4, Int4, Int8, or UInt8".  TensorRT adds
biases in floating point after its INT8 GEMM/convolution anyway, so each such bias is replaced by
its dequantized float value: the same numbers, the form TensorRT reads.  Everything else (the
INT8 weights and activations with their calibrated scales) is left exactly as calibrated.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

    from .base import BuildRequest

VARIANTS = {"fp32": "fp32", "fp16": "fp16", "int8": "int8-qdq"}
TRT_QDQ_FILE = "model.int8.trt.onnx"


def strongly_typed_onnx(request: "BuildRequest") -> Path:
    """The ONNX model whose types carry ``request``'s precision."""
    if request.spec.precision == "fp32":
        return request.artifacts.onnx_path()
    from .onnxruntime import OnnxRuntimeBackend

    converted = OnnxRuntimeBackend().model_path(request)
    if request.spec.precision != "int8":
        return converted
    from ..model import inputs_hash

    entry = request.artifacts.derived("onnx-int8-trt", lambda d: tensorrt_qdq_file(converted, d / TRT_QDQ_FILE),
                                      calibration=inputs_hash(request.calibration))
    return entry.file(TRT_QDQ_FILE)


def float_biases(model: "onnx.ModelProto") -> tuple["onnx.ModelProto", list[str]]:
    """The model with every INT32 initializer -> DequantizeLinear pair replaced by a float initializer.

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
