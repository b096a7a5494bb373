"""FP16 range: where the FP32 model's activations leave what FP16 can hold (|x| <= 65504).

Needs example inputs: the FP32 ONNX model runs once on ONNX Runtime with every tensor marked as an
output.  A finding names the node where the range is first left (its inputs are still inside), the
place an FP16 engine starts producing Inf.  A warning, for every target: FP32 and BF16 engines are
unaffected; an FP16 engine of either backend is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .findings import ALL_TARGETS, Finding

STAGE = "fp16-range"
FP16_MAX = 65504.0


def fp16_range_findings(onnx_path: Path, inputs: Sequence[Any], module_paths: Mapping[str, str]) -> list[Finding]:
    import onnx

    from ..divergence import feeds_for, run_all_tensors, topological

    model = onnx.load(str(onnx_path))
    values = run_all_tensors(model, feeds_for(onnx_path, inputs))
    findings = []
    for node in topological(model.graph):
        inside = all(_peak(values.get(name)) <= FP16_MAX for name in node.input if name)
        peaks = [_peak(values.get(name)) for name in node.output if name]
        peak = max(peaks, default=0.0)
        if inside and peak > FP16_MAX:
            findings.append(Finding(STAGE, ALL_TARGETS, node.op_type, node.name,
                                    f"activations reach |x| = {peak:.4g} on the example inputs, beyond FP16's largest "
                                    f"value {FP16_MAX:g}: an FP16 engine produces Inf here", "warning",
                                    module_path=module_paths.get(node.name, "")))
    return findings


def _peak(array: Any) -> float:
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating) or not array.size:
        return 0.0
    finite = array[np.isfinite(array)]
    return float(np.abs(finite).max()) if finite.size else 0.0
