"""Every Python example in README.md and docs/ runs, so a doc example cannot drift from the behaviour.

An example that defines pytest tests (``def test_...``) is run as a test file through the plugin
(pytester); any other example is executed as a script.  ``mymodels`` in the README stands for the
user's own code: a stand-in module over the bundled fixtures provides it (MYMODELS below).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

MYMODELS = '''
"""Stand-in for a user's model package: the README's Classifier and calibration data."""
import torch
from fixtures.models import SmallCNN

Classifier = SmallCNN

def calibration_batches():
    generator = torch.Generator().manual_seed(7)
    return [torch.randn(1, 3, 224, 224, generator=generator) for _ in range(4)]  # the example's shape
'''


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", textwrap.dedent(match.group(2))))
    return found


EXAMPLES = examples()


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 5 and any(name.startswith("README") for name, _ in EXAMPLES)


@pytest.mark.parametrize("code", [code for _, code in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_example_runs(code: str, run_plugin, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    if "def test_" in code:
        pytester.makepyfile(mymodels=MYMODELS)
        result = run_plugin(code)
        outcomes = result.parseoutcomes()
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
        assert not outcomes.get("errors") and outcomes.get("passed", 0) >= 1, result.stdout.str()
        assert "INTERNALERROR" not in result.stdout.str()
        return
    monkeypatch.chdir(pytester.path)  # whatever an example writes lands in a temporary directory
    exec(compile(code, "<doc example>", "exec"), {"__name__": "doc_example"})
