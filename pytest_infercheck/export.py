"""torch -> ONNX (the dynamo exporter, then the TorchScript-based one) and torch -> ExportedProgram.

Failures read at the user's line: the reason starts with the frame in the user's code and carries
the decisive line of torch's message (see failure_location.py); the full traceback stays in
``ExportError.detail``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch

from .failure_location import decisive_line, user_frame
from .inputs import ModelInputs, as_model_inputs
from .model import model_copy
from .outputs import flatten_outputs

DYNAMO = "torch.onnx.export (dynamo)"
TORCHSCRIPT = "torch.onnx.export (TorchScript-based)"


class ExportError(Exception):
    """The exporter could not translate the model: ``reason`` is a few lines, ``detail`` the traceback."""

    def __init__(self, exporter: str, reason: str, detail: str) -> None:
        super().__init__(f"{exporter} failed: {reason}")
        # exporter: the first one tried; reason: its failure (and the fallback's, when one was tried)
        self.exporter = exporter
        self.reason = reason
        self.detail = detail


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BOILERPLATE = ("For more information", "For extended logs", "Set TORCH_LOGS", "(Refer to", "- ", "## ", "Next steps",
                "consider using", "Caused by:", "If you suspect", "For C++", "<class '", "For more debugging help",
                # the user's frame, which short_reason puts first
                "The following call raised", 'File "')
_NEXT_STEPS = re.compile(r"\s*(?:This is step \d/\d of exporting the model to ONNX\.)?\s*Next steps:\s*$")


# Advice torch gives about calls the user never made (the plugin called torch.export, not them).
_TORCH_ADVICE = re.compile(r"\s*The error above occurred when calling torch\.export\.export\..*?draft_export\(\)`?\.?",
                           re.S)


def _lines(exc: BaseException) -> list[str]:
    text = _TORCH_ADVICE.sub("", _ANSI.sub("", str(exc)))
    return [_NEXT_STEPS.sub("", line.rstrip()) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith(_BOILERPLATE)]


def short_reason(exc: BaseException, max_lines: int = 4, max_chars: int = 900) -> str:
    """The first line of the exception and the first lines of its root cause: what a user needs, not 200 lines.

    Prefixed with the user's frame (``at file:line in fn: source``) when one is found, and followed by
    torch's decisive line (a shape conflict, a data-dependent guard) when the first lines miss it.
    """
    text = _chain_summary(exc, max_lines)
    decisive = decisive_line(exc)
    if decisive and decisive not in text:
        text += f"\n  {decisive}"
    frame = user_frame(exc)
    if frame is not None:
        text = f"{frame.describe()}\n{text}"
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def _chain_summary(exc: BaseException, max_lines: int) -> str:
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__)
    top_lines = _lines(chain[0])
    parts = [f"{type(chain[0]).__name__}: {top_lines[0]}" if top_lines else type(chain[0]).__name__]
    if len(chain) > 1:
        root_lines = _lines(chain[-1])
        parts.append(f"{type(chain[-1]).__name__}: " + "\n".join(root_lines[:max_lines]))
    else:
        parts[0] = "\n".join([parts[0], *top_lines[1:max_lines]])
    return "\n  caused by ".join(dict.fromkeys(parts))


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporters print progress and warnings to stdout/logging; keep them out of test output."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    stack = contextlib.ExitStack()
    stack.enter_context(quiet_torch_logs())
    # torch's structured-trace records reach the root handlers (pytest's log capture among them)
    # without passing the level checks that logging.disable acts on: filter them at the handlers.
    handlers = list(logging.root.handlers)
    for handler in handlers:
        handler.addFilter(_drop_torch_chatter)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        stack.close()
        logging.disable(previous)
        for handler in handlers:
            handler.removeFilter(_drop_torch_chatter)


def _drop_torch_chatter(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("torch") and record.levelno < logging.ERROR)


TRACE_LOGGERS = ("torch.__trace",)  # torch's structured-trace records (Inductor, dynamo, export): empty DEBUG lines


@contextlib.contextmanager
def quiet_torch_logs() -> Iterator[None]:
    """Keep torch's structured-trace records out of pytest's captured logs while the plugin compiles.

    ``torch.__trace`` does not propagate, but pytest (9.x) attaches its capture handlers to such
    loggers too, and torch emits trace records whenever that logger has any handler: one empty
    "DEBUG torch.__trace" line per record (hundreds per Inductor compile).  Here the logger keeps
    only torch's own handlers (TORCH_TRACE's) and no filter is lost: both are restored on exit.
    Wrap anything that runs dynamo, Inductor or torch.export in this (the whole check, ideally).
    """
    loggers = [logging.getLogger(name) for name in TRACE_LOGGERS]
    saved = [list(logger.handlers) for logger in loggers]
    for logger in loggers:
        for handler in list(logger.handlers):
            if not type(handler).__module__.startswith("torch"):
                logger.removeHandler(handler)
    try:
        yield
    finally:
        for logger, handlers in zip(loggers, saved):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            for handler in handlers:
                logger.addHandler(handler)


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

    module.forward = flat_forward  # type: ignore[method-assign]
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
    module = with_flat_outputs(model_copy(module, dtype=None, device=device))
    inputs = as_model_inputs(inputs).cast(dtype=None, device=device)
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
        logged.append(" ".join(_ANSI.sub("", text).split())[:500])
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
    module = with_flat_outputs(model_copy(module, dtype=None, device="cpu"))
    inputs = as_model_inputs(inputs).cast(dtype=None, device="cpu")
    extra: dict[str, Any] = {"opset_version": opset} if opset is not None else {}
    try:
        return OnnxExport(_to_onnx(module, inputs.args, kwargs=inputs.kwargs or None,
                                   dynamic_shapes=dynamic_shapes_for(module, inputs, dynamic_batch), **extra), DYNAMO)
    except ExportError as first:
        from .export_torchscript import torchscript_available, torchscript_export

        if not torchscript_available() or (dynamic_batch and _is_shape_conflict(first)):
            raise  # a batch axis that cannot be dynamic is the answer, not an exporter's limitation
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
    return "inferred a static shape" in text or "Constraints violated" in text


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

