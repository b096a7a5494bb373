"""PyTorch: what stops the model before any engine sees it.

- graph breaks (torch._dynamo.explain): where torch.compile splits the graph; a warning, since
  ONNX and TensorRT go through torch.export, which has no breaks but fails instead;
- torch.export failures, data-dependent control flow named with its source line;
- operators the ONNX exporter cannot translate, named with the FX node and module that use them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from .findings import ALL_TARGETS, Finding

EXPLAIN = "torch-graph-breaks"
EXPORT = "torch-export"
ONNX_EXPORT = "onnx-export"
_DATA_DEPENDENT = ("GuardOnDataDependentSymNode", "data-dependent", "Could not guard on data-dependent")
_RAISED_AT = re.compile(r'The following call raised this error:\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in \w+\s*\n\s*(?P<code>[^\n]*)')


@dataclass
class TorchStageResult:
    findings: list[Finding] = field(default_factory=list)
    onnx_model: Any = None  # onnx.ModelProto when an ONNX exporter succeeded
    program: Any = None  # the ExportedProgram when torch.export succeeded
    exporter: str = ""  # the exporter that made onnx_model (export.DYNAMO or export.TORCHSCRIPT)
    notes: list[str] = field(default_factory=list)


def torch_findings(model: Any, inputs: Sequence[Any], *, dynamic_batch: bool = False) -> TorchStageResult:
    """Graph breaks, then the ONNX export the plugin's ONNX engines make: the dynamo exporter (through
    torch.export, traced once), else the TorchScript-based fallback (export.torchscript_fallback).
    What stopped the dynamo exporter blocks only when the fallback failed too."""
    result = TorchStageResult()
    result.findings.extend(graph_break_findings(model, inputs))
    from ..model.export import DYNAMO, ExportError, export_program, onnx_from_program

    try:
        result.program = export_program(model, inputs, dynamic_batch=dynamic_batch)
        result.onnx_model, result.exporter = onnx_from_program(result.program), DYNAMO
        return result
    except ExportError as err:
        first = err
        dynamo = (untranslatable_findings(model, result.program, err) if result.program is not None
                  else [_export_failure(model, err)])
    result.findings.extend(_after_fallback(model, inputs, first, dynamo, dynamic_batch, result))
    return result


def _after_fallback(model: Any, inputs: Sequence[Any], first: Any, dynamo: list[Finding], dynamic_batch: bool,
                    result: TorchStageResult) -> list[Finding]:
    """The dynamo exporter's findings once the TorchScript-based exporter has been tried: warnings
    when it exported the model (into ``result``), blocking with its reason added when it did not."""
    from ..model.export import TORCHSCRIPT, ExportError, prepared, torchscript_fallback

    module, cpu_inputs = prepared(model, inputs, device="cpu")
    try:
        export = torchscript_fallback(module, cpu_inputs, first, dynamic_batch=dynamic_batch)
    except ExportError as both:
        fallback = both.reason.partition("the TorchScript-based exporter (fallback) failed too:")[2]
        if not fallback.strip():
            return dynamo  # no fallback here (or a batch axis that cannot be dynamic): the dynamo answer stands
        why = f"; the TorchScript-based exporter (fallback) failed too: {one_line_reason(fallback, 300)}"
        return [replace(finding, reason=finding.reason + why) for finding in dynamo]
    result.onnx_model, result.exporter = export.proto, TORCHSCRIPT
    result.notes.append(f"exported by {TORCHSCRIPT}, as the plugin's ONNX engines are: the dynamo exporter failed")
    result.notes.extend(f"the trace froze a value {frozen}" for frozen in list(dict.fromkeys(export.frozen_values))[:3])
    fell_back = f" (the {TORCHSCRIPT} fallback exported the model, as the plugin's ONNX engines do)"
    return [replace(finding, verdict="warning", reason=finding.reason + fell_back) for finding in dynamo]


def graph_break_findings(model: Any, inputs: Sequence[Any]) -> list[Finding]:
    import torch
    import torch._dynamo

    from ..model.export import quiet_exporter, short_reason, torch_error_log
    from ..model.inputs import as_model_inputs
    from ..model.under_test import model_copy

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
    by_location: dict[str, Finding] = {}
    for reason in explanation.break_reasons:
        frame = reason.user_stack[-1] if reason.user_stack else None
        where = f"{frame.filename}:{frame.lineno}" if frame else type(model).__name__
        if where in by_location:  # one row per place, with how many breaks torch.compile made there
            by_location[where] = replace(by_location[where], count=by_location[where].count + 1)
            continue
        code = f": `{frame.line.strip()}`" if frame is not None and frame.line else ""
        module = module_at(model, frame.filename, frame.lineno) if frame else ""
        by_location[where] = Finding(EXPLAIN, ALL_TARGETS, "", where,
                                     f"graph break ({graph_break_reason(reason.reason)}){code}; torch.compile "
                                     "splits the graph here",
                                     "warning", module_path=module)
    return list(by_location.values())


def _export_failure(model: Any, err: Any) -> Finding:
    text = err.detail or err.reason
    match = _RAISED_AT.search(text)
    where, module = failure_location(model, err)
    if any(marker in text for marker in _DATA_DEPENDENT):
        code = f" `{match['code'].strip()}`" if match else ""
        return Finding(EXPORT, ALL_TARGETS, "", where,
                       f"data-dependent control flow{code}: torch.export cannot trace a branch on tensor values "
                       "(torch.cond can express it)", "error", module_path=module)
    return Finding(EXPORT, ALL_TARGETS, "", where, f"torch.export failed: {one_line_reason(err.reason)}", "error",
                   module_path=module)


def failure_location(model: Any, err: Any) -> tuple[str, str]:
    """(file:line, module path) of an export failure: the frame torch's message names, else the user's
    frame in the traceback (failure_location.user_frame), else the model's own forward."""
    import inspect

    from ..core.failure_location import user_frame

    match = _RAISED_AT.search(err.detail or err.reason)
    if match:
        filename, lineno = match["file"], int(match["line"])
    elif err.__cause__ is not None and (frame := user_frame(err.__cause__)) is not None:
        filename, lineno = frame.filename, frame.lineno
    else:
        try:
            filename, lineno = inspect.getsourcefile(type(model).forward) or "", inspect.getsourcelines(type(model).forward)[1]
        except (OSError, TypeError):
            return type(model).__name__, "(root)"
    return f"{filename}:{lineno}", module_at(model, filename, lineno)


