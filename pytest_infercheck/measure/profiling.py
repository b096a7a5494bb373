"""Where an engine's time goes: a per-operator table mapped back to the PyTorch modules.

* PyTorch engines (eager, and torch.compile where its module's hooks still fire): torch.profiler,
  each operator's *self* time (device time on CUDA, host time on the CPU) attributed to the
  innermost module whose forward was running, found through ``record_function`` ranges that
  forward hooks open and close (``with_modules`` covers only TorchScript models).
* ONNX Runtime: a second session of the same model with ``SessionOptions.enable_profiling``; its
  JSON trace's per-node kernel times, mapped to modules through the exported ONNX model's
  ``pkg.torch.onnx.name_scopes`` metadata (audit/onnx_graph.module_paths).
* TensorRT: an ``IProfiler`` on the execution context; layer names carry the ONNX node names they
  fused.  Written against TensorRT's documented Python API and NEVER RUN here (no TensorRT).

A CUDA graph replays as one launch: profile the engine without its graph to see inside it.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

DEFAULT_ITERATIONS = 20
MODULE_RANGE = "infercheck.module::"  # prefix of the record_function ranges the hooks open


class ProfileUnavailable(Exception):
    """This engine cannot be profiled here; the message says why."""


@dataclass(frozen=True)
class ProfileRow:
    name: str  # operator (PyTorch), node (ONNX Runtime) or layer (TensorRT)
    op_type: str
    module: str  # PyTorch module path ("" when unknown)
    total_ms: float  # per inference, averaged over the profiled iterations
    share: float  # of the table's total
    calls: int  # per inference


@dataclass(frozen=True)
class ProfileTable:
    """Rows sorted by time, largest first; ``method`` names the profiler and the clock."""

    method: str
    iterations: int
    rows: tuple[ProfileRow, ...] = ()
    note: str = ""

    @property
    def total_ms(self) -> float:
        return sum(row.total_ms for row in self.rows)

    def top(self, n: int = 5) -> list[str]:
        """Lines for a failure message: share, time, what, where."""
        return [f"{row.share:6.1%} {row.total_ms:9.4f} ms  {row.op_type or row.name}"
                + (f" in {row.module}" if row.module else "") + (f" ({row.name})" if row.op_type and row.name != row.op_type else "")
                for row in self.rows[:n]]

    def summary(self, rows: int = 5) -> str:
        """The top rows under a heading naming the profiler: the part of a budget failure's message."""
        return "where the time goes (" + self.method + "):\n" + "\n".join(f"      {line}" for line in self.top(rows))

    def by_module(self) -> list[tuple[str, float]]:
        """Per-module totals (ms per inference), largest first."""
        totals: dict[str, float] = defaultdict(float)
        for row in self.rows:
            totals[row.module or "(unmapped)"] += row.total_ms
        return sorted(totals.items(), key=lambda item: -item[1])

def make_table(method: str, iterations: int, entries: Iterable[tuple[str, str, str, float]], note: str = "") -> ProfileTable:
    """Rows from (name, op type, module, milliseconds) entries summed over all iterations."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    for name, op_type, module, ms in entries:
        slot = sums.setdefault((name, op_type, module), [0.0, 0])
        slot[0] += ms
        slot[1] += 1
    total = sum(ms for ms, _ in sums.values()) or 1.0
    rows = [ProfileRow(name, op_type, module, ms / iterations, ms / total, round(calls / iterations))
            for (name, op_type, module), (ms, calls) in sums.items()]
    rows.sort(key=lambda row: -row.total_ms)
    return ProfileTable(method, iterations, tuple(rows), note)


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


def _owner(event: Any) -> str:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(MODULE_RANGE):
            return parent.name[len(MODULE_RANGE):]
        parent = parent.cpu_parent
    return ""


def profile_torch(run: Callable[[], Any], module: Any = None, *, cuda: bool = False,
                  iterations: int = DEFAULT_ITERATIONS) -> ProfileTable:
    """Self time of every operator, grouped by (operator, innermost module)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    remove = _module_ranges(module) if isinstance(module, torch.nn.Module) else (lambda: None)
    try:
        run()  # one untimed call: lazy initialisation stays out of the table
        with profile(activities=activities) as prof:
            for _ in range(iterations):
                run()
            if cuda:
                torch.cuda.synchronize()
    finally:
        remove()
    entries = []
    for event in prof.events():
        if event.name.startswith(MODULE_RANGE) or event.name.startswith("ProfilerStep"):
            continue
        micros = event.self_device_time_total if cuda else event.self_cpu_time_total
        if micros > 0:
            entries.append((event.name, event.name, _owner(event), micros / 1000.0))
    clock = "device self time (CUDA)" if cuda else "host self time"
    note = "" if module is not None else "no nn.Module to hook: operators are not mapped to modules"
    return make_table(f"torch.profiler, {clock}", iterations, entries, note)


