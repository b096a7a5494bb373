"""CUDA Graphs as a dimension of the engine spec (``<backend>-<precision>-cudagraph``).

``CudaGraphEngine`` wraps any engine whose prepared inputs and outputs are CUDA tensors (the torch
engines, TensorRT): on the first ``prepare`` it makes static input buffers, warms the engine up on
a dedicated stream, captures one call into a ``torch.cuda.CUDAGraph`` and replays it once; each
``run`` then copies the inputs into the static buffers and replays the graph on that stream, and
the outputs are read from the static output buffers.  The graph's output must equal the output of
the same engine run without the graph, or the wrapper refuses to run (``CudaGraphError``).

Engines that capture their own graph (ONNX Runtime through its CUDA provider option) say so with
``captures_own_graph = True`` and are not wrapped.

A capture that fails names the model's line, as an export failure does (``capture_failure_message``):
the traceback's line of the capture's first error; when CUDA's error may not be where the capture
went wrong ("operation failed due to a previous error during capture"), the forward runs once more,
outside the capture, under ``torch.cuda.set_sync_debug_mode("warn")``, and the line of its first host
synchronisation is named too.
"""

from __future__ import annotations

import contextlib
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, TextIO

from ..core.failure_location import UserFrame, exception_chain, innermost_user_frame, user_frame

WARMUP_CALLS = 3  # cuDNN/cuBLAS pick algorithms and allocate workspaces before capture, not during it


class CudaGraphError(Exception):
    """The engine cannot run under a CUDA graph; the message says why in a line or two."""


def wrap_for_graphs(engine: Any, cuda_graphs: bool) -> Any:
    """The engine under a CUDA graph when the spec asks for one (unless it captures its own)."""
    if not cuda_graphs or getattr(engine, "captures_own_graph", False):
        return engine
    return CudaGraphEngine(engine)


def _tensors(value: Any) -> list[Any]:
    """The tensor leaves of an engine's raw output, in pytree order."""
    import torch
    from torch.utils import _pytree

    return [leaf for leaf in _pytree.tree_leaves(value) if isinstance(leaf, torch.Tensor)]


def largest_difference(graph_outputs: Sequence[Any], plain_outputs: Sequence[Any]) -> float:
    """Max |graph - plain| over all outputs, relative to the plain output's largest magnitude,
    in units of each output's allowance (``equivalence_tolerance``): at most 1 means equivalent."""
    worst = 0.0
    for graph_out, plain_out in zip(graph_outputs, plain_outputs):
        if graph_out.shape != plain_out.shape:
            return float("inf")
        if graph_out.numel() == 0 or not graph_out.is_floating_point():
            if not bool((graph_out == plain_out).all()):
                return float("inf")
            continue
        diff = (graph_out.double() - plain_out.double()).abs().max().item()
        scale = max(plain_out.double().abs().max().item(), 1e-30)
        worst = max(worst, diff / scale / equivalence_tolerance(plain_out.dtype))
    return worst


def equivalence_tolerance(dtype: Any) -> float:
    """How far replay may drift from the plain call, relative to the output's range, per dtype.

    Replay runs the kernels captured from a plain call, but a library may choose another algorithm
    while capturing (cuBLAS without its usual workspace, split-K), which changes rounding: a few
    units in the last place of the output's dtype, no more.  Seen on the H100: BERT-base in eager
    FP16 drifted 2.8e-3 of its range under the graph.
    """
    import torch

    return {torch.float16: 5e-3, torch.bfloat16: 4e-2}.get(dtype, 1e-5)


EQUIVALENCE_LIMIT = 1.0  # largest_difference is in units of the per-dtype tolerance


