"""Where an engine's time goes: rows per operator and PyTorch module, in milliseconds per iteration,
that add up to the measured time per iteration.

* PyTorch engines: torch.profiler, each span of time counted once (profile_events.py): on the CPU
  every event's host self time; on CUDA every kernel's device time once, by the operator that
  launched it (never the operator's own "device time" as well).  Modules: eager engines through
  ``record_function`` ranges that forward hooks open and close (``with_modules`` covers only
  TorchScript models); torch.compile engines through Inductor's kernel metadata and the Dynamo
  graph's ``nn_module_stack`` (inductor_origins.py), since hooks do not fire in compiled code.
* ONNX Runtime: a second session of the same model with ``SessionOptions.enable_profiling``; its
  JSON trace's per-node kernel times, mapped to modules through the exported ONNX model's
  ``pkg.torch.onnx.name_scopes`` metadata (audit/onnx_graph.module_paths).
* TensorRT: an ``IProfiler`` on the execution context; layer names carry the ONNX node names they
  fused.  Written against TensorRT's documented Python API and NEVER RUN here (no TensorRT).

Every table states its totals: the rows' sum, the measured time per iteration they explain (the
latency stage's p50, or the profiled loop's wall time over its iterations) and the difference
(idle time and profiler overhead), so that the rows and that line make the measured time.

A CUDA graph replays as one launch: the engine is profiled without its graph, and its rows are
compared with the graph's measured time (the graph removes the launch gaps, not the kernels).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .profile_events import ITERATION_RANGE, MODULE_RANGE

DEFAULT_ITERATIONS = 20


class ProfileUnavailable(Exception):
    """This engine cannot be profiled here; the message says why."""


@dataclass(frozen=True)
class ProfileRow:
    name: str  # operator or kernel (PyTorch), node (ONNX Runtime) or layer (TensorRT)
    op_type: str  # PyTorch: the operator the model's code called (or Inductor's kernel); ONNX: the node's type
    module: str  # PyTorch module path ("" when unknown)
    total_ms: float  # milliseconds per iteration, averaged over the profiled iterations
    share: float  # of the measured time per iteration (the table's measured_ms)
    calls: int  # per iteration


@dataclass(frozen=True)
class ProfileTable:
    """Rows sorted by time, largest first, in ms per iteration; ``method`` names the profiler and the clock.

    ``measured_ms`` is the time per iteration the rows explain (``measured_by`` says which); ``gap``
    says what the difference is made of.  A device clock's rows (kernel times, which the profiler
    does not slow) are compared with the latency stage's p50 when it is known; a host clock's
    (which hold the profiler's own cost) with the profiled loop's wall time, ``wall_ms``, and the
    p50 without the profiler is given beside them (``unprofiled_ms``).
    """

    method: str
    iterations: int
    rows: tuple[ProfileRow, ...] = ()
    note: str = ""
    wall_ms: float = 0.0
    measured_ms: float = 0.0
    measured_by: str = ""
    gap: str = "not in any row"
    device_clock: bool = False
    unprofiled_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        """The rows' sum, ms per iteration."""
        return sum(row.total_ms for row in self.rows)

    @property
    def gap_ms(self) -> float:
        """Measured minus the rows' sum (negative: the rows hold profiler overhead the measurement has not)."""
        return self.measured_ms - self.total_ms

    def measure_against(self, measured_ms: float, measured_by: str) -> "ProfileTable":
        """Compare the rows with ``measured_ms`` per iteration: shares become shares of it."""
        if measured_ms <= 0:
            return self
        return replace(self, measured_ms=measured_ms, measured_by=measured_by,
                       rows=tuple(replace(row, share=row.total_ms / measured_ms) for row in self.rows))

    def top(self, n: int = 5) -> list[str]:
        """Lines for a failure message: share of the measured time, ms per iteration, what, where."""
        return [f"{row.share:6.1%} {row.total_ms:9.4f} ms  {_short(row.op_type or row.name)}"
                + (f" in {row.module}" if row.module else "")
                + (f" ({_short(row.name)})" if row.op_type and row.name != row.op_type else "")
                for row in self.rows[:n]]

    def totals(self) -> list[str]:
        """What the rows add up to, against what was measured, per iteration."""
        if self.measured_ms <= 0:
            return [f"rows: {self.total_ms:.4f} ms per iteration over {self.iterations} iterations"]
        gap, share = self.gap_ms, self.gap_ms / self.measured_ms
        if gap >= 0:
            rest = f"+ {gap:.4f} ms ({share:.1%}) {self.gap}"
        else:
            rest = f"- {-gap:.4f} ms ({-share:.1%}) that the rows exceed it by (profiler overhead inside them)"
        lines = [f"rows {self.total_ms:.4f} ms {rest} = {self.measured_ms:.4f} ms per iteration measured "
                 f"({self.measured_by})"]
        if self.wall_ms > 0 and abs(self.wall_ms - self.measured_ms) > 1e-9:
            lines.append(f"profiled loop: {self.wall_ms:.4f} ms per iteration over {self.iterations} iterations "
                         "(profiler on)")
        if self.unprofiled_ms > 0:
            difference = self.measured_ms - self.unprofiled_ms
            why = ("mostly the profiler's own cost, inside the rows" if difference >= 0 else
                   "the p50 times the whole engine call, which the profiled time may leave out (ONNX Runtime's "
                   "model_run is the session's run alone), and the two were measured at different moments")
            lines.append(f"latency p50 without the profiler: {self.unprofiled_ms:.4f} ms per iteration "
                         f"({difference:+.4f} ms against the measured time above: {why})")
        return lines

    def summary(self, rows: int = 5) -> str:
        """The top rows and the totals under a heading naming the profiler: the part of a budget failure's message."""
        lines = [*self.top(rows), *self.totals()]
        return (f"where the time goes ({self.method}; ms per iteration over {self.iterations} iterations):\n"
                + "\n".join(f"      {line}" for line in lines))

    def by_module(self) -> list[tuple[str, float]]:
        """Per-module totals (ms per iteration), largest first."""
        totals: dict[str, float] = defaultdict(float)
        for row in self.rows:
            totals[row.module or "(unmapped)"] += row.total_ms
        return sorted(totals.items(), key=lambda item: -item[1])

    def mapped_share(self) -> float:
        """The share of the rows' time whose module is named."""
        total = self.total_ms
        return sum(row.total_ms for row in self.rows if row.module) / total if total > 0 else 0.0


def _short(text: str, limit: int = 72) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def make_table(method: str, iterations: int, entries: Iterable[tuple[str, str, str, float]], note: str = "", *,
               wall_ms: float = 0.0, gap: str = "not in any row", device_clock: bool = False) -> ProfileTable:
    """Rows from (name, op type, module, milliseconds) entries summed over all iterations, in ms per
    iteration; compared with ``wall_ms`` (the profiled loop's time per iteration) when given."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    for name, op_type, module, ms in entries:
        slot = sums.setdefault((name, op_type, module), [0.0, 0])
        slot[0] += ms
        slot[1] += 1
    iterations = max(iterations, 1)
    rows = [ProfileRow(name, op_type, module, ms / iterations, 0.0, round(calls / iterations))
            for (name, op_type, module), (ms, calls) in sums.items()]
    rows.sort(key=lambda row: -row.total_ms)
    table = ProfileTable(method, iterations, tuple(rows), note, wall_ms=wall_ms, gap=gap, device_clock=device_clock)
    total = table.total_ms
    if wall_ms > 0:
        return table.measure_against(wall_ms, "the profiled loop's wall time")
    return replace(table, rows=tuple(replace(row, share=row.total_ms / total if total > 0 else 0.0) for row in rows))


# -- PyTorch --------------------------------------------------------------------------------------


def _module_ranges(module: Any) -> Callable[[], None]:
    """Open a record_function range per module forward; returns the function that removes the hooks."""
    import torch

    handles, open_ranges = [], []
    for path, sub in module.named_modules():
        name = path or type(module).__name__

        def enter(_mod: Any, _args: Any, name: str = name) -> None:
            scope = torch.profiler.record_function(MODULE_RANGE + name)
            scope.__enter__()
            open_ranges.append(scope)

        def leave(_mod: Any, _args: Any, _out: Any) -> None:
            if open_ranges:
                open_ranges.pop().__exit__(None, None, None)

        handles += [sub.register_forward_pre_hook(enter), sub.register_forward_hook(leave)]
    def remove() -> None:
        for handle in handles:
            handle.remove()

    return remove


CPU_GAP = "host time outside the iterations' events (the loop, profiler bookkeeping)"
CUDA_GAP = "GPU idle (launch gaps, host work, synchronisation) and profiler overhead"


def profile_torch(run: Callable[[], Any], module: Any = None, *, cuda: bool = False,
                  iterations: int = DEFAULT_ITERATIONS, compiled: Optional[Sequence[Any]] = None) -> ProfileTable:
    """Each span of time once (host self time on the CPU, kernel time on CUDA), per operator and
    innermost module, in ms per iteration; compared with the profiled loop's wall time.

    ``module``: hooked for module ranges (not for a compiled engine, whose hooks do not fire and
    would make Dynamo recompile); ``compiled``: a compiled engine's Dynamo graphs
    (inductor_origins.capture_graphs), for Inductor's kernels."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from . import profile_events as events_

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    hook = compiled is None and isinstance(module, torch.nn.Module)
    remove = _module_ranges(module) if hook else (lambda: None)
    try:
        run()  # one untimed call: lazy initialisation stays out of the table
        if cuda:
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            start = time.perf_counter()
            for _ in range(iterations):
                with record_function(ITERATION_RANGE):
                    run()
            if cuda:
                torch.cuda.synchronize()
            wall_ms = (time.perf_counter() - start) * 1000.0 / iterations
    finally:
        remove()
    events = events_.from_function_events(prof.events())
    root = type(module).__name__ if module is not None else ""
    sites: dict[int, events_.Attribution] = {}
    kernels: dict[str, events_.Attribution] = {}
    if compiled is not None:
        from .inductor_origins import loaded_wrappers

        sites, kernels = events_.compiled_sites(events, compiled, loaded_wrappers(), root)
    attributor = events_.Attributor(events, root, sites)
    if cuda:
        entries = events_.device_entries(events, attributor, kernels)
        method, gap = "torch.profiler, device time of each CUDA kernel, counted once", CUDA_GAP
    else:
        entries = events_.host_entries(events, attributor)
        method, gap = "torch.profiler, host self time of each event", CPU_GAP
    notes = []
    if module is None and compiled is None:
        notes.append("no nn.Module to hook: operators are not mapped to modules")
    if compiled is not None and not compiled:
        notes.append("Dynamo's graph could not be traced again: Inductor's kernels are not mapped to modules")
    return make_table(method, iterations, entries, "; ".join(notes), wall_ms=wall_ms, gap=gap, device_clock=cuda)


# -- ONNX Runtime ---------------------------------------------------------------------------------


def onnx_module_paths(model_path: Path | str) -> dict[str, str]:
    """ONNX node name -> PyTorch module path, from the exporter's metadata (weights not loaded)."""
    import onnx

    from ..audit.onnx_graph import module_paths

    return module_paths(onnx.load(str(model_path), load_external_data=False))


_ORT_SUFFIXES = ("_nchwc", "_fusion", "_fused")


def ort_node_module(node: str, module_of: Mapping[str, str]) -> str:
    """ORT's optimizer renames what it rewrites ("relu_1_nchwc" for the Conv+ReLU holding "node_relu_1", "fused
    node_linear" for a FusedGemm): try the name, then without the optimizer's prefix and suffix, then with the
    exporter's "node_" prefix."""
    stem = node.removeprefix("fused ")  # a FusedGemm of Gemm+ReLU is "fused node_linear", named after its first node
    for suffix in _ORT_SUFFIXES:
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    for candidate in (node, stem, "node_" + stem):
        if module_of.get(candidate):
            return module_of[candidate]
    return ""


ORT_GAP = "outside any node (the session's own work, copies) and profiler overhead"


def table_from_ort_trace(events: Sequence[Mapping[str, Any]], iterations: int, module_of: Mapping[str, str],
                         method: str) -> ProfileTable:
    """Per-node kernel times of the runs after the first (the first is the warm-up) from ORT's JSON
    trace, in ms per iteration, against the runs' own time (``model_run``) per iteration."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    warm_end = runs[0]["ts"] + runs[0]["dur"] if runs else -1
    timed = runs[1:]
    entries = []
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time") or event.get("ts", 0) < warm_end:
            continue
        node = name[: -len("_kernel_time")]
        op_type = str(event.get("args", {}).get("op_name", ""))
        entries.append((node, op_type, ort_node_module(node, module_of), float(event.get("dur", 0)) / 1000.0))
    wall_ms = sum(float(run.get("dur", 0)) for run in timed) / 1000.0 / len(timed) if timed else 0.0
    table = make_table(method, iterations, entries, wall_ms=wall_ms, gap=ORT_GAP)
    if wall_ms > 0:
        return replace(table, measured_by="ONNX Runtime's model_run, profiled")
    return table


def profile_onnxruntime(model_path: Path | str, feeds: Mapping[str, Any], *, providers: Sequence[str],
                        provider_options: Optional[Sequence[Mapping[str, Any]]] = None,
                        iterations: int = DEFAULT_ITERATIONS) -> ProfileTable:
    """A profiling session of the same model and providers; its trace per node, mapped to modules."""
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="infercheck-ort-profile-") as tmp:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=list(providers),
                                               provider_options=list(provider_options) if provider_options else None)
        for _ in range(iterations + 1):
            session.run(None, dict(feeds))
        events = json.loads(Path(session.end_profiling()).read_text())
    providers_used = session.get_providers()
    clock = ("host time of each node's kernel call (on CUDA: its launch and any wait, not GPU time)"
             if any(p != "CPUExecutionProvider" for p in providers_used) else "kernel time per node")
    method = f"ONNX Runtime profiler ({', '.join(providers_used)}), {clock}"
    return table_from_ort_trace(events, iterations, onnx_module_paths(model_path), method)


def _ort_engine_profile(engine: Any, prepared: Any, iterations: int) -> ProfileTable:
    session = engine.session
    model_path = getattr(session, "_model_path", None)  # InferenceSession keeps the path it was made from
    if not model_path:
        raise ProfileUnavailable("the ONNX Runtime session was made from bytes, not a file: nothing to re-open")
    if isinstance(prepared, Mapping):
        feeds = dict(prepared)
    else:  # the CUDA engine's prepared inputs are torch tensors bound by I/O binding
        feeds = {name: tensor.detach().cpu().numpy() for name, tensor in zip(engine.input_names, prepared)}
    # No CUDA graph and no user stream in the profiling session: a graph replays as one opaque launch.
    options = [{k: v for k, v in opts.items() if k not in ("enable_cuda_graph", "user_compute_stream", "has_user_compute_stream")}
               for opts in (session.get_provider_options()[p] for p in session.get_providers())]
    return profile_onnxruntime(model_path, feeds, providers=session.get_providers(), provider_options=options,
                               iterations=iterations)


# -- TensorRT (written against TensorRT's documented Python API; never run here) ---------------------


def tensorrt_layer_module(layer: str, module_of: Mapping[str, str]) -> str:
    """A fused layer's name lists the ONNX nodes it holds ("a + b + c"); the first one with a module wins."""
    for part in layer.replace("PWN(", "").replace(")", "").split(" + "):
        if module_of.get(part.strip()):
            return module_of[part.strip()]
    return ""


def profile_tensorrt(engine: Any, prepared: Any, *, module_of: Mapping[str, str],
                     iterations: int = DEFAULT_ITERATIONS) -> ProfileTable:
    """IProfiler on the engine's execution context: one report per layer per execution (NEVER RUN here)."""
    import tensorrt as trt
    import torch

    class LayerTimes(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.entries: list[tuple[str, float]] = []

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.entries.append((layer_name, ms))

    profiler = LayerTimes()
    engine.run(prepared)
    engine.context.profiler = profiler
    try:
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iterations):
            engine.run(prepared)
            torch.cuda.synchronize()  # enqueueV3 reports the layer times once the work is done
        wall_ms = (time.perf_counter() - start) * 1000.0 / iterations
    finally:
        engine.context.profiler = None
    entries = [(name, "", tensorrt_layer_module(name, module_of), ms) for name, ms in profiler.entries]
    note = "layer names are indices unless the engine was built with ProfilingVerbosity.DETAILED"
    return make_table("TensorRT IProfiler, per-layer device time", iterations, entries, note, wall_ms=wall_ms,
                      gap=CUDA_GAP, device_clock=True)


# -- dispatch -------------------------------------------------------------------------------------


PROFILERS = ("torch", "onnxruntime", "tensorrt")  # what a BackendDescriptor's ``profiler`` may name


def profile_engine(engine: Any, prepared: Any, *, profiler: str, device: str = "cpu", module: Any = None,
                   onnx_path: Optional[Path | str] = None, iterations: int = DEFAULT_ITERATIONS,
                   measured_ms: Optional[float] = None, measured_by: str = "latency p50, without the profiler"
                   ) -> ProfileTable:
    """The table for one engine, by its backend's profiler (BackendDescriptor.profiler).

    ``module``: the PyTorch module, for a torch engine that holds none of its own (an eager or
    compiled engine's own module is the one its code runs, and is preferred); ``onnx_path``: the
    ONNX the TensorRT engine was built from; ``measured_ms``: the time per iteration the rows are
    to explain (the latency stage's p50: for a device clock's rows; a host clock's, which hold the
    profiler's own cost, are compared with the profiled loop and the p50 is given beside them).
    Raises ProfileUnavailable with the reason when this engine cannot be profiled.
    """
    if getattr(engine, "inner", None) is not None:  # the plugin's CUDA graph around an engine: profile the engine inside
        table = profile_engine(engine.inner, prepared, profiler=profiler, device=device, module=module,
                               onnx_path=onnx_path, iterations=iterations)
        table = replace(table, note="; ".join(note for note in (
            "profiled without its CUDA graph (a graph replays as one launch): the rows are its kernels, "
            "the measured time the graph's, which removes the launch gaps", table.note) if note))
    elif profiler == "onnxruntime":
        table = _ort_engine_profile(engine, prepared, iterations)
    elif profiler == "tensorrt":
        module_of = onnx_module_paths(onnx_path) if onnx_path else {}
        table = profile_tensorrt(engine, prepared, module_of=module_of, iterations=iterations)
    elif profiler == "torch":
        table = _torch_engine_profile(engine, prepared, device, module, iterations)
    else:
        raise ProfileUnavailable(f"the backend names no profiler for its {type(engine).__name__} engine"
                                 + (f" ({profiler!r} is not one of {', '.join(PROFILERS)})" if profiler else ""))
    if measured_ms is not None and measured_ms > 0:
        if table.device_clock:
            table = table.measure_against(measured_ms, measured_by)
        else:  # host times hold the profiler's cost: compared with the profiled loop, the p50 beside it
            table = replace(table, unprofiled_ms=measured_ms)
    return table


def engine_module(engine: Any, fallback: Any = None) -> tuple[Any, bool]:
    """The nn.Module a torch engine runs, and whether the engine runs it compiled (torch.compile or its
    precompiled forward); ``fallback`` for an engine without one."""
    import torch

    fn = getattr(engine, "fn", None)
    inner = getattr(fn, "_orig_mod", None)  # torch.compile's OptimizedModule
    if isinstance(inner, torch.nn.Module):
        return inner, True
    inner = getattr(fn, "module", None)  # backends/precompile.PrecompiledForward
    if isinstance(inner, torch.nn.Module) and hasattr(fn, "compiled"):
        return inner, True
    if isinstance(fn, torch.nn.Module):
        return fn, False
    return (fallback if isinstance(fallback, torch.nn.Module) else None), False


def _torch_engine_profile(engine: Any, prepared: Any, device: str, module: Any, iterations: int) -> ProfileTable:
    target, compiled = engine_module(engine, module)
    graphs: Optional[list[Any]] = None
    if compiled:
        from .inductor_origins import capture_graphs

        layout = getattr(engine, "layout", None)
        call: Callable[[Callable[..., Any]], Any] = (
            (lambda fn: layout.with_tensors(prepared).call(fn)) if layout is not None and (layout.kwargs or layout.nested)
            else (lambda fn: fn(*prepared)))
        try:
            graphs = capture_graphs(target, call)
        except Exception:  # the mapping explains; a model Dynamo cannot trace again still gets its rows
            graphs = []
    return profile_torch(lambda: engine.run(prepared), target, cuda=device.startswith("cuda"), iterations=iterations,
                         compiled=graphs)