# Lines of torch's graph-break explanation for torch's own developers, or a link: not for the audit's row.
_BREAK_NOISE = ("Developer debug context", "For more details about this graph break", "https://", "http://")


def graph_break_reason(reason: str, max_chars: int = 400) -> str:
    """torch's graph-break reason on one line: since torch 2.8 it is several (the break, ``Explanation:``,
    ``Hint:``, developer context, a link), which broke the audit's table into loose lines."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    text = " ".join(line for line in lines if not line.startswith(_BREAK_NOISE))
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def one_line_reason(reason: str, max_chars: int = 600) -> str:
    """export.short_reason's lines as one: torch's own words first, the user's frame (``at file:line ...``,
    its first line when found) after them in parentheses. The first line alone was the frame, without why."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    frame = lines.pop(0) if len(lines) > 1 and lines[0].startswith("at ") else ""
    text = " ".join(lines) + (f" ({frame})" if frame else "")
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def untranslatable_findings(model: Any, program: Any, err: Any) -> list[Finding]:
    """The FX nodes using the operator the ONNX exporter has no translation for: each at the user's source
    line (the node's stack trace) and in its module ("(root)": the model's own forward)."""
    from ..model.export import op_sites, untranslated_op

    target_name = untranslated_op(err)
    if target_name is None:
        where, module = failure_location(model, err)
        return [Finding(ONNX_EXPORT, ALL_TARGETS, "", where, f"torch.onnx.export failed: {one_line_reason(err.reason)}",
                        "error", module_path=module)]
    operator = target_name.rsplit(".", 1)[0]
    reason = f"the ONNX exporter has no translation for {target_name}"
    findings = [Finding(ONNX_EXPORT, ALL_TARGETS, operator, site.location or site.node, reason, "error",
                        module_path=site.module_path or "(root)") for site in op_sites(program, target_name)]
    return findings or [Finding(ONNX_EXPORT, ALL_TARGETS, operator, type(model).__name__, reason, "error",
                                module_path="(root)")]


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
