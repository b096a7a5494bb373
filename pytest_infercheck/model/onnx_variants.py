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
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

if TYPE_CHECKING:
    import onnx

FP16_FILE = "model.fp16.onnx"
INT8_FILE = "model.int8.onnx"
# Part of the INT8 model's cache key: models quantized by an earlier recipe must not be reused.
INT8_RECIPE = "qdq-s8-symmetric-per-channel-7bit-weights"
TRT_QDQ_FILE = "model.int8.trt.onnx"
VARIANTS = ("fp32", "fp16", "int8-qdq", "int8-qdq-trt")


def onnx_variant(request: Any, variant: str) -> Path:
    """The ONNX model of ``variant`` for ``request`` (a BuildRequest), made once and cached.

    The reduced-precision variants follow the request's recipe (docs/precision.md): keep_fp32's
    modules stay in float, INT8 quantizes int8_ops' operator types; both are in the cache key, and
    ``request.recipe`` records what was made.
    """
    from .precision import kept_nodes, onnx_recipe

    artifacts = request.artifacts
    fp32_path = artifacts.onnx_path()
    if variant == "fp32":
        return fp32_path
    if variant not in VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}; known: {', '.join(VARIANTS)}")
    kept = kept_nodes(fp32_path, request)
    request.recipe = onnx_recipe(request, variant, kept)
    # Only a given keep-list joins the key: the entries made without one keep their keys.
    keep = {"keep_fp32": sorted(request.keep_fp32)} if request.keep_fp32 else {}
    if variant == "fp16":
        return artifacts.derived("onnx-fp16", lambda d: convert_fp16(fp32_path, d / FP16_FILE, kept),
                                 **keep).file(FP16_FILE)
    from .under_test import inputs_hash
    from .precision import int8_op_types

    op_types = int8_op_types(request.int8_ops)
    recipe = {"recipe": INT8_RECIPE, "int8_ops": sorted(request.int8_ops), **keep}
    if variant == "int8-qdq-trt":
        qdq = onnx_variant(request, "int8-qdq")
        return artifacts.derived("onnx-int8-trt", lambda d: tensorrt_qdq_file(qdq, d / TRT_QDQ_FILE),
                                 calibration=inputs_hash(request.calibration), **recipe).file(TRT_QDQ_FILE)
    batches = request.calibration or []
    if request.calibration_generated:
        request.note(f"INT8 calibrated on {len(batches)} generated batches drawn like the example inputs "
                     "(no calibration= given): pass real data for figures that mean something")
    names = artifacts.onnx_input_names() or []
    return artifacts.derived(
        "onnx-int8", lambda d: quantize_qdq(fp32_path, d / INT8_FILE, names, batches, op_types, kept),
        calibration=inputs_hash(batches), **recipe).file(INT8_FILE)


def convert_fp16(source: Path, target: Path, keep_fp32: Sequence[str] = ()) -> None:
    """Weights and activations to float16; graph inputs and outputs stay float32, and so do the
    nodes named in ``keep_fp32`` (casts go around them)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    original = onnx_copy(model) if keep_fp32 else model  # the converter changes its argument in place
    with _quiet(), _inside(target.parent):
        converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False,
                                             node_block_list=list(keep_fp32) or None)
    if keep_fp32:
        fp32_between_kept_nodes(converted, original, set(keep_fp32))
    onnx.save(converted, str(target))


def fp32_between_kept_nodes(converted: "onnx.ModelProto", original: "onnx.ModelProto", kept: set[str]) -> None:
    """Drop the float16 round trips the converter leaves inside a kept region.

    convert_float_to_float16 casts around each blocked node on its own: between two kept nodes a
    tensor goes FP32 -> FP16 -> FP32 (an overflow there is still an overflow), and a kept node's
    weights are stored in FP16 behind a Cast to FP32.  A Cast to FP32 that feeds kept nodes only
    is removed when it reads back a Cast to FP16 of a kept node's output (or of a graph input: the
    kept node reads the FP32 tensor), or an FP16 copy of an FP32 weight (the kept node reads the
    original FP32 weight).
    """
    from onnx import TensorProto

    graph = converted.graph
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {out: node for node in graph.node for out in node.output}
    float_weights = {init.name: init for init in original.graph.initializer if init.data_type == TensorProto.FLOAT}
    graph_inputs = {inp.name for inp in graph.input}

    def cast_to(node: Any) -> Optional[int]:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    removed: set[int] = set()
    for cast in list(graph.node):
        users = consumers.get(cast.output[0], [])
        if cast_to(cast) != TensorProto.FLOAT or not users or any(user.name not in kept for user in users):
            continue
        source = cast.input[0]
        if source in float_weights:
            weight = onnx_copy(float_weights[source])
            weight.name = cast.output[0]
            graph.initializer.append(weight)
            removed.add(id(cast))
            continue
        half = producers.get(source)
        if half is None or cast_to(half) != TensorProto.FLOAT16:
            continue
        origin = producers.get(half.input[0])
        if half.input[0] not in graph_inputs and (origin is None or origin.name not in kept):
            continue
        for user in users:
            user.input[:] = [half.input[0] if name == cast.output[0] else name for name in user.input]
        removed.add(id(cast))
    kept_nodes = [node for node in graph.node if id(node) not in removed]
    used = {name for node in kept_nodes for name in node.input} | {out.name for out in graph.output}
    kept_nodes = [node for node in kept_nodes
                  if not (node.op_type == "Cast" and not any(out in used for out in node.output))]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    _drop_unused_initializers(converted)


def onnx_copy(proto: Any) -> Any:
    copied = type(proto)()
    copied.CopyFrom(proto)
    return copied


def quantize_qdq(source: Path, target: Path, input_names: list[str], batches: list[tuple[Any, ...]],
                 op_types: Optional[Sequence[str]] = None, exclude: Sequence[str] = ()) -> None:
    """Static INT8 quantization in QDQ format, symmetric (zero points 0), calibrated on ``batches``;
    only operators of ``op_types`` (None: every type the quantizer handles), never the nodes of ``exclude``.

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
                        reduce_range=True, op_types_to_quantize=list(op_types) if op_types is not None else None,
                        nodes_to_exclude=list(exclude) or None,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    refuse_unquantized(source, target, op_types, exclude)


class NothingQuantized(ValueError):
    """An INT8 recipe that left no operator quantized (refuse_unquantized)."""


def refuse_unquantized(source: Path, target: Path, op_types: Optional[Sequence[str]], exclude: Sequence[str]) -> None:
    """NothingQuantized when the quantized model holds no QuantizeLinear/DequantizeLinear node: none of the
    chosen operator types occurs outside the excluded nodes, and an "INT8" engine would run in FP32,
    passing as INT8 with nothing said."""
    import onnx

    quantized = onnx.load(str(target), load_external_data=False)  # the nodes are what is asked, not the weights
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in quantized.graph.node):
        return
    model = onnx.load(str(source), load_external_data=False)
    present = sorted({node.op_type for node in model.graph.node})
    chosen = "every type the quantizer handles" if op_types is None else f"int8_ops={list(op_types)}"
    kept = f" outside the {len(exclude)} node(s) of keep_fp32's modules" if exclude else ""
    raise NothingQuantized(f"the INT8 recipe quantized nothing: no operator of {chosen} occurs in the model{kept} "
                     f"(its operator types: {', '.join(present)}), so the engine would run in FP32 and pass as "
                     "INT8; choose int8_ops among its types, or keep fewer modules in FP32")


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
