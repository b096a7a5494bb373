"""Inductor's kernels mapped back to the PyTorch modules they compute.

Forward hooks do not fire inside compiled code, so a torch.compile engine's profiler events name
Inductor's kernels (``triton_poi_fused_add_0``, ``cpp_fused_convolution_0``) and the extern calls
of its wrapper (``aten::convolution``), never a module.  Two things Inductor and Dynamo leave say
which module each comes from:

* the generated wrapper's ``call()``: before each kernel or extern call Inductor writes the kernel's
  metadata, ``# Topologically Sorted Source Nodes: [input_1, ...], Original ATen: [...]``, the
  Dynamo graph's nodes it computes (Triton kernels also carry it at their definition).  Inductor's
  C++ kernels (CPU) get no such comment: their graph inputs (``arg3_1``) name the parameters they
  read, the ``N``-th placeholder of the Dynamo graph, whose owner module is known;
* the Dynamo graph itself: each node's ``nn_module_stack`` meta is the module path it ran in.
  It is traced again here with a backend that only records it (no Inductor, one eager run; the
  engine's compiled code is untouched: Dynamo guards each cache entry on its backend).

The profiler's ``## Call CompiledFxGraph <key> ##`` range holds one run of a wrapper's ``call()``:
its children, in time order, are the kernels' launch ranges and the extern operators; they are
aligned with the wrapper's call sites by kernel name and operator (``align``).

Everything but ``capture_graphs`` and ``loaded_wrappers`` is plain text and data, unit-tested
without Inductor (tests/test_profile_events.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

GRAPH_CALL = "## Call CompiledFxGraph"  # the profiler range around one run of a compiled graph

_SOURCE_NODES = re.compile(r"#\s*(?:Topologically Sorted|Unsorted) Source Nodes: \[([^\]]*)\]")
_KERNEL_DEFINITION = re.compile(r"^(\w+) = async_compile\.(triton|cpp_pybinding|cpp|halide)\(")
_TRITON_CALL = re.compile(r"^\s*(\w+)\.run\(")
_PLAIN_CALL = re.compile(r"^\s*(?:\w+ = )?(\w+)\(")
_EXTERN_CALL = re.compile(r"\bextern_kernels\.(\w+)\(|\btorch\.ops\.aten\.(\w+)\.\w+\(|(?<![\w.])aten\.(\w+)\.\w+\(")
_GRAPH_INPUT = re.compile(r"\b(?:arg(\d+)_1|primals_(\d+))\b")
_CALL_FUNCTION = re.compile(r"def (?:call|partition_\d+)\(")
_CPP_EVENT = re.compile(r"^graph_\d+_(cpp_\w+)$")  # a C++ kernel's RECORD_FUNCTION (cpp.enable_kernel_profile)


@dataclass(frozen=True)
class CallSite:
    """One call in the wrapper's ``call()``: a generated kernel or an extern operator."""

    kernel: str  # the generated kernel's name ("" for an extern call)
    op: str  # the extern operator ("convolution"; "" for a generated kernel)
    nodes: tuple[str, ...]  # the Dynamo graph's nodes it computes, from its metadata comment
    inputs: tuple[int, ...]  # which graph inputs it reads (0 for arg0_1)

    @property
    def label(self) -> str:
        return self.kernel or f"aten::{self.op}"


@dataclass
class WrapperCode:
    """What the profile needs from one generated wrapper module."""

    path: str
    sites: list[CallSite] = field(default_factory=list)
    definitions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kernel -> its source nodes


