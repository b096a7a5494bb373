"""Per-module error of a reduced-precision run against FP32, and the modules it points at.

The mixed-precision repair (check/repair.py, docs/precision.md) starts here:

- ``torch_module_errors``: the eager model run twice with forward hooks, in FP32 and at the reduced
  dtype (with the modules already kept in FP32, kept), every module's floating inputs and outputs
  compared by name; for torchao's INT8/FP8 engines the reduced run is the engine's quantized copy
  before compilation (BF16, quantized ``nn.Linear`` weights);
- ``onnx_module_errors``: the same figures from the FP32 export and a derived ONNX model (INT8 QDQ),
  tensors matched by name and grouped by the export's module scopes;
- ``candidates``: where the error *starts*: a module whose inputs are close and whose output is far
  (or goes NaN/Inf), moved out to the nearest enclosing module whose FP32 output the reduced dtype
  can hold (keeping a module in FP32 casts its output back: an output beyond FP16's range overflows
  on the way out), innermost first.

Nothing here imports torch or ONNX at module level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence

from .precision import outermost

if TYPE_CHECKING:
    import numpy as np
    import torch

JUMP = 4.0  # an output error this many times its inputs' (and the dtype's epsilon) starts in the module


@dataclass(frozen=True)
class ModuleError:
    """One module's first call: its floating inputs' and outputs' error against FP32."""

    name: str
    input_error: float  # relative L2 over its floating inputs (inf when one is NaN/Inf where FP32's is not)
    output_error: float
    input_nonfinite: int
    output_nonfinite: int
    reference_max: float  # largest |x| of its FP32 output


@dataclass(frozen=True)
class Candidate:
    name: str
    score: float  # output error over input error (inf: the output goes NaN/Inf from finite inputs)
    why: str


def tensor_error(pairs: Iterable[tuple["np.ndarray", "np.ndarray"]]) -> tuple[float, int, float]:
    """(relative L2, NaN/Inf count where the reference is finite, reference |max|) over (value, reference) pairs;
    NaN figures when no pair could be compared (no float tensor, shapes that differ): such a module is not
    "exact", it was not measured, and neither a candidate nor the module that holds one."""
    import numpy as np

    diff = norm = peak = 0.0
    nonfinite = compared = 0
    for value, reference in pairs:
        value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
        if value.shape != reference.shape or not reference.size:
            continue
        compared += 1
        finite = np.isfinite(reference)
        nonfinite += int((~np.isfinite(value) & finite).sum())
        diff += float(np.square(np.where(finite, value - reference, 0.0)).sum())
        norm += float(np.square(np.where(finite, reference, 0.0)).sum())
        peak = max(peak, float(np.abs(reference[finite]).max(initial=0.0)))
    if not compared:
        return math.nan, 0, math.nan
    if nonfinite:
        return math.inf, nonfinite, peak
    return (math.sqrt(diff / norm) if norm > 0 else math.sqrt(diff)), 0, peak


def _floats(tree: Any) -> list["torch.Tensor"]:
    import torch
    from torch.utils._pytree import tree_flatten

    return [leaf.detach() for leaf in tree_flatten(tree)[0] if isinstance(leaf, torch.Tensor) and leaf.is_floating_point()]


Hooks = Callable[[str], tuple[Callable[..., None], Callable[..., None]]]


def _run_hooked(module: "torch.nn.Module", inputs: Any, hooks: Hooks) -> None:
    """One inference run of ``module`` on ``inputs`` with ``hooks(name)``'s (before, after) pair on each named
    submodule: a pre-hook taking (module, args, kwargs) and a forward hook taking (module, args, output)."""
    import torch

    handles = []
    for name, sub in module.named_modules():
        if name:
            before, after = hooks(name)
            handles.append(sub.register_forward_pre_hook(before, with_kwargs=True))
            handles.append(sub.register_forward_hook(after))
    try:
        with torch.inference_mode():
            inputs.call(module)
    finally:
        for handle in handles:
            handle.remove()


