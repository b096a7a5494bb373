"""CUDA Graphs as a dimension of the engine spec (``<backend>-<precision>-cudagraph``).

``CudaGraphEngine`` wraps any engine whose prepared inputs and outputs are CUDA tensors (the torch
engines, TensorRT): on the first ``prepare`` it makes static input buffers, warms the engine up on
a dedicated stream, captures one call into a ``torch.cuda.CUDAGraph`` and replays it once; each
``run`` then copies the inputs into the static buffers and replays the graph on that stream, and
the outputs are read from the static output buffers.  The graph's output must equal the output of
the same engine run without the graph, or the wrapper refuses to run (``CudaGraphError``).

Engines that capture their own graph (ONNX Runtime through its CUDA provider option) say so with
``captures_own_graph = True`` and are not wrapped.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

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
        self.stream.wait_stream(torch.cuda.current_stream())
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
            raise CudaGraphError(f"the engine cannot be captured into a CUDA graph: {_first_line(exc)} "
                                 "(a host synchronisation such as .item() or data-dependent control flow, "
                                 "a CPU tensor, or a shape that changes between calls prevents capture)") from exc
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
