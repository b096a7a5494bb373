"""ONNX graph facts the stages share: loading, constant folding, constants, node labels, module paths."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

if TYPE_CHECKING:
    import numpy as np
    import onnx

STANDARD_DOMAINS = ("", "ai.onnx")


def load(model: Union[str, Path, "onnx.ModelProto"]) -> "onnx.ModelProto":
    import onnx

    if isinstance(model, (str, Path)):
        return onnx.load(str(model))
    return model


def fold_constants(model: "onnx.ModelProto") -> tuple["onnx.ModelProto", Optional[str]]:
    """Polygraphy's constant folding (what `polygraphy surgeon sanitize --fold-constants` runs).

    Restrictions such as "axes must be an initializer" hold after folding even where the exporter
    computed the value from constants, so stages judge the folded graph.  Returns the model and,
    when folding could not run, why (the unfolded model is judged then).
    """
    import importlib.util

    if importlib.util.find_spec("onnx_graphsurgeon") is None:
        return model, "constants not folded: pip install onnx-graphsurgeon (Polygraphy's folding needs it)"
    from polygraphy.backend.onnx import fold_constants as polygraphy_fold
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):
        try:
            # "basic" partitioning: a node ONNX Runtime cannot run (a custom operator) does not stop the rest folding.
            # ONNX's own shape inference: ONNX Runtime's symbolic one leaves sym_shape_infer_temp.onnx
            # in the working directory (the user's repository) when it cannot infer every shape.
            return polygraphy_fold(model, copy=True, error_ok=True, partitioning="basic",
                                   allow_onnxruntime_shape_inference=False), None
        except Exception as exc:  # folding is an optimisation of the audit, never a reason to stop it
            return model, f"constants not folded: {type(exc).__name__}: {str(exc)[:200]}"


def walk(graph: "onnx.GraphProto", prefix: str = "") -> Iterator[tuple[str, Any, "onnx.GraphProto"]]:
    """(label, node, owning graph) for every node, nested If/Loop/Scan bodies included."""
    import onnx

    for index, node in enumerate(graph.node):
        label = prefix + (node.name or f"{node.op_type}_{index}")
        yield label, node, graph
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from walk(attribute.g, f"{label}/{attribute.name}/")
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for position, sub in enumerate(attribute.graphs):
                    yield from walk(sub, f"{label}/{attribute.name}[{position}]/")


def constants(model: "onnx.ModelProto") -> dict[str, "np.ndarray"]:
    """Initializers and Constant-node outputs, by tensor name (top-level and nested graphs)."""
    from onnx import numpy_helper

    values: dict[str, Any] = {}

    def collect(graph: Any) -> None:
        for init in graph.initializer:
            values[init.name] = numpy_helper.to_array(init)
    collect(model.graph)
    for _, node, graph in walk(model.graph):
        if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS:
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
                elif attribute.name in ("value_int", "value_ints", "value_float", "value_floats"):
                    import numpy as np

                    values[node.output[0]] = np.asarray(onnx_attribute(attribute))
        if graph is not model.graph:
            collect(graph)
    return values


def onnx_attribute(attribute: Any) -> Any:
    from onnx import helper

    return helper.get_attribute_value(attribute)


def opset(model: "onnx.ModelProto", domain: str = "") -> Optional[int]:
    for entry in model.opset_import:
        if entry.domain in ((domain,) if domain else STANDARD_DOMAINS):
            return int(entry.version)
    return None


# The TorchScript fallback traces the model inside a wrapper (export_torchscript._FlatCall) whose
# attribute ``module`` holds it: every node name in such an export starts with this scope.
TORCHSCRIPT_ROOT = "module"


def module_scopes(node: Any) -> list[str]:
    """Every PyTorch module a node lies in, outermost first (``["encoder", "encoder.layer.0", ...]``).

    Read from the dynamo exporter's ``pkg.torch.onnx.name_scopes`` metadata (full module paths, then
    the operator's own name) or, for the TorchScript exporter, from the node's scoped name
    (``/module/encoder/layer.0/attn/MatMul``: attribute names, then the operator's).  [] if unknown.
    """
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [s for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                return []
            return scopes[:-1]  # the last scope is the operator's own name
    if not node.name.startswith("/"):
        return []
    parts = node.name.strip("/").split("/")[:-1]
    if parts[:1] == [TORCHSCRIPT_ROOT]:
        parts = parts[1:]
    return [".".join(parts[: depth + 1]) for depth in range(len(parts))]


def module_path(node: Any) -> str:
    """The innermost PyTorch module a node came from ("" if unknown)."""
    scopes = module_scopes(node)
    return scopes[-1] if scopes else ""


def nodes_in_modules(model: "onnx.ModelProto", modules: Sequence[str]) -> dict[str, list[str]]:
    """Module name -> the names of the main graph's nodes that lie inside it (or inside its children)."""
    found: dict[str, list[str]] = {name: [] for name in modules}
    for node in model.graph.node:
        for scope in set(module_scopes(node)) & found.keys():
            found[scope].append(node.name)
    return found


def node_operators(model: "onnx.ModelProto") -> dict[str, str]:
    """Node label -> operator type, for every node."""
    return {label: node.op_type for label, node, _ in walk(model.graph)}


def module_paths(model: "onnx.ModelProto") -> dict[str, str]:
    """Node label -> module path, for every node that has one."""
    return {label: path for label, node, _ in walk(model.graph) if (path := module_path(node))}


def consumers(model: "onnx.ModelProto") -> set[str]:
    """Tensor names something reads: node inputs anywhere, and the graph's outputs."""
    used = {output.name for output in model.graph.output}
    for _, node, _ in walk(model.graph):
        used.update(name for name in node.input if name)
    return used