def _run_recorded(module: "torch.nn.Module", inputs: Any) -> dict[str, tuple[list[Any], list[Any]]]:
    """Each named module's first call: (its floating inputs, its floating outputs) as numpy."""
    store: dict[str, tuple[list[Any], list[Any]]] = {}
    pending: dict[str, list[Any]] = {}

    def hooks(name: str) -> tuple[Callable[..., None], Callable[..., None]]:
        def before(_: Any, args: Any, kwargs: Any) -> None:
            if name not in store and name not in pending:
                pending[name] = [t.float().cpu().numpy() for t in _floats((args, kwargs))]

        def after(_: Any, __: Any, output: Any) -> None:
            if name not in store and name in pending:
                store[name] = (pending.pop(name), [t.float().cpu().numpy() for t in _floats(output)])
        return before, after

    _run_hooked(module, inputs, hooks)
    return store


def module_producers(model: "torch.nn.Module", inputs: Any, device: str) -> dict[str, tuple[str, ...]]:
    """For each named module, the named modules that computed its floating inputs, in an FP32 eager run: the
    first module to return each tensor (or the storage a view of it shares), the innermost where a parent
    returns its child's.  What feeds a module that was kept in FP32 and did not make the engine pass: its
    inputs' own rounding, which it amplifies (an attention score's q and k), is the next thing to keep."""
    from .under_test import model_copy

    made: dict[int, str] = {}  # storage address -> the module that returned it first
    alive: list[Any] = []  # every returned tensor is held, so no storage is freed and reused during the run
    producers: dict[str, tuple[str, ...]] = {}
    taken: dict[str, set[int]] = {}  # the storages each module was called with (what it may hand back)

    def storages(tree: Any) -> list[tuple[Any, int]]:
        # A view's storage is its base's (q, k, v = qkv(x).chunk(3, -1)): the storage, not the view's address.
        return [(t, int(t.untyped_storage().data_ptr())) for t in _floats(tree) if t.numel()]

    def hooks(name: str) -> tuple[Callable[..., None], Callable[..., None]]:
        def before(_: Any, args: Any, kwargs: Any) -> None:
            taken[name] = {address for _, address in storages((args, kwargs))}
            if name not in producers:
                producers[name] = tuple(dict.fromkeys(made[a] for a in taken[name] if a in made))

        def after(_: Any, __: Any, output: Any) -> None:
            for tensor, address in storages(output):
                alive.append(tensor)
                if address not in taken.get(name, ()):  # handed back (an eval-mode Dropout, an Identity): not made
                    made.setdefault(address, name)
        return before, after

    _run_hooked(model_copy(model, dtype=None, device=device), inputs.cast(dtype=None, device=device), hooks)
    return producers


def torch_module_errors(model: "torch.nn.Module", inputs: Any, dtype: "torch.dtype", device: str,
                        keep: Sequence[str] = (), reduced_model: Optional["torch.nn.Module"] = None) -> list[ModuleError]:
    """Every named module's error at ``dtype`` (``keep`` in FP32 between casts) against FP32, in call order.

    ``reduced_model``: the reduced-precision copy when it is more than the cast (torchao's INT8/FP8 copy: BF16 with
    its ``nn.Linear`` weights quantized, ``keep`` already in FP32); it keeps the model's module names."""
    from .under_test import model_copy
    from .precision import keep_modules_fp32

    reference = _run_recorded(model_copy(model, dtype=None, device=device), inputs.cast(dtype=None, device=device))
    if reduced_model is None:
        reduced_model = model_copy(model, dtype=dtype, device=device)
        if keep:
            keep_modules_fp32(reduced_model, keep, dtype)
    reduced = _run_recorded(reduced_model, inputs.cast(dtype=dtype, device=device))
    errors = []
    for name, (ref_in, ref_out) in reference.items():
        if name not in reduced:
            continue
        got_in, got_out = reduced[name]
        in_err, in_bad, _ = tensor_error(zip(got_in, ref_in))
        out_err, out_bad, peak = tensor_error(zip(got_out, ref_out))
        errors.append(ModuleError(name, in_err, out_err, in_bad, out_bad, peak))
    return errors


