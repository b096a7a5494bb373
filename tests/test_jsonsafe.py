"""json_safe on the values users leave in results, and the report writers on hostile or odd text."""

from __future__ import annotations

import datetime
import enum
import json
import pickle
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from pytest_infercheck.core.jsonsafe import MAX_ARRAY_ELEMENTS, json_safe
from pytest_infercheck.core.mdtext import md_cell, md_code
from pytest_infercheck.measure.results import CheckResult


class Mode(enum.Enum):
    FAST = "fast"


def strict_round_trip(value: object) -> object:
    return json.loads(json.dumps(value, allow_nan=False))


def test_numpy_scalars_and_arrays_become_python_numbers() -> None:
    safe = json_safe({"f32": np.float32(0.5), "i64": np.int64(7), "flag": np.bool_(True),
                      "array": np.array([[1.0, np.nan], [np.inf, -np.inf]]), "zero_d": np.array(3)})
    assert safe == {"f32": 0.5, "i64": 7, "flag": True, "array": [[1.0, "nan"], ["inf", "-inf"]], "zero_d": 3}
    assert type(safe["f32"]) is float and type(safe["i64"]) is int and type(safe["flag"]) is bool
    assert strict_round_trip(safe) == safe


def test_torch_tensors_including_bfloat16() -> None:
    torch = pytest.importorskip("torch")
    safe = json_safe({"t": torch.tensor([1.5, 2.0], dtype=torch.bfloat16, requires_grad=False),
                      "scalar": torch.tensor(3.0), "grad": torch.ones(2, requires_grad=True), "dtype": torch.float16,
                      "size": torch.Size([2, 3])})
    assert safe == {"t": [1.5, 2.0], "scalar": 3.0, "grad": [1.0, 1.0], "dtype": "torch.float16", "size": [2, 3]}


def test_a_large_array_keeps_its_shape_not_its_data() -> None:
    safe = json_safe(np.zeros((MAX_ARRAY_ELEMENTS + 1,), dtype=np.float16))
    assert safe == {"shape": [MAX_ARRAY_ELEMENTS + 1], "dtype": "float16",
                    "omitted": f"more than {MAX_ARRAY_ELEMENTS} elements"}


def test_other_python_values() -> None:
    """The records' contract (paths, sets, tuples, enums, non-finite floats) gets its JSON form; a value
    outside it (issue 26: no date, bytes or complex field exists) is its repr, still strict JSON."""
    safe = json_safe({Path("/k"): Path("/models/a.onnx"), (1, 2): {3, 1, 2}, "mode": Mode.FAST, "nan": float("nan"),
                      "frozen": frozenset({"b", "a"}), "obj": object, "when": datetime.date(2024, 1, 2),
                      "queue": deque([1, 2]), "complex": 1 + 2j})
    assert safe == {"/k": "/models/a.onnx", "[1, 2]": [1, 2, 3], "mode": "fast", "nan": "nan", "frozen": ["a", "b"],
                    "obj": "<class 'object'>", "when": "datetime.date(2024, 1, 2)", "queue": "deque([1, 2])",
                    "complex": "(1+2j)"}
    assert strict_round_trip(safe) == safe
    assert pickle.loads(pickle.dumps(safe)) == safe  # what xdist's channel can carry


def test_a_self_referencing_value_ends() -> None:
    loop: list = []
    loop.append(loop)
    assert "nested deeper than" in json.dumps(json_safe(loop))


def test_a_result_with_numpy_extras_writes_a_strict_json_report(tmp_path: Path) -> None:
    from pytest_infercheck.report.json_report import write_json_report

    result = CheckResult(nodeid="t.py::test[eager-fp32]", spec_id="eager-fp32", backend="eager", precision="fp32",
                         cuda_graphs=False, message="Fehler: Überlauf \u2713",
                         gpu={"psnr": np.float64(41.5), "hist": np.arange(3), "where": Path("/tmp/x"),
                              "bad": float("inf")})
    write_json_report(tmp_path / "r.json", [result])
    data = json.loads((tmp_path / "r.json").read_bytes().decode("utf-8"))  # strict parsers accept it too
    [written] = data["results"]
    assert written["gpu"] == {"psnr": 41.5, "hist": [0, 1, 2], "where": "/tmp/x", "bad": "inf"}
    assert written["message"] == "Fehler: Überlauf \u2713"


