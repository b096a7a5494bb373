"""torch -> ONNX (the dynamo exporter) and torch -> ExportedProgram, with readable failures."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import traceback
import warnings
from typing import Any, Iterator, Sequence

import torch

from .model import model_copy


class ExportError(Exception):
    """The exporter could not translate the model: ``reason`` is a few lines, ``detail`` the traceback."""

    def __init__(self, exporter: str, reason: str, detail: str) -> None:
        super().__init__(f"{exporter} failed: {reason}")
        self.exporter = exporter
        self.reason = reason
        self.detail = detail


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BOILERPLATE = ("For more information", "For extended logs", "Set TORCH_LOGS", "(Refer to", "- ", "## ", "Next steps")


def _lines(exc: BaseException) -> list[str]:
    text = _ANSI.sub("", str(exc))
    return [line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith(_BOILERPLATE)]


def short_reason(exc: BaseException, max_lines: int = 4, max_chars: int = 900) -> str:
    """The first line of the exception and the first lines of its root cause: what a user needs, not 200 lines."""
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
    text = "\n  caused by ".join(dict.fromkeys(parts))
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporters print progress and warnings to stdout/logging; keep them out of test output."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
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
        logging.disable(previous)
        for handler in handlers:
            handler.removeFilter(_drop_torch_chatter)


def _drop_torch_chatter(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("torch") and record.levelno < logging.ERROR)


def _dynamic_shapes(inputs: Sequence[torch.Tensor], dynamic_batch: bool) -> Any:
    if not dynamic_batch:
        return None
    # Dim.DYNAMIC rather than a named Dim: it does not fail on a batch of 1 at export time.
    return tuple({0: torch.export.Dim.DYNAMIC} if t.dim() > 0 else {} for t in inputs)


def export_program(module: torch.nn.Module, inputs: Sequence[torch.Tensor], *, dynamic_batch: bool,
                   device: str = "cpu") -> "torch.export.ExportedProgram":
    """torch.export of an eval-mode copy on ``device``."""
    module = model_copy(module, dtype=None, device=device)
    inputs = tuple(t.to(device) for t in inputs)
    try:
        with quiet_exporter():
            return torch.export.export(module, inputs, dynamic_shapes=_dynamic_shapes(inputs, dynamic_batch))
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        raise ExportError("torch.export", short_reason(exc), traceback.format_exc()) from exc


def export_onnx(module: torch.nn.Module, inputs: Sequence[torch.Tensor], *, dynamic_batch: bool,
                opset: int | None = None) -> Any:
    """An ``onnx.ModelProto`` from ``torch.onnx.export(dynamo=True)`` of an eval-mode CPU copy."""
    module = model_copy(module, dtype=None, device="cpu")
    inputs = tuple(t.detach().cpu() for t in inputs)
    extra: dict[str, Any] = {"opset_version": opset} if opset is not None else {}
    return _to_onnx(module, inputs, dynamic_shapes=_dynamic_shapes(inputs, dynamic_batch), **extra)


def onnx_from_program(program: "torch.export.ExportedProgram") -> Any:
    """The ONNX translation of an ExportedProgram already made (the audit traces once, not twice)."""
    return _to_onnx(program, ())


def _to_onnx(target: Any, inputs: tuple[Any, ...], **kwargs: Any) -> Any:
    """``torch.onnx.export(dynamo=True)`` of a module or program, quiet, failures as ExportError."""
    try:
        with quiet_exporter():
            program = torch.onnx.export(target, inputs, dynamo=True, verbose=False, external_data=False, **kwargs)
    except Exception as exc:
        raise ExportError("torch.onnx.export (dynamo)", short_reason(exc), traceback.format_exc()) from exc
    if program is None:
        raise ExportError("torch.onnx.export (dynamo)", "the exporter returned no program", "")
    return program.model_proto
