"""docs/architecture.md's module table names every module of the package, and its layer table the
layers of the import contract: the page is rewritten from the code, and this keeps it so."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
assert _SPEC is not None and _SPEC.loader is not None
_GRAPH = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("import_graph", _GRAPH)
_SPEC.loader.exec_module(_GRAPH)
LAYERS = _GRAPH.LAYERS
PAGE = (ROOT / "docs" / "architecture.md").read_text()


def _section(title: str) -> str:
    return PAGE.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _documented_modules() -> set[str]:
    """Every module a row of the Modules table names: `a/b.py`, `a/` with (`x`, `y`) after it, or a
    bare `name.py` that belongs to the folder named first in its row."""
    named: set[str] = set()
    for row in _section("Modules").splitlines()[2:]:
        first = row.split("|")[1]
        folder = ""
        for token in re.findall(r"`([^`]+)`", first):
            if token.endswith("/"):
                folder = token
                named.add(token.rstrip("/"))
                continue
            path = token if "/" in token or not folder else folder + token
            folder = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
            named.add(path.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
        listed = re.search(r"\(([^)]*)\)", first)
        if first.strip().startswith("`") and listed and folder:
            named |= {folder.replace("/", ".") + name.strip(" `") for name in listed.group(1).split(",")}
    return {name.replace(".__init__", "") for name in named}


def test_every_module_is_in_the_module_table() -> None:
    modules = {name for _, group in LAYERS for name in group} - {"pytest_infercheck"}
    missing = sorted(modules - _documented_modules() - {"__init__"})
    assert not missing, f"docs/architecture.md's module table leaves out {missing}"


def test_the_layer_table_has_the_contracts_layers_in_order() -> None:
    rows = [row.split("|")[1].strip() for row in _section("Layers").splitlines() if row.startswith("| ")][2:]
    assert [row.split(" ")[0] for row in rows] == [name.split(":")[0].split(" ")[0] for name, _ in LAYERS]