class CudaGraphEngine:
    """Static buffers, copy in, replay, read out; one graph per input shape set."""

    captures_own_graph = True

    def __init__(self, inner: Any) -> None:
        import torch

        self.inner = inner
        self.device = inner.device
        if not str(self.device).startswith("cuda"):
            raise CudaGraphError("CUDA Graphs need a CUDA device")
        self.stream = torch.cuda.Stream(device=self.device)
        self.graph: Optional[Any] = None
        self.static_inputs: tuple[Any, ...] = ()
        self.static_outputs: Any = None
        self.graph_difference: Optional[float] = None

    def prepare(self, inputs: Sequence[Any]) -> tuple[Any, ...]:
        prepared = self.inner.prepare(inputs)
        if not isinstance(prepared, tuple) or not all(_is_cuda_tensor(t) for t in prepared):
            raise CudaGraphError(f"the {type(self.inner).__name__} engine does not take CUDA tensors, "
                                 "so it cannot be captured into a CUDA graph")
        if self.graph is None:
            self._capture(prepared)
        return prepared

    def _capture(self, prepared: tuple[Any, ...]) -> None:
        import torch

        self.static_inputs = tuple(t.clone() for t in prepared)
        caller = torch.cuda.current_stream()
        self.stream.wait_stream(caller)
        try:
            with torch.cuda.stream(self.stream):
                for _ in range(WARMUP_CALLS):
                    plain = self.inner.run(self.static_inputs)
                plain_outputs = [t.clone() for t in _tensors(plain)]
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self.static_outputs = self.inner.run(self.static_inputs)
        except Exception as exc:
            # A capture_end that raises skips torch.cuda.graph's own stream exit: the capture stream stays current.
            torch.cuda.set_stream(caller)
            probe = self._probe() if needs_probe(exc) else None
            raise CudaGraphError(capture_failure_message(exc, probe)) from exc
        self.graph = graph
        with torch.cuda.stream(self.stream):
            graph.replay()
        self.stream.synchronize()
        if not _tensors(self.static_outputs):
            raise CudaGraphError("the captured call returned no CUDA tensors")
        self.graph_difference = largest_difference(_tensors(self.static_outputs), plain_outputs)
        if not self.graph_difference <= EQUIVALENCE_LIMIT:
            raise CudaGraphError(f"graph replay differs from the same engine without a graph by "
                                 f"{self.graph_difference:.3g} times the allowed drift (a few units in the last "
                                 "place of the output dtype, relative to the output's range)")

    def _probe(self) -> "ProbeResult":
        """The forward once more on the static inputs, outside any capture, with torch warning at each host
        synchronisation; the user's model and inputs are not changed (the inputs are the clones)."""
        import torch

        def forward() -> None:
            with torch.cuda.stream(self.stream):
                self.inner.run(self.static_inputs)

        try:
            found = first_synchronising_call(forward)
        except Exception as exc:  # the probe only explains the capture's error; it never replaces it
            return ProbeResult(not_run=_first_line(exc))
        with contextlib.suppress(Exception):  # its queued work ends here; a CUDA error would show on the next call
            self.stream.synchronize()
        return found

    def run(self, prepared: tuple[Any, ...]) -> Any:
        import torch

        if len(prepared) != len(self.static_inputs) or any(
                a.shape != b.shape for a, b in zip(prepared, self.static_inputs)):
            raise CudaGraphError(f"the graph was captured for input shapes "
                                 f"{[tuple(t.shape) for t in self.static_inputs]}, got "
                                 f"{[tuple(t.shape) for t in prepared]}: a CUDA graph replays one shape")
        assert self.graph is not None, "prepare() captures the graph before run()"
        caller = torch.cuda.current_stream()
        if caller != self.stream:  # the inputs were written on the caller's stream: copy after that
            self.stream.wait_stream(caller)
        with torch.cuda.stream(self.stream):
            for static, given in zip(self.static_inputs, prepared):
                if static.data_ptr() != given.data_ptr():
                    static.copy_(given, non_blocking=True)
            self.graph.replay()
        # The static outputs are overwritten by the next replay: read them (to_numpy) before it.
        return self.static_outputs

    def to_numpy(self, raw_outputs: Any) -> list[Any]:
        self.stream.synchronize()
        return self.inner.to_numpy(raw_outputs)

    def close(self) -> None:
        self.graph = None
        self.static_inputs = ()
        self.static_outputs = None
        self.inner.close()


def _is_cuda_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.is_cuda


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"




# CUDA's errors for a call made while a stream captures (cudaGetErrorString's text, and the names): the call that
# raised one may not be the call that broke the capture (an earlier call invalidated it, or another thread did).
CAPTURE_ERRORS = (
    "operation failed due to a previous error during capture",  # cudaErrorStreamCaptureInvalidated
    "operation not permitted when stream is capturing",  # cudaErrorStreamCaptureUnsupported
    "operation would make the legacy stream depend on a capturing blocking stream",  # cudaErrorStreamCaptureImplicit
    "dependency created on uncaptured work in another stream",  # cudaErrorStreamCaptureIsolation
    "operation not permitted on an event last recorded in a capturing stream",  # cudaErrorCapturedEvent
    "cudaErrorStreamCapture", "cudaErrorCapturedEvent",
)
# ... and the ones that only say an earlier call broke it: never the capture's first error.
LATER_ERRORS = ("operation failed due to a previous error during capture", "cudaErrorStreamCaptureInvalidated")
SYNC_WARNING = "called a synchronizing CUDA operation"  # torch's text (c10/cuda warn_or_error_on_sync)
PROBE = 'the forward runs again, outside the capture, under torch.cuda.set_sync_debug_mode("warn")'
USUAL_CAUSES = ("(a host synchronisation such as .item() or data-dependent control flow, a CPU tensor, "
                "or a shape that changes between calls prevents capture)")