def parse_wrapper(source: str, path: str = "") -> WrapperCode:
    """The call sites of a generated wrapper's ``call()`` (and graph partitions), in the order its
    code calls them, with the nodes their metadata comments name; kernels' definition comments."""
    code = WrapperCode(path)
    kernels: set[str] = set()
    pending: Optional[tuple[str, ...]] = None
    body_indent: Optional[int] = None  # the indentation of the ``def call(`` being read, None outside
    for line in source.splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if body_indent is not None and stripped and indent <= body_indent:
            body_indent = None  # the function ended
        if _CALL_FUNCTION.match(stripped):
            body_indent, pending = indent, None
            continue
        comment = _SOURCE_NODES.search(line)
        if comment and stripped.startswith("#"):
            pending = tuple(name.strip() for name in comment.group(1).split(",") if name.strip())
            continue
        if body_indent is None:
            definition = _KERNEL_DEFINITION.match(line)
            if definition:
                kernels.add(definition.group(1))
                if pending is not None:
                    code.definitions[definition.group(1)] = pending
            if stripped and not stripped.startswith("#"):
                pending = None
            continue
        if stripped.startswith("#"):
            continue
        site = _call_site(line, kernels, pending or ())
        if site is not None:
            code.sites.append(site)
            pending = None
    return code


def _call_site(line: str, kernels: set[str], nodes: tuple[str, ...]) -> Optional[CallSite]:
    inputs = tuple(int(a or b) - (0 if a else 1) for a, b in _GRAPH_INPUT.findall(line))
    for pattern in (_TRITON_CALL, _PLAIN_CALL):
        match = pattern.match(line)
        if match and match.group(1) in kernels:
            return CallSite(match.group(1), "", nodes, inputs)
    extern = _EXTERN_CALL.search(line)
    if extern and "async_compile" not in line:
        return CallSite("", next(g for g in extern.groups() if g), nodes, inputs)
    return None


def event_key(name: str) -> str:
    """What a child of a graph-call range is, as a call site's ``label``: a kernel or ``aten::op``."""
    cpp = _CPP_EVENT.match(name)
    return cpp.group(1) if cpp else name


def align(children: Sequence[str], sites: Sequence[CallSite]) -> list[Optional[int]]:
    """For each child event of one graph call (time order), the index of its call site, or None.

    Both run in the same order; events that are no call site (allocations the wrapper makes,
    ``aten::empty_strided``) are skipped, and a call site whose event the profiler did not record
    (a C++ kernel compiled without kernel profiling) is passed over."""
    found: list[Optional[int]] = []
    position = 0
    for child in children:
        key = event_key(child)
        index = next((i for i in range(position, len(sites)) if sites[i].label == key), None)
        if index is not None:
            position = index + 1
        found.append(index)
    return found


def best_wrapper(children: Sequence[str], wrappers: Sequence[WrapperCode]) -> Optional[WrapperCode]:
    """The wrapper whose call sites the most children align with (the latest loaded on a tie)."""
    best, best_score = None, 0
    for wrapper in wrappers:
        score = sum(index is not None for index in align(children, wrapper.sites))
        if score >= best_score and score > 0:
            best, best_score = wrapper, score
    return best


@dataclass
class GraphModules:
    """One Dynamo graph: the module path of each node, and the owner of each parameter input."""

    nodes: dict[str, str] = field(default_factory=dict)  # node name -> module path ("" for the root)
    inputs: list[Optional[str]] = field(default_factory=list)  # per placeholder: its owner module, None for a user input


def module_path(stack_entry: str) -> str:
    """``L['self'].features.0``, ``L['self']._modules['features']._modules['0']``,
    ``getattr(L['self'].stages, '1')`` or ``L['self'].blocks[2]`` -> ``features.0``..."""
    text = stack_entry.strip()
    while True:
        unwrapped = re.sub(r"getattr\(([^(),]+), '([^']+)'\)", r"\1.\2", text)
        if unwrapped == text:
            break
        text = unwrapped
    text = re.sub(r"\._modules\['([^']+)'\]", r".\1", text)
    text = re.sub(r"\[(\d+)\]", r".\1", text)
    text = re.sub(r"\['([^']+)'\]", r".\1", text)
    for root in ("L.self", "self"):
        if text == root:
            return ""
        if text.startswith(root + "."):
            return text[len(root) + 1:]
    return text