# -- ONNX Runtime ---------------------------------------------------------------------------------


def onnx_module_paths(model_path: Path | str) -> dict[str, str]:
    """ONNX node name -> PyTorch module path, from the exporter's metadata (weights not loaded)."""
    import onnx

    from ..audit.onnx_graph import module_paths

    return module_paths(onnx.load(str(model_path), load_external_data=False))


_ORT_SUFFIXES = ("_nchwc", "_fusion", "_fused")


def ort_node_module(node: str, module_of: Mapping[str, str]) -> str:
    """ORT's optimizer renames what it rewrites ("relu_1_nchwc" for the Conv+ReLU holding "node_relu_1"):
    try the name, then without the optimizer's suffix, then with the exporter's "node_" prefix."""
    stem = node
    for suffix in _ORT_SUFFIXES:
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    for candidate in (node, stem, "node_" + stem):
        if module_of.get(candidate):
            return module_of[candidate]
    return ""


def table_from_ort_trace(events: Sequence[Mapping[str, Any]], iterations: int, module_of: Mapping[str, str],
                         method: str) -> ProfileTable:
    """Per-node kernel times of the runs after the first (the first is the warm-up) from ORT's JSON trace."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    warm_end = runs[0]["ts"] + runs[0]["dur"] if runs else -1
    entries = []
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time") or event.get("ts", 0) < warm_end:
            continue
        node = name[: -len("_kernel_time")]
        op_type = str(event.get("args", {}).get("op_name", ""))
        entries.append((node, op_type, ort_node_module(node, module_of), float(event.get("dur", 0)) / 1000.0))
    return make_table(method, iterations, entries)


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
    method = f"ONNX Runtime profiler ({', '.join(session.get_providers())}), kernel time per node"
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
        for _ in range(iterations):
            engine.run(prepared)
            torch.cuda.synchronize()  # enqueueV3 reports the layer times once the work is done
    finally:
        engine.context.profiler = None
    entries = [(name, "", tensorrt_layer_module(name, module_of), ms) for name, ms in profiler.entries]
    note = "layer names are indices unless the engine was built with ProfilingVerbosity.DETAILED"
    return make_table("TensorRT IProfiler, per-layer device time", iterations, entries, note)


# -- dispatch -------------------------------------------------------------------------------------


PROFILERS = ("torch", "onnxruntime", "tensorrt")  # what a BackendDescriptor's ``profiler`` may name


def profile_engine(engine: Any, prepared: Any, *, profiler: str, device: str = "cpu", module: Any = None,
                   onnx_path: Optional[Path | str] = None, iterations: int = DEFAULT_ITERATIONS) -> ProfileTable:
    """The table for one engine, by its backend's profiler (BackendDescriptor.profiler).

    ``module``: the PyTorch module the engine runs (mapping for torch engines; defaults to the
    engine's ``fn``); ``onnx_path``: the ONNX the TensorRT engine was built from.
    Raises ProfileUnavailable with the reason when this engine cannot be profiled.
    """
    if getattr(engine, "inner", None) is not None:  # the plugin's CUDA graph around an engine: profile the engine inside
        table = profile_engine(engine.inner, prepared, profiler=profiler, device=device, module=module,
                               onnx_path=onnx_path, iterations=iterations)
        return replace(table, note="profiled without its CUDA graph (a graph replays as one launch); the graph "
                                   "removes launch gaps")
    if profiler == "onnxruntime":
        return _ort_engine_profile(engine, prepared, iterations)
    if profiler == "tensorrt":
        module_of = onnx_module_paths(onnx_path) if onnx_path else {}
        return profile_tensorrt(engine, prepared, module_of=module_of, iterations=iterations)
    if profiler == "torch":
        import torch

        target = module if module is not None else getattr(engine, "fn", None)
        target = getattr(target, "_orig_mod", target)  # torch.compile's wrapper: hooks go on the module inside
        return profile_torch(lambda: engine.run(prepared), target if isinstance(target, torch.nn.Module) else None,
                             cuda=device.startswith("cuda"), iterations=iterations)
    raise ProfileUnavailable(f"the backend names no profiler for its {type(engine).__name__} engine"
                             + (f" ({profiler!r} is not one of {', '.join(PROFILERS)})" if profiler else ""))
