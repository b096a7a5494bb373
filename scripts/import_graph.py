"""The package's import graph, read from the source (every import, lazy ones in functions included;
imports under ``if TYPE_CHECKING:`` are left out: they never run).  Used by the import-contract test
(tests/unit/test_import_contract.py) and runnable alone: ``python scripts/import_graph.py``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "pytest_infercheck"

# The layers of the import contract (tests/unit/test_import_contract.py), lowest first: a module may
# import from its own layer and those below.  Names are relative to the package.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation: files, codecs, locks, small pure helpers", (
        "pytest_infercheck", "core", "measure", "model", "config", "core.defaults", "core.spec", "core.files", "core.codec",
        "core.jsonsafe", "core.mdtext", "core.locks", "core.cache_dirs", "core.memo",
        "core.process_exit", "core.failure_location", "core.warning_filters", "model.tensors", "core.progress", "core.device_check",
        "core.gpus",
        "core.cpu_threads", "backends.cudagraphs", "data", "model.outputs", "model.model_identity",
        "audit.findings", "audit.onnx_graph",
        "backends.base", "backends.trt_strongly_typed")),
    ("measurement and the typed facts", (
        "measure.stats", "measure.regression", "measure.memory", "measure.budget", "measure.inductor_origins",
        "measure.profile_events", "measure.profiling",
        "measure.max_batch", "measure.kernel_time", "measure.results", "measure.compare",
        "measure.timing", "measure.call_path")),
    ("the model: inputs, copies, exports, ONNX variants, artifacts, the engine cache", (
        "model.inputs", "model.under_test", "model.export_common", "model.export_torchscript", "model.export",
        "model.precision", "model.module_errors", "model.onnx_variants", "model.calibration",
        "model.divergence", "backends.cache")),
    ("engines: the registry, one module per backend, the machine they run on, a model's artifacts", (
        "backends", "backends.artifacts", "backends.torch_engine", "backends.torch_eager", "backends.inductor",
        "backends.precompile",
        "backends.torchao_quant", "backends.aoti", "backends.onnxruntime", "backends.tensorrt_config",
        "backends.tensorrt",
        "backends.tensorrt_rtx", "backends.environment")),
    ("settings: the option table, its parsers, the typed Settings", ("config.parsers", "config.options", "config.settings")),
    ("audit", (
        "audit", "audit.fp16_range", "audit.native_logs", "audit.onnx_stage", "audit.ort_placement",
        "audit.render", "audit.runner",
        "audit.tensorrt_live", "audit.tensorrt_rtx_stage", "audit.tensorrt_static", "audit.torch_stage")),
    ("judgement: the baseline, its comparison, the one verdict", (
        "baseline", "baseline.key", "baseline.store", "baseline.comparison", "baseline.summary", "baseline.offline",
        "judge", "judge.verdict")),
    ("check: the stages", (
        "check", "check.failure", "check.context", "check.reference", "check.prebuild", "check.build",
        "check.accuracy", "check.latency", "check.repair", "check.facts", "check.flow")),
    ("reports", (
        "report", "report.table", "report.terminal", "report.markdown", "report.html", "report.junit",
        "report.json_report", "report.saved")),
    ("glue: pytest hooks, the session, the CLI", (
        "plugin.session", "plugin.session_files", "plugin.xdist_groups", "plugin", "cli.common", "cli",
        "cli.check", "cli.saved", "__main__")),
)
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    found: set[str] = set()

    def resolve(target: str) -> None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE):
                    resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith(PACKAGE):
                for alias in node.names:  # ``from . import flow`` imports the submodule
                    candidate = f"{module}.{alias.name}"
                    resolve(candidate if candidate in known else module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", set(known))
            for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def strong(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                strong(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            strong(node)
    return found


if __name__ == "__main__":
    edges = graph()
    for component in cycles(edges):
        print("cycle:", " <-> ".join(component))
    if "--edges" in sys.argv:
        for name in sorted(edges):
            print(name, "->", ", ".join(sorted(edges[name])))
