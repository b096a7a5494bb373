"""torch -> ONNX (the dynamo exporter, then the TorchScript-based one) and torch -> ExportedProgram.

Failures read at the user's line: the reason starts with the frame in the user's code and carries
the decisive line of torch's message (see failure_location.py); the full traceback stays in
``ExportError.detail``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import traceback
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch

from .export_common import ANSI_ESCAPE, TORCHSCRIPT, ExportError, quiet_exporter, short_reason
from .inputs import ModelInputs, as_model_inputs
from .under_test import model_copy
from .outputs import flatten_outputs

DYNAMO = "torch.onnx.export (dynamo)"
# The dynamo exporter's words for an operator it has no ONNX translation for.
NO_TRANSLATION = re.compile(r"No ONNX function found for <OpOverload\(op='(?P<op>[\w.]+)', overload='(?P<overload>\w+)'\)>")


@dataclass(frozen=True)
class OnnxExport:
    """An ONNX model, the exporter that made it, and why the first exporter failed (when it did)."""

    proto: Any  # onnx.ModelProto
    exporter: str  # DYNAMO or TORCHSCRIPT
    fallback_reason: Optional[str] = None  # the dynamo exporter's failure, when TORCHSCRIPT made the model
    frozen_values: tuple[str, ...] = ()  # TORCHSCRIPT only: where the trace froze a value (libraries' code)


def with_flat_outputs(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` (a copy the plugin owns) returning a flat tuple of tensors, under its forward's signature.

    The exporters then never meet a dataclass, a ModelOutput or a dict they cannot return (a plain
    dataclass is unknown to torch's pytree); the graph's outputs come in the order the reference
    flattens them.  The forward is replaced on the instance rather than wrapped in another module,
    so parameter names and module paths (which the audit reports) stay the model's own, and
    ``functools.wraps`` keeps the signature, hence the graph's input names.
    """
    import functools

    forward = module.forward

    @functools.wraps(forward)
    def flat_forward(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return tuple(tensor for _, tensor in flatten_outputs(forward(*args, **kwargs)))

    module.forward = flat_forward
    return module


def dynamic_shapes_for(module: torch.nn.Module, inputs: ModelInputs, dynamic_batch: bool) -> Any:
    """torch.export's ``dynamic_shapes``: axis 0 of every tensor input, keyed by the forward's parameters."""
    if not dynamic_batch:
        return None
    import inspect

    # Dim.DYNAMIC rather than a named Dim: it does not fail on a batch of 1 at export time.
    def axis0(value: Any) -> Any:
        if isinstance(value, (list, tuple)):  # each tensor of a list input (ModelUnderTest refuses a list
            return type(value)(axis0(item) for item in value)  # under dynamic_batch; the audit may ask)
        return {0: torch.export.Dim.DYNAMIC} if value.dim() > 0 else None

    try:
        signature = inspect.signature(module.forward)
        bound = signature.bind(*inputs.args, **inputs.kwargs)
    except (TypeError, ValueError):
        return tuple(axis0(t) for t in inputs.args) if not inputs.kwargs else None
    shapes: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            shapes[name] = tuple(axis0(t) for t in value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            shapes[name] = {key: axis0(t) for key, t in value.items()}
        else:
            shapes[name] = axis0(value)
    return shapes


def export_program(module: torch.nn.Module, inputs: Any, *, dynamic_batch: bool,
                   device: str = "cpu") -> "torch.export.ExportedProgram":
    """torch.export of an eval-mode copy on ``device``."""
    module, inputs = prepared(module, inputs, device=device)
    try:
        with quiet_exporter(), torch_error_log() as logged:
            return torch.export.export(module, inputs.args, kwargs=inputs.kwargs or None,
                                       dynamic_shapes=dynamic_shapes_for(module, inputs, dynamic_batch))
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        reason = short_reason(exc)
        missing = [line for line in logged if line.rpartition(": ")[2] not in reason][:1]
        log = "".join(f"\ntorch's log: {line}" for line in logged)
        raise ExportError("torch.export", reason + "".join(f"\n  torch logged: {m}" for m in missing),
                          traceback.format_exc() + log) from exc


@contextlib.contextmanager
def torch_error_log() -> Iterator[list[str]]:
    """torch's own ERROR records while exporting, one line each, kept instead of printed.

    A failing meta kernel logs its reason (``[2, 9] X [64, 128]``) through torch's stderr handler
    before the exporter raises: the failure must carry it, not a log line beside the report."""
    logged: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        if not (record.name.startswith("torch") and record.levelno >= logging.ERROR):
            return True
        error = record.exc_info[1] if record.exc_info else None
        text = record.getMessage() + (f": {type(error).__name__}: {error}" if error is not None else "")
        logged.append(" ".join(ANSI_ESCAPE.sub("", text).split())[:500])
        return False

    # torch gives some loggers a stderr handler of their own (torch._subclasses.fake_tensor, not propagating)
    loggers = [logger for name, logger in list(logging.root.manager.loggerDict.items())
               if name.split(".")[0] == "torch" and isinstance(logger, logging.Logger)]
    handlers = {handler for logger in [logging.root, *loggers] for handler in logger.handlers}
    for handler in handlers:
        handler.addFilter(keep)
    try:
        yield logged
    finally:
        for handler in handlers:
            handler.removeFilter(keep)


def export_onnx(module: torch.nn.Module, inputs: Any, *, dynamic_batch: bool, opset: int | None = None) -> Any:
    """The ``onnx.ModelProto`` of ``export_model_onnx`` (whichever exporter made it)."""
    return export_model_onnx(module, inputs, dynamic_batch=dynamic_batch, opset=opset).proto


def export_model_onnx(module: torch.nn.Module, inputs: Any, *, dynamic_batch: bool,
                      opset: int | None = None) -> OnnxExport:
    """ONNX of an eval-mode CPU copy: the dynamo exporter, else the TorchScript-based one.

    The T5 encoder, among others, fails in the dynamo exporter's decomposition step and exports with
    the TorchScript-based exporter, which torch still ships (deprecated).  When both fail, the
    ExportError names the dynamo exporter and carries both reasons.
    """
    module, inputs = prepared(module, inputs, device="cpu")
    extra: dict[str, Any] = {"opset_version": opset} if opset is not None else {}
    try:
        return OnnxExport(_to_onnx(module, inputs.args, kwargs=inputs.kwargs or None,
                                   dynamic_shapes=dynamic_shapes_for(module, inputs, dynamic_batch), **extra), DYNAMO)
    except ExportError as first:
        try:
            return torchscript_fallback(module, inputs, first, dynamic_batch=dynamic_batch, opset=opset)
        except ExportError as failed:
            raise with_op_sites(failed, first, module, inputs, dynamic_batch) from failed.__cause__


@dataclass(frozen=True)
class OpSite:
    """Where the model uses an operator: the FX node, the module it ran in ("" for the model's own forward)
    and the user's source line (``model.py:9 in forward``; "" where torch kept no stack)."""

    node: str
    module_path: str
    location: str

    def describe(self) -> str:
        module = f"in module '{self.module_path}'" if self.module_path else "in the model's own forward"
        return f"{self.location} ({module})" if self.location else module


def untranslated_op(err: ExportError) -> Optional[str]:
    """``aten.cummax.default``: the operator the dynamo exporter had no ONNX translation for, else None."""
    match = NO_TRANSLATION.search(err.detail or "") or NO_TRANSLATION.search(err.reason)
    return f"{match['op']}.{match['overload']}" if match else None


def op_sites(program: "torch.export.ExportedProgram", target: str) -> list[OpSite]:
    """Every call of ``target`` (``aten.cummax.default``) in ``program``: node, module path, user's line."""
    from ..core.failure_location import innermost_user_frame_in

    sites = []
    for node in program.graph.nodes:
        if node.op == "call_function" and str(node.target) == target:
            stack = node.meta.get("nn_module_stack") or {}
            module_path = str(list(stack.values())[-1][0]) if stack else ""
            frame = innermost_user_frame_in(node.meta.get("stack_trace") or "")
            sites.append(OpSite(node.name, module_path,
                                f"{frame.filename}:{frame.lineno} in {frame.function}" if frame else ""))
    return sites


MAX_SITES = 5  # the places an operator's failure names before a count


def with_op_sites(failed: ExportError, first: ExportError, module: torch.nn.Module, inputs: ModelInputs,
                  dynamic_batch: bool) -> ExportError:
    """``failed`` with where the model uses the operator the dynamo exporter could not translate (``first``
    names it): torch.export of the same copy (the exporter's own first step, which succeeded) finds its nodes.
    The exporters' messages name the operator and no line of the user's code; the same ``failed`` when the
    operator is not named or the program cannot be made again."""
    target = untranslated_op(first)
    if target is None:
        return failed
    try:
        with quiet_exporter():
            program = torch.export.export(module, inputs.args, kwargs=inputs.kwargs or None,
                                          dynamic_shapes=dynamic_shapes_for(module, inputs, dynamic_batch))
        sites = op_sites(program, target)
    except Exception:  # a diagnosis, never a second failure
        return failed
    if not sites:
        return failed
    listed = "; ".join(site.describe() for site in sites[:MAX_SITES])
    more = f" and {len(sites) - MAX_SITES} more" if len(sites) > MAX_SITES else ""
    reason = f"{failed.reason}\n{target} is used at {listed}{more}"
    return ExportError(failed.exporter, reason, failed.detail)


def prepared(module: torch.nn.Module, inputs: Any, *, device: str) -> tuple[torch.nn.Module, ModelInputs]:
    """What every exporter is given: an eval-mode copy with flat outputs, and the inputs on ``device``."""
    return (with_flat_outputs(model_copy(module, dtype=None, device=device)),
            as_model_inputs(inputs).cast(dtype=None, device=device))


def torchscript_fallback(module: torch.nn.Module, inputs: ModelInputs, first: ExportError, *, dynamic_batch: bool,
                         opset: int | None = None) -> OnnxExport:
    """After the dynamo exporter's failure ``first``: the TorchScript-based export of ``prepared`` CPU
    ``module`` and ``inputs``, or ``first`` re-raised (no such exporter, or a batch axis that cannot be
    dynamic), or an ExportError naming the dynamo exporter and carrying both reasons.

    The plugin's ONNX engines and the audit both come here, so they agree on what exports."""
    from .export_torchscript import torchscript_available, torchscript_export

    if not torchscript_available() or (dynamic_batch and _is_shape_conflict(first)):
        raise first  # a batch axis that cannot be dynamic is the answer, not an exporter's limitation
    try:
        traced = torchscript_export(module, inputs, dynamic_batch=dynamic_batch, opset=opset)
    except ExportError as second:
        reason = f"{first.reason}\nthe TorchScript-based exporter (fallback) failed too:\n{_indented(second.reason)}"
        raise ExportError(DYNAMO, reason, f"{first.detail}\n\n{TORCHSCRIPT}:\n{second.detail}") from None
    return OnnxExport(traced.proto, TORCHSCRIPT, first.reason, tuple(traced.frozen_values))


def _is_shape_conflict(error: ExportError) -> bool:
    """The dynamo exporter found that a dimension asked to be dynamic is static in the model."""
    cause = error.__cause__
    text = error.reason + (str(cause) if cause is not None else "")
    return any(sign in text for sign in ("inferred a static shape", "Constraints violated", "0/1 specialized"))


def onnx_from_program(program: "torch.export.ExportedProgram") -> Any:
    """The ONNX translation of an ExportedProgram already made (the audit traces once, not twice)."""
    return _to_onnx(program, ())


def _to_onnx(target: Any, inputs: tuple[Any, ...], **kwargs: Any) -> Any:
    """``torch.onnx.export(dynamo=True)`` of a module or program, quiet, failures as ExportError."""
    try:
        with quiet_exporter():
            program = torch.onnx.export(target, inputs, dynamo=True, verbose=False, external_data=False, **kwargs)
    except Exception as exc:
        raise ExportError(DYNAMO, short_reason(exc), traceback.format_exc()) from exc
    if program is None:
        raise ExportError(DYNAMO, "the exporter returned no program", "")
    return program.model_proto


def _indented(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())

