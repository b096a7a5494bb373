"""FP16 range: where the FP32 model's activations leave what FP16 can hold (|x| <= 65504).

Needs example inputs: the FP32 ONNX model runs once on ONNX Runtime with every tensor marked as an
output.  A finding names the node where the range is first left (its inputs are still inside), the
place an FP16 engine starts producing Inf.  A warning, for every target: FP32 and BF16 engines are
unaffected; an FP16 engine of either backend is not.

Attention masks are not overflow.  BERT-style models fill masked positions with float32's lowest
value (``torch.finfo(torch.float32).min``) or -inf on purpose: a constant chosen by the model, put in
through a Where branch or added to the scores, which a softmax turns into 0 whether it reads -3.4e38
or FP16's -inf.  Such mask values are followed from the constant that holds them through the ops
that carry a mask (Where, Add, Mul, Expand, ...); a tensor whose only out-of-range values are mask
values is a mask, not a finding, and the nodes that read it are judged on their other values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .findings import ALL_TARGETS, Finding

STAGE = "fp16-range"
FP16_MAX = 65504.0
# A mask value: at or near float32's lowest (-3.4028e38; half of it leaves room for scores added to it), or -inf.
MASK_FLOOR = float(np.finfo(np.float32).min) / 2
# Ops through which a mask travels: selected (Where), added to scores, scaled by a 0/1 mask, reshaped, cast.
MASK_OPS = frozenset({"Where", "Add", "Sub", "Mul", "Min", "Max", "Clip", "Expand", "Reshape", "Unsqueeze", "Squeeze",
                      "Flatten", "Transpose", "Slice", "Gather", "Concat", "Tile", "Cast", "CastLike", "Identity"})
SOURCE_OPS = frozenset({"Constant", "ConstantOfShape"})


def fp16_range_findings(onnx_path: Path, inputs: Sequence[Any], module_paths: Mapping[str, str]) -> tuple[list[Finding], list[str]]:
    """(findings, notes): the notes say which mask constants were recognised, and so not reported."""
    import onnx

    from ..model.divergence import feeds_for, run_all_tensors, topological
    from .onnx_graph import constants

    model = onnx.load(str(onnx_path))
    values = run_all_tensors(model, feeds_for(onnx_path, inputs))
    masks = {name for name, value in constants(model).items() if _holds_mask(value)}
    findings, recognised = [], []
    for node in topological(model.graph):
        outputs = [values.get(name) for name in node.output if name]
        if _carries_mask(node, masks) and all(_mask_only(value) for value in outputs):
            masks.update(name for name, value in zip(node.output, outputs) if _holds_mask(value))
            if any(_holds_mask(value) for value in outputs):
                recognised.append(node.name)
            continue
        inside = all(_peak(values.get(name), skip_masks=name in masks) <= FP16_MAX for name in node.input if name)
        peak = max((_peak(value) for value in outputs), default=0.0)
        if inside and peak > FP16_MAX:
            findings.append(Finding(STAGE, ALL_TARGETS, node.op_type, node.name,
                                    f"activations reach |x| = {peak:.4g} on the example inputs, beyond FP16's largest "
                                    f"value {FP16_MAX:g}: an FP16 engine produces Inf here", "warning",
                                    module_path=module_paths.get(node.name, "")))
    notes = []
    if recognised:
        shown = ", ".join(recognised[:3]) + (f" and {len(recognised) - 3} more" if len(recognised) > 3 else "")
        notes.append(f"FP16 range: {len(recognised)} node(s) carry an attention mask at float32's lowest value or -inf "
                     f"({shown}): a mask, not an overflow (a softmax reads FP16's -inf the same)")
    return findings, notes


def _carries_mask(node: Any, masks: set[str]) -> bool:
    """A mask source (Constant, ConstantOfShape), or a mask-carrying op that reads a mask tensor
    (a Where's branches, not its condition)."""
    if node.op_type in SOURCE_OPS:
        return True
    read = node.input[1:] if node.op_type == "Where" else node.input
    return node.op_type in MASK_OPS and any(name in masks for name in read)


def _floats(array: Any) -> Any:
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating) or not array.size:
        return None
    return array


def _holds_mask(array: Any) -> bool:
    """Some mask values, and no out-of-range value that is not one."""
    array = _floats(array)
    return array is not None and bool((array <= MASK_FLOOR).any()) and _mask_only(array)


def _mask_only(array: Any) -> bool:
    """Every value beyond FP16's range is a mask value (a tensor inside the range is trivially so)."""
    array = _floats(array)
    if array is None:
        return True
    beyond = array[~np.isnan(array) & (np.abs(array) > FP16_MAX)]
    return bool((beyond <= MASK_FLOOR).all())


def _peak(array: Any, skip_masks: bool = False) -> float:
    array = _floats(array)
    if array is None:
        return 0.0
    kept = array[np.isfinite(array) & ((array > MASK_FLOOR) if skip_masks else True)]
    return float(np.abs(kept).max()) if kept.size else 0.0
