"""torch.profiler's events turned into rows that add up: each span of time counted once.

torch.profiler lists an operator's host time, the device time of the kernels it launched (on the
operator *and* on each kernel's own event) and its children's times inside its own: summing its
rows naively counts the same microsecond two or three times.  Here each span is counted once:

* on the CPU (host clock), every event's *self* time -- its time minus its children's, which do not
  overlap on one thread -- for the events inside one profiled iteration (``ITERATION_RANGE``).
  The module ranges' own self time is the forward's Python outside any operator; the iteration
  range's, the engine call's Python outside the model.  The rows then sum to the host time of the
  iterations;
* on CUDA (device clock), every device event (kernel, memcpy, memset) once, with its own duration,
  attributed to the CPU operator that launched it (the profiler's correlation id) -- never the
  operator's own "device time" as well.  The rows sum to the GPU's busy time; what the measured
  time has beyond it is GPU idle (launch gaps, host work) and the profiler's overhead.

Each row names the operator (the outermost operator the model's code called: ``aten::conv2d``, or,
in compiled code, the kernel or extern call of Inductor's wrapper) and the innermost PyTorch
module it ran in: from the ``record_function`` ranges forward hooks open (eager), or from
Inductor's kernel metadata and the Dynamo graph (inductor_origins.py) for compiled code.

``Event`` is the part of torch's ``FunctionEvent`` this reads: ``from_function_events`` builds them
from a real profile; the tests build fakes for the CUDA path, which cannot run here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Optional, Sequence

from .inductor_origins import (GRAPH_CALL, CallSite, GraphModules, WrapperCode, align, best_graph, best_wrapper,
                               event_key, site_module)

MODULE_RANGE = "infercheck.module::"  # prefix of the record_function ranges the hooks open
ITERATION_RANGE = "infercheck.iteration"  # the record_function range around each profiled call
ENGINE_PYTHON = "engine call (Python outside the model)"
FORWARD_PYTHON = "Python in forward (outside operators)"
GRAPH_WRAPPER = "Inductor wrapper (Python)"
# Ranges Dynamo and AOTAutograd open around compiled code: their self time is wrapper Python.
_WRAPPER_RANGES = ("TorchDynamo Cache Lookup", "Torch-Compiled Region", "Pregraph bytecode",
                   "AOTDispatcher Runtime Wrapper", GRAPH_CALL)


@dataclass
class Event:
    """One profiler event: ``index`` is its place in the list; ``parent`` the enclosing CPU event's."""

    index: int
    name: str
    parent: Optional[int] = None
    self_us: float = 0.0  # host self time (a CPU event)
    duration_us: float = 0.0  # its own duration (a device event)
    device: bool = False  # a kernel, memcpy or memset on the GPU
    correlation: int = 0  # a CPU operator: the id kernels link to; a device event: its launcher's id
    children: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Attribution:
    """What a row says about a span of time: the operator and the module (``""``: unknown)."""

    operator: str
    module: str


def from_function_events(function_events: Iterable[Any]) -> list[Event]:
    """torch's FunctionEvents (``prof.events()``) as Events, in time order."""
    items = sorted((e for e in function_events if _counted(e)), key=lambda e: (e.time_range.start, -e.time_range.end))
    index_of = {id(e): i for i, e in enumerate(items)}
    linked_ids = any(getattr(e, "linked_correlation_id", 0) for e in items if _device_type(e) != "CPU")
    events = []
    for i, e in enumerate(items):
        device = _device_type(e) != "CPU"
        parent = index_of.get(id(e.cpu_parent)) if getattr(e, "cpu_parent", None) is not None else None
        events.append(Event(
            index=i, name=e.name, parent=None if device else parent,
            self_us=0.0 if device else float(e.self_cpu_time_total),
            duration_us=float(e.time_range.end - e.time_range.start) if device else 0.0,
            device=device,
            correlation=_correlation(e, device, linked_ids)))
    return link(events)


# Device-side events that are no work of the GPU's own: a record_function range drawn on the GPU's
# timeline (it spans the kernels it holds), a synchronisation's wait.
_NOT_DEVICE_WORK = ("gpu_user_annotation", "cuda_sync")