def onnx_module_errors(reference_onnx: Path, candidate_onnx: Path,
                       feeds: Mapping[str, "np.ndarray"]) -> list[ModuleError]:
    """Every module scope of the FP32 export: the tensors entering and leaving its nodes, compared
    between the FP32 export and ``candidate_onnx`` (a model derived from it, tensor names kept)."""
    import onnx

    from ..audit.onnx_graph import module_scopes
    from .divergence import run_all_tensors, topological

    reference_model = onnx.load(str(reference_onnx))
    reference = run_all_tensors(reference_model, feeds)
    candidate = run_all_tensors(onnx.load(str(candidate_onnx)), feeds)
    producer: dict[str, set[str]] = {}
    inside: dict[str, list[Any]] = {}
    for node in topological(reference_model.graph):
        scopes = set(module_scopes(node))
        for output in node.output:
            producer[output] = scopes
        for scope in scopes:
            inside.setdefault(scope, []).append(node)
    readers: dict[str, list[set[str]]] = {}  # tensor -> the scopes of every node reading it
    for node in reference_model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(set(module_scopes(node)))
    graph_outputs = {output.name for output in reference_model.graph.output}
    errors = []
    for scope, nodes in inside.items():
        entering = {name for node in nodes for name in node.input if name and scope not in producer.get(name, set())}
        leaving = {name for node in nodes for name in node.output
                   if name in graph_outputs or any(scope not in scopes for scopes in readers.get(name, []))}

        def pairs(names: set[str]) -> list[tuple[Any, Any]]:
            return [(candidate[name], reference[name]) for name in sorted(names)
                    if name in candidate and name in reference and reference[name].dtype.kind == "f"]

        in_err, in_bad, _ = tensor_error(pairs(entering))
        out_err, out_bad, peak = tensor_error(pairs(leaving))
        errors.append(ModuleError(scope, in_err, out_err, in_bad, out_bad, peak))
    return errors


def candidates(errors: Sequence[ModuleError], dtype_max: float, epsilon: float,
               covered: Sequence[str] = ()) -> list[Candidate]:
    """The modules to try keeping in FP32, most promising first (see the module's docstring).

    ``covered``: modules already kept (they and what is inside them are no candidates)."""
    by_name = {error.name: error for error in errors}
    found: dict[str, Candidate] = {}
    for error in errors:
        # Inputs not measured (the graph's own inputs, or no float tensor among them) enter exact.
        entering = 0.0 if math.isnan(error.input_error) else error.input_error
        if error.output_nonfinite and not error.input_nonfinite:
            spot = Candidate(error.name, math.inf, "its output goes NaN/Inf from finite inputs")
        elif error.output_error >= JUMP * max(entering, epsilon):  # a NaN output error (not measured): never
            spot = Candidate(error.name, error.output_error / max(entering, epsilon),
                             f"relative error {_g(entering)} in, {_g(error.output_error)} out")
        else:
            continue
        name: Optional[str] = _holding(error.name, by_name, dtype_max)
        if name is None or _inside(name, covered):
            continue
        if name not in found or found[name].score < spot.score:
            found[name] = Candidate(name, spot.score, spot.why if name == error.name else
                                    f"{error.name} inside it: {spot.why}; {name}'s FP32 output fits the dtype")
    innermost = [c for c in found.values() if not any(other.startswith(c.name + ".") for other in found)]
    return sorted(innermost, key=lambda c: (-c.score, -c.name.count("."), c.name))


def _holding(name: str, by_name: Mapping[str, ModuleError], dtype_max: float) -> Optional[str]:
    """``name`` or the nearest module enclosing it whose FP32 output fits the dtype and whose inputs are finite."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        error = by_name.get(".".join(parts[:end]))
        if error is not None and error.reference_max <= dtype_max and not error.input_nonfinite:
            return error.name
    return None


def _inside(name: str, covered: Sequence[str]) -> bool:
    return any(name == kept or name.startswith(kept + ".") for kept in outermost(covered))


def _g(value: float) -> str:
    return f"{value:.2g}"
