"""The docs say what the code does: the options page is generated from the option table."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_options_page_matches_the_option_table() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_options_doc
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    current = (ROOT / "docs" / "options.md").read_text()
    assert current == gen_options_doc.render(), "docs/options.md is stale: run scripts/gen_options_doc.py"


def test_readme_names_the_two_commands_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 tasks.py demo" in readme and "python3 tasks.py test" in readme
    assert "python3 tasks.py test" in (ROOT / ".ci" / "run").read_text()
    for page in ("usage", "options", "architecture", "backends", "benchmarks"):
        assert f"docs/{page}.md" in readme
        assert (ROOT / "docs" / f"{page}.md").exists()


def test_tolerance_table_in_usage_matches_the_defaults() -> None:
    """docs/usage.md's table of default tolerances is the code's (compare.DEFAULT_TOLERANCES), row by row."""
    from pytest_infercheck.measure.compare import DEFAULT_TOLERANCES

    rows = {}
    for line in (ROOT / "docs" / "usage.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] in DEFAULT_TOLERANCES:
            rows[cells[0]] = cells
    assert set(rows) == set(DEFAULT_TOLERANCES)
    for precision, tolerance in DEFAULT_TOLERANCES.items():
        _, rel_l2, cosine, atol, rtol, mismatch = rows[precision][:6]
        mismatch_value = float(mismatch.rstrip("%")) / 100 if mismatch.endswith("%") else float(mismatch)
        assert (float(rel_l2), float(cosine), float(atol), float(rtol), mismatch_value) == (
            tolerance.max_rel_l2, tolerance.min_cosine, tolerance.atol, tolerance.rtol, tolerance.max_mismatch), precision


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (but - and _), spaces to -."""
    import re

    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_to_a_section_of_a_page_finds_its_heading() -> None:
    """A heading that names a file changes its anchor when the file moves (the layer folders did that)."""
    import re

    pages = {path.name: path for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    anchors = {name: {_slug(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}
               for name, path in pages.items()}
    broken = []
    for name, path in pages.items():
        for target, anchor in re.findall(r"\]\((?:docs/)?([\w.-]*\.md)?#([\w-]+)\)", path.read_text()):
            page = target or name
            if page in anchors and anchor not in anchors[page]:
                broken.append(f"{name}: {page}#{anchor}")
    assert not broken, broken