def _counted(event: Any) -> bool:
    if _device_type(event) == "CPU":
        return not getattr(event, "is_async", False)
    return not getattr(event, "is_user_annotation", False) and getattr(event, "activity_type", None) not in _NOT_DEVICE_WORK


def _correlation(event: Any, device: bool, linked_ids: bool) -> int:
    """A device event's launcher id; a launcher's own id, which its device events link to.

    ``linked_ids``: the profile's device events carry ``linked_correlation_id``, the id of the CPU
    operator that launched them; a CPU event linked to another (the CUDA runtime's launch call) is
    then no launcher (0).  Where they do not (a FunctionEvent without the field, or every one 0: on the
    H100's torch 2.11 every CUDA row of eager ConvNeXt came out without an operator or a module),
    CUPTI's own correlation links instead: a device event's ``id`` is the id of the runtime call that
    launched it (``cudaLaunchKernel``, ``cuLaunchKernelEx``, ``cudaMemcpyAsync``, ...), which torch
    nests under the operator that made it, so the attribution walks up from that call; other CPU
    events are then no launchers (their ids are another counter's and may collide)."""
    own = int(getattr(event, "id", 0) or 0)
    if not linked_ids:
        if device:
            return own
        return own if _RUNTIME_CALL.match(event.name) else 0
    linked = int(getattr(event, "linked_correlation_id", 0) or 0)
    if device:
        return linked
    return 0 if linked else own


# The CUDA runtime's and driver's calls (cudaLaunchKernel, cudaLaunchKernelExC, cuLaunchKernel, cudaGraphLaunch,
# cudaMemcpyAsync, cudaMemsetAsync, ...): CPU events that share CUPTI's correlation id with the device work.
_RUNTIME_CALL = re.compile(r"^cu(da)?[A-Z]")


def _device_type(event: Any) -> str:
    kind = getattr(event, "device_type", None)
    return str(getattr(kind, "name", kind or "CPU"))


def link(events: list[Event]) -> list[Event]:
    """Fill each event's ``children`` (time order) from the ``parent`` links."""
    for event in events:
        event.children.clear()
    for event in events:
        if event.parent is not None:
            events[event.parent].children.append(event.index)
    return events


def is_module_range(name: str) -> bool:
    return name.startswith(MODULE_RANGE)


def is_graph_call(name: str) -> bool:
    return name.startswith(GRAPH_CALL)


def _is_frame(name: str) -> bool:
    """A range that is no operator: a module, an iteration, compiled code's wrappers."""
    return is_module_range(name) or name == ITERATION_RANGE or name.startswith(_WRAPPER_RANGES)


class Attributor:
    """The operator and module of any CPU event, from its ancestors (and Inductor's call sites)."""

    def __init__(self, events: Sequence[Event], root: str,
                 compiled_sites: Optional[dict[int, Attribution]] = None) -> None:
        self.events = events
        self.root = root  # the label of the top-level module (its path is "")
        self.compiled_sites = compiled_sites or {}  # a graph call's child event -> its call site's attribution
        self._memo: dict[int, Attribution] = {}

    def label(self, path: str) -> str:
        return path or self.root

    def of(self, index: int) -> Attribution:
        if index not in self._memo:
            self._memo[index] = self._attribute(index)
        return self._memo[index]

    def _attribute(self, index: int) -> Attribution:
        event = self.events[index]
        operator, current = event.name, event
        while current.parent is not None:
            parent = self.events[current.parent]
            if is_graph_call(parent.name):  # ``current`` is one call of Inductor's wrapper
                site = self.compiled_sites.get(current.index)
                return site if site is not None else Attribution(current.name, "")
            if is_module_range(parent.name):
                return Attribution(operator, self.label(parent.name[len(MODULE_RANGE):]))
            if _is_frame(parent.name):
                return Attribution(operator, "")
            operator, current = parent.name, parent
        return Attribution(operator, "")

    def in_iteration(self, index: int) -> bool:
        current: Optional[Event] = self.events[index]
        while current is not None:
            if current.name == ITERATION_RANGE:
                return True
            current = self.events[current.parent] if current.parent is not None else None
        return False


