"""PyTorch: what stops the model before any engine sees it.

- graph breaks (torch._dynamo.explain): where torch.compile splits the graph; a warning, since
  ONNX and TensorRT go through torch.export, which has no breaks but fails instead;
- torch.export failures, data-dependent control flow named with its source line;
- operators the ONNX exporter cannot translate, named with the FX node and module that use them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from .findings import ALL_TARGETS, Finding

EXPLAIN = "torch-graph-breaks"
EXPORT = "torch-export"
ONNX_EXPORT = "onnx-export"
_DATA_DEPENDENT = ("GuardOnDataDependentSymNode", "data-dependent", "Could not guard on data-dependent")
_RAISED_AT = re.compile(r'The following call raised this error:\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in \w+\s*\n\s*(?P<code>[^\n]*)')
_NO_TRANSLATION = re.compile(r"No ONNX function found for <OpOverload\(op='(?P<op>[\w.]+)', overload='(?P<overload>\w+)'\)>")


@dataclass
class TorchStageResult:
    findings: list[Finding] = field(default_factory=list)
    onnx_model: Any = None  # onnx.ModelProto when the ONNX export succeeded
    program: Any = None  # the ExportedProgram when torch.export succeeded


def torch_findings(model: Any, inputs: Sequence[Any], *, dynamic_batch: bool = False) -> TorchStageResult:
    result = TorchStageResult()
    result.findings.extend(graph_break_findings(model, inputs))
    from ..export import ExportError, export_program, onnx_from_program

    try:
        result.program = export_program(model, inputs, dynamic_batch=dynamic_batch)
    except ExportError as err:
        result.findings.append(_export_failure(model, err))
        return result
    try:
        result.onnx_model = onnx_from_program(result.program)
    except ExportError as err:
        result.findings.extend(untranslatable_findings(result.program, err))
    return result


def graph_break_findings(model: Any, inputs: Sequence[Any]) -> list[Finding]:
    import torch
    import torch._dynamo

    from ..export import quiet_exporter, short_reason, torch_error_log
    from ..inputs import as_model_inputs
    from ..model import model_copy

    try:
        # explain runs the forward: on copies, as the export does, so a forward that changes its input or
        # its module in place changes neither the user's tensors nor their model
        copied = model_copy(model, dtype=None, device="cpu")
        copied_inputs = as_model_inputs(inputs).cast(dtype=None, device="cpu")
        with quiet_exporter(), torch_error_log(), torch.no_grad():
            explanation = copied_inputs.call(torch._dynamo.explain(copied))  # keyword inputs as keywords
    except Exception as exc:  # explain itself failing is not the model's problem to report as a break
        return [Finding(EXPLAIN, ALL_TARGETS, "", "", f"torch._dynamo.explain could not run: "
                        f"{one_line_reason(short_reason(exc))}", "warning")]
    finally:
        torch._dynamo.reset()
    findings = []
    for reason in explanation.break_reasons:
        frame = reason.user_stack[-1] if reason.user_stack else None
        where = f"{frame.filename}:{frame.lineno}" if frame else ""
        code = f": `{frame.line.strip()}`" if frame is not None and frame.line else ""
        findings.append(Finding(EXPLAIN, ALL_TARGETS, "", where,
                                f"graph break ({reason.reason}){code}; torch.compile splits the graph here",
                                "warning", module_path=module_at(model, frame.filename, frame.lineno) if frame else ""))
    return findings


def _export_failure(model: Any, err: Any) -> Finding:
    text = err.detail or err.reason
    match = _RAISED_AT.search(text)
    where = f"{match['file']}:{match['line']}" if match else ""
    module = module_at(model, match["file"], int(match["line"])) if match else ""
    if any(marker in text for marker in _DATA_DEPENDENT):
        code = f" `{match['code'].strip()}`" if match else ""
        return Finding(EXPORT, ALL_TARGETS, "", where,
                       f"data-dependent control flow{code}: torch.export cannot trace a branch on tensor values "
                       "(torch.cond can express it)", "error", module_path=module)
    return Finding(EXPORT, ALL_TARGETS, "", where, f"torch.export failed: {one_line_reason(err.reason)}", "error",
                   module_path=module)


def one_line_reason(reason: str, max_chars: int = 600) -> str:
    """export.short_reason's lines as one: torch's own words first, the user's frame (``at file:line ...``,
    its first line when found) after them in parentheses. The first line alone was the frame, without why."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    frame = lines.pop(0) if len(lines) > 1 and lines[0].startswith("at ") else ""
    text = " ".join(lines) + (f" ({frame})" if frame else "")
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def untranslatable_findings(program: Any, err: Any) -> list[Finding]:
    """The FX nodes using the operator the ONNX exporter has no translation for."""
    match = _NO_TRANSLATION.search(err.detail or "") or _NO_TRANSLATION.search(err.reason)
    if not match:
        return [Finding(ONNX_EXPORT, ALL_TARGETS, "", "", f"torch.onnx.export failed: {err.reason.splitlines()[-1]}",
                        "error")]
    target_name = f"{match['op']}.{match['overload']}"
    findings = []
    for node in program.graph.nodes:
        if node.op == "call_function" and _target_name(node.target) == target_name:
            findings.append(Finding(ONNX_EXPORT, ALL_TARGETS, match["op"], node.name,
                                    f"the ONNX exporter has no translation for {target_name}",
                                    "error", module_path=_fx_module_path(node)))
    return findings or [Finding(ONNX_EXPORT, ALL_TARGETS, match["op"], "",
                                f"the ONNX exporter has no translation for {target_name}", "error")]


def _target_name(target: Any) -> str:
    return str(target)  # an OpOverload prints as aten.cummax.default


def _fx_module_path(node: Any) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, _ = list(stack.values())[-1]
    return str(path)


def module_at(model: Any, filename: str, lineno: int) -> str:
    """The module(s) whose class's forward holds this source line ("" for the root, "?" if none)."""
    import inspect

    matches = []
    for name, module in model.named_modules():
        forward = type(module).forward
        code = getattr(forward, "__code__", None)
        if code is None or code.co_filename != filename:
            continue
        try:
            lines, first = inspect.getsourcelines(forward)
        except (OSError, TypeError):
            continue
        if first <= lineno < first + len(lines):
            matches.append(name or "(root)")
    if not matches:
        return ""
    return matches[0] if len(matches) == 1 else f"{matches[0]} (and {len(matches) - 1} more)"
