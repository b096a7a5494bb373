"""The HTML matrix read at a glance: engine columns in one fixed order, the stage in each failed cell,
and a page that fits a 1280 px window with ten engines (rendered in headless Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_infercheck.report.html import matrix, render_html
from pytest_infercheck.measure.results import CheckResult
from pytest_infercheck.core.spec import Outcome, Stage

# In the order a run might finish them: an AOTInductor item first, eager last.
RAN = ["aoti-fp32", "onnxruntime-int8", "onnxruntime-fp16", "inductor-bf16", "inductor-fp16-cudagraph",
       "inductor-fp16", "onnxruntime-fp32", "tensorrt-rtx-fp16", "eager-fp16", "eager-fp32"]


def result(spec_id: str, test: str = "test_classifier_deploys_with_a_long_descriptive_name") -> CheckResult:
    graphs = spec_id.endswith("-cudagraph")
    backend, precision = spec_id.removesuffix("-cudagraph").rsplit("-", 1)
    failed = spec_id == "onnxruntime-int8"
    return CheckResult(nodeid=f"tests/test_models.py::{test}[{spec_id}]", spec_id=spec_id, backend=backend,
                       precision=precision, cuda_graphs=graphs, outcome=Outcome.FAILED if failed else Outcome.PASSED,
                       stage=Stage.ACCURACY if failed else None)


def headers(html: str) -> list[str]:
    head = html[html.index("<tr>"):html.index("</tr>")]
    return [cell.split("</th>")[0] for cell in head.split("<th>")[2:]]


def test_engine_columns_follow_backend_precision_and_graph_order_not_the_order_they_ran() -> None:
    assert headers(matrix([result(spec) for spec in RAN])) == [
        "eager-fp32", "eager-fp16", "inductor-fp16", "inductor-fp16-cudagraph", "inductor-bf16", "aoti-fp32",
        "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8", "tensorrt-rtx-fp16"]
    assert headers(matrix([result(spec) for spec in reversed(RAN)])) == headers(matrix([result(s) for s in RAN]))


def test_a_failed_cell_names_its_stage() -> None:
    html = matrix([result(spec) for spec in RAN])
    assert ">failed (accuracy)</a>" in html and html.count(">passed</a>") == len(RAN) - 1


def test_ten_engines_fit_a_1280_px_window(tmp_path: Path) -> None:
    from test_reports import chromium  # skips without a browser

    page = tmp_path / "report.html"
    results = [result(spec, test) for spec in RAN for test in ("test_classifier_deploys_with_a_long_descriptive_name",
                                                                 "test_detector[batch-8]")]
    # A copy with a probe script: the report itself has none. The title becomes the page's scroll width.
    probe = ("<script>document.title = 'width=' + Math.max(document.documentElement.scrollWidth, "
             "document.querySelector('.matrix').scrollWidth);</script></body>")  # the matrix may not scroll either
    page.write_text(render_html(results).replace("</body>", probe))
    import subprocess

    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p'}",
                          "--window-size=1280,900", "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    width = int(dom.stdout.split("<title>width=")[1].split("<")[0])
    assert width <= 1280, f"the page is {width} px wide in a 1280 px window"
