"""Reduced precision beyond a dtype: the INT8 recipe (``int8_ops=``) and the modules kept in FP32
(``keep_fp32=``), for every backend that can honour them (docs/precision.md).

- PyTorch engines (eager, Inductor, AOTInductor): the kept modules are cast back to FP32 and run
  between casts: their inputs to FP32, their outputs back to the engine's dtype.
- ONNX engines: a module's nodes are found through the export's scope metadata
  (onnx_graph.module_scopes); FP16 conversion blocks them (node_block_list), INT8 quantization
  excludes them (nodes_to_exclude).

Nothing here imports torch or ONNX at module level.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ..measure.results import PrecisionRecipe

if TYPE_CHECKING:
    import torch

INT8_METHOD = "ONNX Runtime static INT8 (QDQ, symmetric, per-channel 7-bit weights)"
FP16_METHOD = "ONNX float16 conversion (inputs and outputs kept FP32)"
ALL_OPS = "all"  # int8_ops=all: every operator type ONNX Runtime's QDQ quantizer handles
KEEP_FP32_GAP = "keep_fp32 is not honoured"
TORCH_BACKENDS = ("eager", "inductor", "aoti")  # engines of the PyTorch module itself (torch_engine.module_copy)


class KeepFp32Error(ValueError):
    """keep_fp32 names a module the model does not have."""


def check_module_names(module: Any, names: Sequence[str]) -> None:
    """Raise KeepFp32Error naming every name that is no submodule of ``module`` (with close ones)."""
    known = [name for name, _ in module.named_modules() if name]
    unknown = [name for name in names if name not in known]
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=3)
        problems.append(f"{name!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
    shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
    raise KeepFp32Error(f"keep_fp32: {type(module).__name__} has no module {', '.join(problems)}; names are those "
                        f"of model.named_modules(): {shown or '(it has no submodules)'}")


def check_keepable(module: Any, names: Sequence[str], *, casts_parameters: bool) -> None:
    """Raise KeepFp32Error where a named module cannot be kept in FP32 on its own (after check_module_names):

    - a container with no forward of its own (nn.ModuleList, nn.ModuleDict; a subclass with its own forward,
      such as torchvision's IntermediateLayerGetter, is kept): its children run, never it, so the casts
      around its forward would never run while its weights were FP32 (a dtype error in the user's code, or,
      in an ONNX export, no node of it);
    - where the engine casts the model's parameters (``casts_parameters``: a PyTorch engine below FP32), a
      module sharing a parameter with a module outside every kept one (tied weights: GPT-2's lm_head and
      wte): a parameter has one dtype, so the other module would get FP32 weights in a half-precision run.
      ONNX engines convert the export's tensors and TensorRT builds from it: tied weights are no matter there.
    """
    import torch

    roots = kept_roots(module, names)
    for name, sub in roots:
        if type(sub).forward is torch.nn.Module.forward:
            children = [f"{name}.{child}" for child, _ in sub.named_children()]
            shown = ", ".join(repr(c) for c in children[:6]) + (", ..." if len(children) > 6 else "")
            raise KeepFp32Error(f"keep_fp32: {name!r} is a {type(sub).__name__}, which has no forward of its own (its "
                                f"children run, not it), so it cannot be kept in FP32 as one module: name its "
                                f"children instead{': ' + shown if shown else ''}")
    if not casts_parameters:
        return
    holders = {id(param): name for name, sub in roots for param in sub.parameters()}
    # By identity: a module registered under two names (an alias outside the kept subtree of one inside it)
    # is inside, whichever name named_modules() lists it under.
    kept_modules = {id(m) for _, sub in roots for m in sub.modules()}
    # Every tie at once, and the list that keeps them all: one message, not one per retry (BERT's MLM head ties
    # its decoder's weight to the word embeddings and its bias to the head's own).
    ties = [(holders[id(param)], f"{owner}.{pname}" if owner else pname, owner)
            for owner, sub in module.named_modules() if id(sub) not in kept_modules
            for pname, param in sub.named_parameters(recurse=False) if id(param) in holders]
    if ties:
        shown = "; ".join(f"{holder!r} with {where!r}" for holder, where, _ in ties)
        complete = keep_list([*(name for name, _ in roots), *(owner for _, _, owner in ties)])
        raise KeepFp32Error(f"keep_fp32: tied weights shared with modules that are not kept ({shown}): a parameter "
                            f"has one dtype, so keep those modules in FP32 too (keep_fp32={complete!r}) or none "
                            "of them")


def kept_roots(module: Any, names: Sequence[str]) -> list[tuple[str, Any]]:
    """(name, module) of each kept module not inside another kept one, by identity: ``outermost`` by name,
    and a module registered under a second name inside another kept module (an alias) left out too."""
    roots: list[tuple[str, Any]] = []
    for name in outermost(names):
        sub = module.get_submodule(name)
        if any(any(m is sub for m in held.modules()) for _, held in roots):
            continue  # inside a root already (or the same module under another name)
        roots = [(kept, held) for kept, held in roots if not any(m is held for m in sub.modules())] + [(name, sub)]
    return roots


def keep_list(names: Sequence[str]) -> list[str]:
    """The names once each, without those inside another one (the user's ``encoder.layer.3`` and a found
    ``encoder``: ``encoder`` alone), in order: a keep-list as a trial builds it and a message shows it."""
    return outermost(list(dict.fromkeys(names)))


def outermost(names: Sequence[str]) -> list[str]:
    """The names without those inside another one given (``encoder`` covers ``encoder.layer.0``)."""
    return [name for name in names if not any(name.startswith(other + ".") for other in names if other != name)]


def keep_modules_fp32(module: "torch.nn.Module", names: Sequence[str], dtype: "torch.dtype") -> None:
    """Run ``names`` in FP32 inside ``module`` (already cast to ``dtype``): their parameters back to
    FP32, floating inputs cast to FP32 on the way in and outputs back to ``dtype`` on the way out."""
    import torch
    from torch.utils._pytree import tree_map

    def caster(to: "torch.dtype") -> Callable[[Any], Any]:
        return lambda value: value.to(to) if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    to_fp32, to_dtype = caster(torch.float32), caster(dtype)
    # An alias inside another kept module is hooked there already: its own casts back to ``dtype`` would
    # run inside the FP32 region (kept_roots leaves it out).
    for _, sub in kept_roots(module, names):
        sub.float()
        sub.register_forward_pre_hook(lambda _, args, kwargs: (tree_map(to_fp32, args), tree_map(to_fp32, kwargs)),
                                      with_kwargs=True)
        sub.register_forward_hook(lambda _, __, output: tree_map(to_dtype, output))


def torch_recipe(request: Any, dtype: Optional["torch.dtype"]) -> bool:
    """Whether a PyTorch engine at ``dtype`` keeps modules in FP32 (FP32 engines: nothing to keep);
    recorded on the request."""
    import torch

    if not request.keep_fp32 or dtype in (None, torch.float32):
        return False
    request.recipe = PrecisionRecipe(f"PyTorch {str(dtype).replace('torch.', '')} with FP32 modules between casts",
                                     keep_fp32=tuple(request.keep_fp32))
    return True


def kept_nodes(fp32_onnx: Path, request: Any) -> list[str]:
    """The FP32 export's node names inside keep_fp32's modules; a module with none gets a note."""
    if not request.keep_fp32:
        return []
    import onnx

    from ..audit.onnx_graph import nodes_in_modules

    found = nodes_in_modules(onnx.load(str(fp32_onnx), load_external_data=False), request.keep_fp32)
    for name, nodes in found.items():
        if not nodes and not any(f"module {name!r} has no node" in note for note in request.notes):
            request.note(f"keep_fp32: module {name!r} has no node in the ONNX export (the exporter recorded no "
                         "scope for it, or its operations were folded away): nothing of it is kept in FP32")
    return sorted({node for nodes in found.values() for node in nodes})


def unknown_int8_ops(ops: Sequence[str]) -> Optional[str]:
    """Why ``ops`` holds a type ONNX Runtime's QDQ quantizer does not handle, or None (``all`` is every type).
    The one check of int8_ops: the option's parser (config/parsers.parse_int8_ops) and the build ask."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    # What quantize_static quantizes with op_types_to_quantize=None ('all'): both registries, a type of the QLinear
    # one in QDQ format through the generic QDQ operator (Softmax, Add, Mul, Concat were refused here and quantized
    # by 'all').
    handled = set(QDQRegistry) | set(QLinearOpsRegistry)
    unknown = [op for op in ops if op != ALL_OPS and op not in handled]
    if not unknown:
        return None
    return (f"{', '.join(map(repr, unknown))} is no operator type ONNX Runtime's QDQ quantizer handles; it handles "
            f"{', '.join(sorted(handled))} (or 'all' for every one)")


def int8_op_types(ops: Sequence[str]) -> Optional[list[str]]:
    """int8_ops as quantize_static's op_types_to_quantize (None: all); unknown types are a ValueError."""
    if tuple(ops) == (ALL_OPS,):
        return None
    problem = unknown_int8_ops(ops)
    if problem:
        raise ValueError(f"int8_ops: {problem}")
    return list(ops)


def onnx_recipe(request: Any, variant: str, kept: Sequence[str]) -> PrecisionRecipe:
    """What the ONNX ``variant`` ("fp16" or "int8-qdq") of ``request`` was made with."""
    int8 = variant.startswith("int8")
    return PrecisionRecipe(INT8_METHOD if int8 else FP16_METHOD,
                           quantized_ops=tuple(request.int8_ops) if int8 else (),
                           keep_fp32=tuple(request.keep_fp32), kept_nodes=len(kept))


def not_honoured(request: Any, why: str) -> None:
    """Record (and note) that this backend ran keep_fp32's modules at the reduced precision anyway."""
    request.recipe = PrecisionRecipe(f"{request.spec.backend} {request.spec.precision.upper()}",
                                     keep_fp32=tuple(request.keep_fp32), not_honoured=why)
    request.note(f"{KEEP_FP32_GAP} by {request.spec.id}: {why}; those modules ran in "
                 f"{request.spec.precision.upper()} like the rest")


_FAILED_NODE = re.compile(r"Name:'([^']+)'")


def quantized_run_hint(request: Any, error: str, inputs: Any) -> Optional[str]:
    """When an INT8 ONNX model fails to run: whether the FP32 export runs the same inputs (then the
    quantization produced the failure), the failing node's module, and how to exclude it.  None when
    the engine ran no quantized ONNX model."""
    recipe = request.recipe
    if request.spec.precision != "int8" or recipe is None or recipe.method != INT8_METHOD:
        return None
    fp32_path = request.artifacts.onnx_path()
    if (fp32_error := _fp32_run_error(fp32_path, inputs)) is not None:
        return f"the FP32 export fails on these inputs too ({fp32_error}): not a quantization problem"
    node = _FAILED_NODE.search(error)
    module = _node_module(fp32_path, node.group(1)) if node else ""
    ops = ",".join(recipe.quantized_ops) or ALL_OPS
    where = f" at node {node.group(1)!r}" + (f" in module {module!r}" if module else "") if node else ""
    fix = f"keep_fp32=[{module!r}] keeps that module in float, or " if module else ""
    return (f"INT8 quantization produced this failure{where}: the FP32 export runs the same inputs. The recipe "
            f"quantized int8_ops={ops}; {fix}int8_ops= narrows the operator types quantized (docs/precision.md)")


def _fp32_run_error(path: Path, inputs: Any) -> Optional[str]:
    import onnxruntime

    from .inputs import onnx_feeds

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        session.run(None, onnx_feeds([i.name for i in session.get_inputs()], inputs))
    except Exception as exc:  # what the FP32 model says is the answer, whatever it is
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _node_module(fp32_path: Path, node_name: str) -> str:
    import onnx

    from ..audit.onnx_graph import module_path

    model = onnx.load(str(fp32_path), load_external_data=False)
    return next((module_path(node) for node in model.graph.node if node.name == node_name), "")
