"""Where an engine's numbers go wrong: the first node whose output leaves tolerance.

Run only when an engine has failed its accuracy check.  The reference is the FP32 ONNX export run
on ONNX Runtime; the candidate is the ONNX model the engine ran (the FP16-converted or INT8 QDQ
one).  Both are run once with every intermediate tensor marked as an output (Polygraphy's
ModifyOutputs with MARK_ALL), tensors are matched by name, and the candidate's nodes are walked in
topological order: the first whose output fails the engine's tolerance is the divergent node.  Its
inputs' errors are reported with it, so a user sees whether the error starts there (inputs close,
output far) or flows in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..measure.results import Divergence, TensorError, Tolerance


def locate_divergence(reference_onnx: Path, candidate_onnx: Path, feeds: Mapping[str, np.ndarray],
                      tolerance: Tolerance) -> Optional[Divergence]:
    """The first node of ``candidate_onnx`` whose output leaves ``tolerance`` against ``reference_onnx``."""
    import onnx

    from ..audit import onnx_graph

    reference = run_all_tensors(onnx.load(str(reference_onnx)), feeds)
    candidate_model = onnx.load(str(candidate_onnx))
    candidate = run_all_tensors(candidate_model, feeds)
    module_paths = onnx_graph.module_paths(onnx.load(str(reference_onnx)))
    compared = 0
    for node in topological(candidate_model.graph):
        for output in node.output:
            if output not in candidate or output not in reference or not _is_float(reference[output]):
                continue
            compared += 1
            failures = _failures(candidate[output], reference[output], tolerance)
            if failures:
                inputs = tuple(_error(name, candidate[name], reference[name]) for name in node.input
                               if name in candidate and name in reference and _is_float(reference[name]))
                return Divergence(node.name, node.op_type, module_paths.get(node.name, ""),
                                  _error(output, candidate[output], reference[output]), inputs, failures, compared)
    return None


def topological(graph: Any) -> list[Any]:
    """The graph's nodes in dependency order (a converted model may list its Cast nodes last)."""
    produced_by = {out: index for index, node in enumerate(graph.node) for out in node.output if out}
    order: list[Any] = []
    state: dict[int, bool] = {}

    def visit(index: int) -> None:
        stack = [(index, False)]
        while stack:
            current, expanded = stack.pop()
            if state.get(current) is True:
                continue
            if expanded:
                state[current] = True
                order.append(graph.node[current])
                continue
            state[current] = False
            stack.append((current, True))
            for name in graph.node[current].input:
                parent = produced_by.get(name)
                if parent is not None and parent not in state:
                    stack.append((parent, False))

    for index in range(len(graph.node)):
        visit(index)
    return order


def run_all_tensors(model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor the model computes, by name, from one ONNX Runtime CPU run."""
    import onnxruntime
    from polygraphy import constants
    from polygraphy.backend.onnx import modify_outputs
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):
        marked = modify_outputs(model, outputs=constants.MARK_ALL, copy=True)
    options = onnxruntime.SessionOptions()
    # Fusions would hide intermediate tensors and differ between the two models: run each node as written.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(marked.SerializeToString(), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    wanted = {meta.name for meta in session.get_inputs()}
    names = [meta.name for meta in session.get_outputs()]
    values = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
    return dict(zip(names, values))


def _is_float(array: Any) -> bool:
    return isinstance(array, np.ndarray) and np.issubdtype(array.dtype, np.floating)


# An attention mask's fill: float32's lowest (torch.finfo(torch.float32).min, what transformers writes) or -inf, and
# what it becomes in FP16 (-65504, or -inf): a softmax reads either as zero weight, so the two are the same value.
MASK_FILL = -1e37
FP16_MASK_FILL = -6.0e4


def _failures(candidate: np.ndarray, reference: np.ndarray, tolerance: Tolerance) -> tuple[str, ...]:
    from ..measure.compare import measure_output

    if candidate.shape != reference.shape:
        return (f"shape {candidate.shape} vs reference {reference.shape}",)
    with np.errstate(invalid="ignore"):
        masked = (reference <= MASK_FILL) & (candidate <= FP16_MASK_FILL)
    if masked.any():  # a padded mask's Where/Add was the "first divergent node" of every decoder (newcomer trial 5)
        candidate = np.where(masked, reference, candidate)
    return measure_output("", candidate, reference, tolerance).failures


def _error(name: str, candidate: np.ndarray, reference: np.ndarray) -> TensorError:
    out = np.asarray(candidate, dtype=np.float64).reshape(-1)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(out - ref) if out.shape == ref.shape else np.array([np.inf])
    finite = np.isfinite(diff)
    norm = float(np.linalg.norm(ref)) if ref.size else 0.0
    rel_l2 = float(np.linalg.norm(diff)) / norm if norm and finite.all() else (float("inf") if not finite.all() else 0.0)
    return TensorError(name, float(diff.max()) if diff.size else 0.0, rel_l2,
                       int(np.count_nonzero(~np.isfinite(out))) if out.shape == ref.shape else 0,
                       float(np.abs(ref).max()) if ref.size else 0.0)


def feeds_for(onnx_path: Path, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
    """The model's example inputs keyed by the ONNX graph's input names (initializers excluded)."""
    import onnx

    from .inputs import onnx_feeds

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    names = [inp.name for inp in model.graph.input if inp.name not in initializers]
    return onnx_feeds(names, inputs)
