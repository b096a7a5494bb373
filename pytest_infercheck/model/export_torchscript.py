"""The fallback exporter: ``torch.onnx.export(dynamo=False)``, TorchScript tracing.

Tracing records the ops one call runs: a Python branch on a tensor's value, or a tensor turned into a
Python number, is frozen into the graph at the example's value.  The tracer warns when it does that
(``TracerWarning``).  A warning raised in the user's own code (a file outside site-packages) refuses
the trace: its forward branches on data, which the dynamo exporter has just said too.  Installed
libraries (transformers' masking fast paths) warn on paths that are right for inputs like the
example's: those traces are kept, and the warnings travel with the model as notes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
import traceback
import warnings
from typing import Any, Optional

import torch

from .export_common import TORCHSCRIPT, ExportError, quiet_exporter, short_reason
from ..core.failure_location import is_library
from .inputs import ModelInputs
from .outputs import flatten_outputs


@dataclass(frozen=True)
class TracedOnnx:
    proto: Any  # onnx.ModelProto
    frozen_values: list[str]  # the tracer's warnings from installed libraries, described


def torchscript_available() -> bool:
    """Whether the installed torch still ships the TorchScript-based exporter (deprecated since 2.6)."""
    import importlib.util
    import inspect

    if importlib.util.find_spec("torch.onnx.utils") is None:  # the TorchScript-based exporter's home
        return False

    return "dynamo" in inspect.signature(torch.onnx.export).parameters


class _FlatCall(torch.nn.Module):
    """Positional tensors in, a flat tuple of output tensors out: what the tracer handles.

    Keyword inputs are passed back as keywords; nested, dict and ModelOutput outputs are flattened
    in the order the reference flattens them, so outputs match by position.
    """

    def __init__(self, module: torch.nn.Module, layout: ModelInputs) -> None:
        super().__init__()
        self.module = module
        self.layout = layout

    def forward(self, *tensors: Any) -> tuple[Any, ...]:
        return tuple(tensor for _, tensor in flatten_outputs(self.layout.with_tensors(tensors).call(self.module)))


def torchscript_export(module: torch.nn.Module, inputs: ModelInputs, *, dynamic_batch: bool,
                       opset: Optional[int] = None) -> TracedOnnx:
    """The ONNX model traced from ``module`` (already an eval-mode CPU copy)."""
    import onnx

    names = list(inputs.names)
    try:  # the model must run before it can be traced: a forward that raises is this exporter's failure
        with torch.no_grad():
            output_count = len(flatten_outputs(inputs.call(module)))
    except Exception as exc:
        raise ExportError(TORCHSCRIPT, short_reason(exc), traceback.format_exc()) from exc
    outputs = [f"output_{i}" for i in range(output_count)]
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: "batch"} for name, t in inputs.named() if t.dim() > 0}
        dynamic_axes.update({name: {0: "batch"} for name in outputs})
    buffer: Any = io.BytesIO()  # torch's stubs name only paths; the exporter writes to any file object
    options: dict[str, Any] = {"opset_version": opset} if opset is not None else {}
    try:
        with quiet_exporter(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            torch.onnx.export(_FlatCall(module, inputs), tuple(inputs.tensors), buffer, dynamo=False,
                              input_names=names, output_names=outputs, dynamic_axes=dynamic_axes, **options)
    except Exception as exc:
        raise ExportError(TORCHSCRIPT, short_reason(exc), traceback.format_exc()) from exc
    frozen = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    own = [w for w in frozen if not is_library(w.filename, strict=True)]
    if own:
        raise ExportError(TORCHSCRIPT, f"the trace is valid for the example inputs only, refused: "
                          f"{_describe_warning(own[0])}", "")
    proto = onnx.load_from_string(buffer.getvalue())
    return TracedOnnx(proto, [_describe_warning(w) for w in frozen])


def _describe_warning(caught: Any) -> str:
    return f"at {caught.filename}:{caught.lineno}: {str(caught.message).splitlines()[0].split('. ')[0]}"
