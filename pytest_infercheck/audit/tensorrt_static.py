"""TensorRT, predicted: the ONNX graph walked against a versioned support matrix.

Where TensorRT cannot be imported, this is the whole TensorRT audit.  The matrix files in
pytest_infercheck/data/ are derived (scripts/build_trt_matrix.py) from TensorRT's own ONNX operator
tables; every finding here says "predicted from the TensorRT X.Y table" because no parser ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Optional

from .findings import Finding
from . import onnx_graph

if TYPE_CHECKING:
    import onnx

STAGE = "tensorrt-static"
TARGET = "tensorrt"
DEFAULT_VERSION = "10.15"


@dataclass(frozen=True)
class SupportMatrix:
    version: str
    opset_min: int
    opset_max: int
    operators: dict[str, dict[str, Any]]

    @property
    def basis(self) -> str:
        return f"predicted from the TensorRT {self.version} table"


def available_versions() -> list[str]:
    names = [p.name for p in resources.files("pytest_infercheck.data").iterdir() if p.name.startswith("tensorrt-")]
    versions = [name[len("tensorrt-"):-len(".json")] for name in names if name.endswith(".json")]
    return sorted(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


def resolve_version(text: Optional[str]) -> str:
    """"10.15" as it is; "10" -> the newest 10.x table; None -> the newest table; else a ValueError naming the choices."""
    versions = available_versions()
    if text is None or str(text).strip() == "":
        return versions[-1]
    wanted = str(text).strip()
    if wanted in versions:
        return wanted
    same_major = [v for v in versions if v.split(".")[0] == wanted.split(".")[0]]
    if "." not in wanted and same_major:
        return same_major[-1]
    raise ValueError(f"no TensorRT support table for version {wanted!r}; tables: {', '.join(versions)} "
                     f"(a major version alone, e.g. 10, picks its newest table)")


@lru_cache(maxsize=None)
def load_matrix(version: Optional[str] = None) -> SupportMatrix:
    version = resolve_version(version)
    data = json.loads(resources.files("pytest_infercheck.data").joinpath(f"tensorrt-{version}.json").read_text())
    return SupportMatrix(data["tensorrt_version"], data["opset_min"], data["opset_max"], data["operators"])


def static_findings(model: "onnx.ModelProto", version: Optional[str] = None, *, fold: bool = True) -> list[Finding]:
    """Every node TensorRT X.Y is predicted not to run, and why (the model is constant-folded first)."""
    matrix = load_matrix(version)
    module_paths = onnx_graph.module_paths(model)  # folding drops node metadata: read it first
    if fold:
        model, _ = onnx_graph.fold_constants(model)
    findings = _opset_findings(model, matrix)
    walker = _GraphWalk(model, matrix, module_paths)
    for label, node, _ in onnx_graph.walk(model.graph):
        findings.extend(walker.node_findings(label, node))
    return findings


def _opset_findings(model: "onnx.ModelProto", matrix: SupportMatrix) -> list[Finding]:
    version = onnx_graph.opset(model)
    if version is None or matrix.opset_min <= version <= matrix.opset_max:
        return []
    return [Finding(STAGE, TARGET, "", "", f"the model uses opset {version}; TensorRT {matrix.version} parses opsets "
                    f"{matrix.opset_min} to {matrix.opset_max} ({matrix.basis}); re-export with "
                    f"torch.onnx.export(..., opset_version={min(version, matrix.opset_max)})", "opset", predicted=True)]


class _GraphWalk:
    """The facts the restriction checks need, computed once per model."""

    def __init__(self, model: "onnx.ModelProto", matrix: SupportMatrix, module_paths: dict[str, str]) -> None:
        self.matrix = matrix
        self.module_paths = module_paths
        self.opset = onnx_graph.opset(model) or matrix.opset_max
        self.constants = onnx_graph.constants(model)
        self.used = onnx_graph.consumers(model)
        self.ranks = _ranks(model)

    def node_findings(self, label: str, node: Any) -> list[Finding]:
        def finding(reason: str, verdict: str) -> Finding:
            return Finding(STAGE, TARGET, node.op_type, label, f"{reason} ({self.matrix.basis})", verdict,
                           predicted=True, module_path=self.module_paths.get(label, ""))

        if node.domain not in onnx_graph.STANDARD_DOMAINS:
            return [finding(f"custom operator of domain {node.domain!r}: TensorRT has no built-in layer for it, "
                            "a plugin would be needed", "needs-plugin")]
        row = self.matrix.operators.get(node.op_type)
        if row is None:
            return [finding(f"{node.op_type} is not in TensorRT's operator table", "unknown")]
        if not row["supported"]:
            extra = f": {row['restrictions']}" if row["restrictions"] else ""
            return [finding(f"TensorRT does not support {node.op_type}{extra}", "unsupported")]
        return [finding(problem, "restricted") for problem in self.restriction_problems(node, row["checks"])]

    def restriction_problems(self, node: Any, checks: list[dict[str, Any]]) -> list[str]:
        problems = []
        for check in checks:
            problem = getattr(self, "_check_" + check["kind"])(node, check)
            if problem:
                problems.append(problem)
        return problems

    # -- one method per check kind (the kinds scripts/build_trt_matrix.py emits) -------------------

    def _check_constant_input(self, node: Any, check: dict[str, Any]) -> Optional[str]:
        tensor = self._input(node, check["input"])
        if tensor and tensor not in self.constants:
            return f"input {check['input']!r} ({tensor}) must be a constant, but it is computed at run time"
        return None

    def _check_zero_input(self, node: Any, check: dict[str, Any]) -> Optional[str]:
        tensor = self._input(node, check["input"])
        if not tensor:
            return None
        value = self.constants.get(tensor)
        if value is None:
            return f"{check['input']} ({tensor}) must be a constant zero; it is computed at run time"
        if value.any():
            return f"{check['input']} must be zero (symmetric quantization); it holds non-zero values"
        return None

    def _check_input_below(self, node: Any, check: dict[str, Any]) -> Optional[str]:
        value = self.constants.get(self._input(node, check["input"]) or "")
        if value is not None and value.size and int(value.max()) >= check["limit"]:
            return f"{check['input']} = {int(value.max())} must be less than {check['limit']}"
        return None

    def _check_spatial_rank(self, node: Any, check: dict[str, Any]) -> Optional[str]:
        rank = self.ranks.get(node.input[0]) if node.input else None
        if rank is not None and rank - 2 not in check["allowed"]:
            return f"{rank - 2}D pooling; TensorRT pools in {' or '.join(f'{r}D' for r in check['allowed'])} only"
        return None

    def _check_attribute_all_ones(self, node: Any, check: dict[str, Any]) -> Optional[str]:
        value = _attribute(node, check["attribute"])
        if value is not None and any(v != 1 for v in value):
            return f"{check['attribute']}={list(value)} must be empty or all ones"
        return None

    def _check_attribute_equals(self, node: Any, check: dict[str, Any]) -> Optional[str]:
        value = _attribute(node, check["attribute"])
        if isinstance(value, bytes):
            value = value.decode()
        if value is not None and value != check["value"]:
            return f"attribute {check['attribute']}={value!r} must be {check['value']!r}"
        return None

    def _check_unused_output(self, node: Any, check: dict[str, Any]) -> Optional[str]:
        names = _schema_names(node, self.opset, "outputs")
        position = names.index(check["output"]) if check["output"] in names else None
        if position is not None and position < len(node.output) and node.output[position] in self.used:
            return f"output {check['output']!r} is used; TensorRT does not produce it"
        return None

    def _check_only_first_output(self, node: Any, check: dict[str, Any]) -> Optional[str]:
        extra = [name for name in node.output[1:] if name and name in self.used]
        if extra:
            return f"only the first output is supported; {', '.join(extra)} is used"
        return None

    def _input(self, node: Any, name: str) -> Optional[str]:
        names = _schema_names(node, self.opset, "inputs")
        if name not in names:
            return None  # this opset has it as an attribute (e.g. Reduce* before opset 18): constant by nature
        position = names.index(name)
        return node.input[position] if position < len(node.input) and node.input[position] else None


def _schema_names(node: Any, opset: int, kind: str) -> list[str]:
    import onnx

    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain or "")
    except onnx.defs.SchemaError:
        return []
    return [formal.name for formal in getattr(schema, kind)]


def _attribute(node: Any, name: str) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx_graph.onnx_attribute(attribute)
    return None


def _ranks(model: "onnx.ModelProto") -> dict[str, int]:
    """Tensor ranks from ONNX shape inference (best effort: a model it cannot infer gives what it can)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    graph = inferred.graph
    ranks = {}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        tensor = info.type.tensor_type
        if tensor.HasField("shape"):
            ranks[info.name] = len(tensor.shape.dim)
    return ranks