@dataclass(frozen=True)
class ProbeResult:
    """The first call that synchronised (or failed) when the forward ran again: what torch said and the
    user's line; ``what`` empty when there was none; ``not_run``: why the probe itself could not run."""

    what: str = ""
    frame: Optional[UserFrame] = None
    not_run: str = ""


def first_synchronising_call(forward: Callable[[], Any],
                             modes: Optional[tuple[Callable[[], Any], Callable[[Any], None]]] = None) -> ProbeResult:
    """``forward``'s first call that synchronises with the host (``.item()``, ``.cpu()``, ``nonzero``, a copy
    from host memory), from one run with torch's sync debug mode at "warn": the stack where torch warns
    names the line, and the forward runs to its end as it would without the mode (an error raised in the
    model could be caught there, or leave its state half-updated).  Else the first exception it raises.
    The warning filters, ``warnings.showwarning`` and the mode in effect before are restored; other
    warnings pass on.  ``modes``: the mode's getter and setter (torch.cuda's by default)."""
    if modes is None:
        import torch

        modes = (torch.cuda.get_sync_debug_mode, torch.cuda.set_sync_debug_mode)
    get_mode, set_mode = modes
    depth = len(traceback.extract_stack())  # this frame and those above it: not the forward's
    found: list[ProbeResult] = []

    with warnings.catch_warnings():
        passed_on = warnings.showwarning

        def record(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   file: Optional[TextIO] = None, line: Optional[str] = None) -> None:
            if SYNC_WARNING not in str(message):
                passed_on(message, category, filename, lineno, file, line)
            elif not found:
                stack = [f for f in traceback.extract_stack()[depth:] if f.filename != warnings.__file__]
                text = str(message).split(" (Triggered internally at")[0]  # torch's C++ source line
                found.append(ProbeResult(f"{category.__name__}: {text}", innermost_user_frame(stack)))

        warnings.showwarning = record
        warnings.filterwarnings("always", message=SYNC_WARNING)
        previous = get_mode()
        set_mode("warn")
        try:
            forward()
        except Exception as exc:
            if not found:
                found.append(ProbeResult(_first_line(exc), user_frame(exc)))
        finally:
            set_mode(previous)
    return found[0] if found else ProbeResult()


def first_capture_error(exc: BaseException) -> BaseException:
    """The capture's first error: the innermost of the chain (what was being handled when the next was raised,
    e.g. capture_end's "previous error" raised over the model's own) that is not a later consequence."""
    chain = list(exception_chain(exc))
    first = [error for error in chain if not any(text in str(error) for text in LATER_ERRORS)]
    return first[-1] if first else chain[-1]


def needs_probe(exc: BaseException) -> bool:
    """Whether the capture's first error is one of CUDA's capture errors, whose call may not be the cause."""
    first = str(first_capture_error(exc))
    return any(text in first for text in CAPTURE_ERRORS)


def capture_failure_message(exc: BaseException, probe: Optional[ProbeResult] = None) -> str:
    """Why the capture failed, at the model's line (``at file:line in fn: source``, as an export failure):
    the line of the capture's first error, or the first call that synchronised under the probe (``probe``:
    None when it did not run) when that is another line, with the capture's own error below it."""
    first = first_capture_error(exc)
    frame = user_frame(first) or user_frame(exc)
    said = _first_line(first)
    lines = [frame.describe()] if frame is not None else []
    if probe is None:
        lines.append(said)
    elif not probe.what:
        lines.append(said)
        lines.append(f"the capture's error may not be its cause, and {PROBE} "
                     + (f"could not run ({probe.not_run})" if probe.not_run else
                        "without a host synchronisation: the call that broke the capture is one torch does not "
                        "flag (torch.cuda.synchronize(), a non_blocking copy from pageable memory, a library's "
                        "own CUDA call, another thread)"))
    elif probe.frame is not None and (frame is None or (probe.frame.filename, probe.frame.lineno)
                                      != (frame.filename, frame.lineno)):
        lines = [probe.frame.describe(), f"the first call that synchronises with the host when {PROBE}: {probe.what}",
                 f"the capture's error: {said}" + (f" ({frame.describe()})" if frame is not None else "")]
    else:
        lines.append(said)
        where = "the same line" if probe.frame is not None else "a call inside torch"
        lines.append(f"{where} is the first to synchronise with the host when {PROBE} ({probe.what})")
    return "\n".join(["the engine cannot be captured into a CUDA graph:", *lines, USUAL_CAUSES])