def common_module(paths: Iterable[str]) -> str:
    """The innermost module that holds all of ``paths`` ("" for the root)."""
    split = [path.split(".") if path else [] for path in paths]
    if not split:
        return ""
    prefix: list[str] = []
    for parts in zip(*split):
        if any(part != parts[0] for part in parts):
            break
        prefix.append(parts[0])
    return ".".join(prefix)


def site_module(site: CallSite, graph: GraphModules) -> Optional[str]:
    """The module a call site computes: an extern call's own node's; a fused kernel's, the innermost
    module holding all its nodes; a kernel without metadata, the modules whose parameters it reads.
    None when nothing says."""
    paths = [graph.nodes[name] for name in site.nodes if name in graph.nodes]
    if paths:
        return paths[-1] if site.op else common_module(paths)  # topologically sorted: an extern's own node is last
    owners = [graph.inputs[i] for i in site.inputs if 0 <= i < len(graph.inputs)]
    known = [owner for owner in owners if owner is not None]
    return common_module(known) if known else None


def best_graph(wrapper: WrapperCode, graphs: Sequence[GraphModules]) -> Optional[GraphModules]:
    """The Dynamo graph the wrapper was compiled from: the one holding most of its source nodes."""
    names = {name for site in wrapper.sites for name in site.nodes} | {
        name for nodes in wrapper.definitions.values() for name in nodes}
    scored = [(len(names & graph.nodes.keys()), i) for i, graph in enumerate(graphs)]
    score, index = max(scored, default=(0, -1))
    return graphs[index] if score > 0 or (len(graphs) == 1 and not names) else None


# -- what needs torch ------------------------------------------------------------------------------


def capture_graphs(module: Any, call: Callable[[Callable[..., Any]], Any]) -> list[GraphModules]:
    """Trace ``module`` with Dynamo as its engine was (``call(fn)`` calls ``fn`` on the engine's
    inputs) and read each graph's nodes and placeholders; one eager run, no Inductor."""
    import torch

    graphs: list[GraphModules] = []

    def record(gm: Any, example_inputs: Any) -> Any:
        graphs.append(graph_modules(gm.graph))
        return gm.forward

    traced = torch.compile(module, backend=record)
    with torch.no_grad():
        call(traced)
    return graphs


def graph_modules(graph: Any) -> GraphModules:
    """The module path of each node of an FX graph (Dynamo's ``nn_module_stack`` meta)."""
    found = GraphModules()
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        path = module_path(list(stack.values())[-1][0]) if stack else ""
        if node.op == "placeholder":
            found.inputs.append(path if ("_parameters_" in node.name or "_buffers_" in node.name) else None)
        elif node.op == "call_function" or node.op == "call_method" or node.op == "call_module":
            found.nodes[node.name] = path
    return found


def loaded_wrappers() -> list[WrapperCode]:
    """Every wrapper module Inductor loaded in this process that is still on disk, oldest first:
    PyCodeCache's, and those its fresh caches forgot (with Inductor's caches off) but ``sys.modules``
    still holds."""
    import sys

    from torch._inductor.codecache import PyCodeCache

    modules = [*PyCodeCache.modules, *PyCodeCache.modules_no_attr.values(),
               *(module for name, module in list(sys.modules.items()) if name.startswith(_WRAPPER_MODULES))]
    seen: dict[str, WrapperCode] = {}
    for module in modules:
        path = getattr(module, "__file__", None)
        if not path or path in seen:
            continue
        try:
            with open(path, encoding="utf-8") as file:
                source = file.read()
        except OSError:
            continue
        if "def call(" in source:
            seen[path] = parse_wrapper(source, path)
    return list(seen.values())


_WRAPPER_MODULES = "torch._inductor.runtime.compile_tasks."  # where Inductor's loader names them in sys.modules
