"""The import contract: no circle, and no module imports from a layer above its own.

Layers, lowest first: scripts/import_graph.py's LAYERS (docs/architecture.md draws them).  A module may import from its own layer and
the layers below; imports under ``if TYPE_CHECKING:`` never run and are not counted; lazy imports
inside functions are.  A module missing from LAYERS fails the test, so a new module is placed on
purpose.  The graph is scripts/import_graph.py's: ``python scripts/import_graph.py --edges``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

def _load_graph_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_graph", module)
    spec.loader.exec_module(module)
    return module


GRAPH = _load_graph_script()
LAYERS = GRAPH.LAYERS


def _graph():  # type: ignore[no-untyped-def]
    return GRAPH.graph(), GRAPH.cycles


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