def host_entries(events: Sequence[Event], attributor: Attributor) -> list[tuple[str, str, str, float]]:
    """(name, operator, module, ms) of every CPU event's self time inside the profiled iterations."""
    entries = []
    for event in events:
        if event.device or event.self_us <= 0 or not attributor.in_iteration(event.index):
            continue
        if event.name == ITERATION_RANGE:
            entries.append((ENGINE_PYTHON, ENGINE_PYTHON, "", event.self_us / 1000.0))
        elif is_module_range(event.name):
            entries.append((FORWARD_PYTHON, FORWARD_PYTHON, attributor.label(event.name[len(MODULE_RANGE):]),
                            event.self_us / 1000.0))
        elif event.name.startswith(_WRAPPER_RANGES):
            name = GRAPH_WRAPPER if is_graph_call(event.name) else event.name
            entries.append((name, name, "", event.self_us / 1000.0))
        else:
            found = attributor.of(event.index)
            entries.append((event_key(event.name), found.operator, found.module, event.self_us / 1000.0))
    return entries


def device_entries(events: Sequence[Event], attributor: Attributor,
                   kernel_modules: Optional[dict[str, Attribution]] = None) -> list[tuple[str, str, str, float]]:
    """(kernel, operator, module, ms) of every device event, once, by the CPU operator that launched it.

    ``kernel_modules``: Inductor kernels by name, for a kernel no recorded launch correlates with
    (one replayed inside Inductor's own CUDA graph)."""
    launcher = {event.correlation: event.index for event in events if not event.device and event.correlation}
    entries = []
    for event in events:
        if not event.device:
            continue
        index = launcher.get(event.correlation) if event.correlation else None
        found = attributor.of(index) if index is not None else None
        if (found is None or not found.module) and kernel_modules and event.name in kernel_modules:
            found = kernel_modules[event.name]
        found = found or Attribution("", "")
        entries.append((event.name, found.operator, found.module, event.duration_us / 1000.0))
    return entries


def graph_call_children(events: Sequence[Event]) -> list[list[Event]]:
    """The children of each graph-call range, in time order."""
    return [[events[i] for i in event.children] for event in events if not event.device and is_graph_call(event.name)]


def compiled_sites(events: Sequence[Event], graphs: Sequence[GraphModules], wrappers: Sequence[WrapperCode],
                   root: str) -> tuple[dict[int, Attribution], dict[str, Attribution]]:
    """Each graph-call child event's attribution (its call site in Inductor's wrapper, its module),
    and Inductor's kernels by name, for a kernel no recorded launch correlates with (replayed
    inside Inductor's own CUDA graph): from the call sites aligned here, else from the metadata
    at the kernels' definitions in any wrapper compiled from these graphs.  ``wrappers``:
    inductor_origins.loaded_wrappers(), oldest first."""
    sites: dict[int, Attribution] = {}
    kernels: dict[str, Attribution] = {}

    def attribution(site: CallSite, wrapper: WrapperCode, graph: Optional[GraphModules]) -> Attribution:
        if not site.nodes and site.kernel in wrapper.definitions:  # no comment at the call: the definition's
            site = replace(site, nodes=wrapper.definitions[site.kernel])
        module = site_module(site, graph) if graph is not None else None
        return Attribution(site.label, "" if module is None else (module or root))

    for children in graph_call_children(events):
        names = [child.name for child in children]
        wrapper = best_wrapper(names, wrappers)
        if wrapper is None:
            continue
        graph = best_graph(wrapper, graphs)
        for child, index in zip(children, align(names, wrapper.sites)):
            if index is not None:
                sites[child.index] = found = attribution(wrapper.sites[index], wrapper, graph)
                if wrapper.sites[index].kernel and found.module:
                    kernels.setdefault(wrapper.sites[index].kernel, found)
    for wrapper in reversed(wrappers):  # the latest first
        graph = best_graph(wrapper, graphs) if wrapper.definitions else None
        for kernel, nodes in wrapper.definitions.items() if graph is not None else ():
            kernels.setdefault(kernel, attribution(CallSite(kernel, "", nodes, ()), wrapper, graph))
    return sites, kernels