# -- Markdown: text from error messages must stay text -------------------------------------------

HOSTILE = "<img src=x onerror=alert(1)> & ![pixel](https://tracker.example/p.png) [click](javascript:x) a|b\nnext"


def test_md_cell_makes_html_links_and_pipes_inert() -> None:
    cell = md_cell(HOSTILE)
    assert "<" not in cell and ">" not in cell and "](" not in cell and "\n" not in cell
    assert cell == ("&lt;img src=x onerror=alert(1)&gt; &amp; ![pixel]\\(https://tracker.example/p.png) "
                    "[click]\\(javascript:x) a\\|b next")


def test_md_cell_keeps_emphasis_and_code_characters_literal() -> None:
    # A module path and a product of shapes from an error message render as written, not as bold, italics or
    # strikethrough; an underscore inside a word (snake_case) needs no escape; code quoted in backticks stays code.
    assert md_cell("model.__init__ failed: 2*3*4 != `x` ~1%") == "model.\\_\\_init\\_\\_ failed: 2\\*3\\*4 != `x` \\~1%"
    assert md_cell("keep_fp32 _private trailing_") == "keep_fp32 \\_private trailing\\_"
    # inside a code span nothing is interpreted: only a pipe is escaped (GitHub's tables would end the cell)
    assert md_cell("see `m.__init__(a|b) <x>` and <y>") == "see `m.__init__(a\\|b) <x>` and &lt;y&gt;"


def test_md_cell_joins_an_indented_multi_line_message_with_single_spaces() -> None:
    assert md_cell("Branchy:\n      at model.py:9 in forward\n  reason") == "Branchy: at model.py:9 in forward reason"


def test_md_code_fences_backticks() -> None:
    assert md_code("test_x[a]") == "`test_x[a]`"
    assert md_code("a ` b") == "``a ` b``"
    assert md_code("`x`") == "`` `x` ``"


def test_markdown_report_and_step_summary_carry_no_raw_html(tmp_path: Path) -> None:
    from pytest_infercheck.report.markdown import render_markdown, write_markdown

    result = CheckResult(nodeid="t.py::test_`odd`<b>[eager-fp32]", spec_id="eager-fp32", backend="eager",
                         precision="fp32", cuda_graphs=False, outcome="failed", stage="accuracy",
                         failures=[HOSTILE, "</td></tr></table><script>x()</script>"])
    text = render_markdown([result])
    assert "<img" not in text and "<script" not in text and "</table" not in text and "](" not in text
    assert "&lt;script&gt;x()&lt;/script&gt;" in text
    header, _, row = [line for line in text.splitlines() if line.startswith("|")]
    assert row.count(" | ") == header.count(" | ")  # a | in the text did not add a column

    (tmp_path / "adir").mkdir()
    summary = tmp_path / "summary.md"
    problems = write_markdown([result], str(tmp_path / "adir"), str(summary))
    assert problems == [f"infercheck: could not write the Markdown report to {tmp_path / 'adir'}: Is a directory"]
    assert summary.read_text(encoding="utf-8") == text + "\n"  # the job summary is still written


def test_unwritable_step_summary_is_one_line(tmp_path: Path) -> None:
    from pytest_infercheck.report.markdown import write_markdown

    result = CheckResult(nodeid="t.py::test[eager-fp32]", spec_id="eager-fp32", backend="eager", precision="fp32",
                         cuda_graphs=False)
    problems = write_markdown([result], str(tmp_path / "ok.md"), str(tmp_path / "missing" / "summary.md"))
    assert problems == [f"infercheck: could not write the job summary ($GITHUB_STEP_SUMMARY) to "
                        f"{tmp_path / 'missing' / 'summary.md'}: No such file or directory"]
    assert (tmp_path / "ok.md").read_text().startswith("## infercheck: 1 passed")
