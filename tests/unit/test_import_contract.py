"""The import contract: no circle, and no module imports from a layer above its own.

Layers, lowest first (docs/architecture.md draws them).  A module may import from its own layer and
the layers below; imports under ``if TYPE_CHECKING:`` never run and are not counted; lazy imports
inside functions are.  A module missing from LAYERS fails the test, so a new module is placed on
purpose.  The graph is scripts/import_graph.py's: ``python scripts/import_graph.py --edges``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation: files, codecs, locks, small pure helpers", (
        "pytest_infercheck", "defaults", "files", "codec", "jsonsafe", "mdtext", "locks", "cache_dirs", "memo",
        "process_exit", "failure_location", "tensors", "progress", "device_check", "gpus",
        "cpu_threads", "cudagraphs", "data", "outputs", "model_identity", "audit.findings", "audit.onnx_graph",
        "backends.base", "backends.trt_strongly_typed")),
    ("measurement and the typed facts", (
        "stats", "regression", "memory", "budget", "profiling", "max_batch", "spec", "results", "compare",
        "timing")),
    ("the model: inputs, copies, exports, ONNX variants, artifacts, the engine cache", (
        "inputs", "model", "export_common", "export_torchscript", "export", "precision", "module_errors", "onnx_variants",
        "calibration",
        "divergence", "cache")),
    ("engines: the registry, one module per backend, the machine they run on, a model's artifacts", (
        "backends", "artifacts", "backends.torch_engine", "backends.torch_eager", "backends.inductor", "backends.precompile",
        "backends.aoti", "backends.onnxruntime", "backends.tensorrt_config", "backends.tensorrt",
        "backends.tensorrt_rtx", "environment")),
    ("settings: the option table, its parsers, the typed Settings", ("parsers", "options", "settings")),
    ("audit", (
        "audit", "audit.fp16_range", "audit.native_logs", "audit.onnx_stage", "audit.ort_placement", "audit.render", "audit.runner",
        "audit.tensorrt_live", "audit.tensorrt_rtx_stage", "audit.tensorrt_static", "audit.torch_stage")),
    ("judgement: the baseline, its comparison, the one verdict", (
        "baseline", "baseline.key", "baseline.store", "baseline.comparison", "baseline.summary", "baseline.offline",
        "judge", "judge.verdict")),
    ("check: the stages", (
        "check", "check.failure", "check.context", "check.reference", "check.prebuild", "check.build",
        "check.accuracy", "check.latency", "check.repair", "check.flow")),
    ("reports", (
        "report", "report.table", "report.terminal", "report.markdown", "report.html", "report.junit",
        "report.json_report", "report.saved")),
    ("glue: pytest hooks, the session, the CLI", (
        "session", "session_files", "xdist_groups", "plugin", "cli_common", "cli", "cli_check", "cli_saved", "__main__")),
)


def _graph() -> dict[str, set[str]]:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_graph", module)
    spec.loader.exec_module(module)
    return module.graph(), module.cycles  # type: ignore[no-any-return]


def _short(name: str) -> str:
    return name.removeprefix("pytest_infercheck.") if name != "pytest_infercheck" else name


def layer_of() -> dict[str, int]:
    return {module: index for index, (_, modules) in enumerate(LAYERS) for module in modules}


def test_every_module_has_a_layer_and_every_layer_entry_is_a_module() -> None:
    edges, _ = _graph()
    modules = {_short(name) for name in edges}
    placed = layer_of()
    assert not modules - set(placed), f"modules with no layer in LAYERS: {sorted(modules - set(placed))}"
    assert not set(placed) - modules, f"LAYERS names modules that do not exist: {sorted(set(placed) - modules)}"


def test_no_import_circles() -> None:
    edges, cycles = _graph()
    assert cycles(edges) == []


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    edges, _ = _graph()
    placed = layer_of()
    upward = [f"{_short(module)} ({LAYERS[placed[_short(module)]][0].split(':')[0]}) imports {_short(target)} "
              f"({LAYERS[placed[_short(target)]][0].split(':')[0]})"
              for module, targets in sorted(edges.items()) for target in sorted(targets)
              if placed.get(_short(target), -1) > placed.get(_short(module), len(LAYERS))]
    assert upward == []
