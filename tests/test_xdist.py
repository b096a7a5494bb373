"""With pytest-xdist (-n 2) the summary, the reports and the baseline hold every item exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("xdist", reason="pip install pytest-xdist to run the -n 2 tests")

# Two tests x two engines, so each worker gets items and both workers' results must reach the controller.
SOURCE = """
import pytest
from fixtures.models import small_cnn, cnn_inputs, dynamic_mlp

@pytest.mark.infercheck(backends=["eager", "onnxruntime"])
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())

@pytest.mark.infercheck(backends=["eager", "onnxruntime"])
def test_mlp(infercheck):
    import torch
    infercheck(dynamic_mlp(), torch.randn(4, 64))
"""
ITEMS = {f"test_model.py::{test}[{engine}]" for test in ("test_cnn", "test_mlp")
         for engine in ("eager-fp32", "onnxruntime-fp32")}


def test_two_workers_report_and_record_every_item_once(run_plugin, pytester: pytest.Pytester,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the workers are new processes: `import fixtures` there too
    baseline, report, markdown, html = (pytester.path / name for name in ("b.json", "r.json", "r.md", "r.html"))
    args = ["-n", "2", f"--infer-baseline={baseline}", f"--infer-report={report}", f"--infer-markdown={markdown}",
            f"--infer-html={html}", "--infer-max-regression=100000%"]

    first = run_plugin(SOURCE, *args, "--infer-baseline-update")
    first.assert_outcomes(passed=4)
    first.stdout.fnmatch_lines(["*2 workers*", "baseline updated: 4 entries written, 0 kept, 0 not written*"])
    assert sorted(e["nodeid"] for e in json.loads(baseline.read_text())["entries"]) == sorted(ITEMS)
    assert_each_item_once(first, report, markdown, html)

    second = run_plugin(SOURCE, *args)
    second.assert_outcomes(passed=4)
    second.stdout.fnmatch_lines(["baseline *: 4 compared, 0 regressed, * 0 missing, 0 not applied*"])
    assert_each_item_once(second, report, markdown, html)


def assert_each_item_once(result: pytest.RunResult, report: Path, markdown: Path, html: Path) -> None:
    summary = result.stdout.str().split("infercheck summary", 1)[1]
    for item in ITEMS:
        test, engine = item.split("[")
        assert sum(1 for line in summary.splitlines() if line.startswith(test + " ") and f" {engine[:-1]} " in line) == 1
    assert sorted(r["nodeid"] for r in json.loads(report.read_text())["results"]) == sorted(ITEMS)
    rows = [line for line in markdown.read_text().splitlines() if line.startswith("| test_model.py::")]
    assert len(rows) == 4 and len(set(rows)) == 4
    assert html.read_text().count("<div class='card'") == 4


GROUPED = """
import os, pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp32"], cuda_graphs="both")
def test_cnn(infercheck, request):
    with open(os.environ["WORKERS_LOG"], "a") as log:
        log.write(request.node.callspec.id + " " + os.environ["PYTEST_XDIST_WORKER"] + "\\n")
    infercheck(small_cnn(), cnn_inputs())

def test_other():
    pass
"""


def test_engines_that_share_a_build_run_on_one_worker(run_plugin, pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """--infer-xdist-groups=on: an engine with and without a CUDA graph (one build) go to one worker;
    every item still runs once, other tests too."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    log, report = pytester.path / "workers.log", pytester.path / "r.json"
    monkeypatch.setenv("WORKERS_LOG", str(log))
    grouped = run_plugin(GROUPED, "-n", "2", "-v", "--infer-xdist-groups=on", f"--infer-report={report}")
    grouped.assert_outcomes(passed=3, skipped=2)
    grouped.stdout.fnmatch_lines(["scheduling tests via EngineScopeScheduling"])
    worker_of = dict(line.split() for line in log.read_text().splitlines())
    assert len(worker_of) == 4
    assert worker_of["eager-fp32"] == worker_of["eager-fp32-cudagraph"]
    assert worker_of["onnxruntime-fp32"] == worker_of["onnxruntime-fp32-cudagraph"]
    assert len(json.loads(report.read_text())["results"]) == 4
    # auto on a machine without several GPUs: xdist's own scheduling, unchanged
    run_plugin(GROUPED, "-n", "2", "-v").stdout.fnmatch_lines(["scheduling tests via LoadScheduling"])


GROUPED_WITH_PARAMETERS = """
import os, pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"], cuda_graphs="both")
def test_cnn(infercheck, request, batch):
    with open(os.environ["WORKERS_LOG"], "a") as log:
        log.write(request.node.callspec.id + " " + os.environ["PYTEST_XDIST_WORKER"] + "\\n")
    infercheck(small_cnn(), cnn_inputs(batch))
"""


def test_a_test_with_its_own_parameters_keeps_each_engine_with_its_twin(run_plugin, pytester: pytest.Pytester,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A model repo's test parametrised by batch size: each batch's engine and its CUDA-graph twin go to
    one worker (their node ids carry the batch beside the engine id)."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    log = pytester.path / "workers.log"
    monkeypatch.setenv("WORKERS_LOG", str(log))
    run_plugin(GROUPED_WITH_PARAMETERS, "-n", "2", "-v", "--infer-xdist-groups=on").assert_outcomes(passed=3, skipped=3)
    worker_of = dict(line.split() for line in log.read_text().splitlines())
    assert len(worker_of) == 6
    twins = [(engine, engine.replace("eager-fp32", "eager-fp32-cudagraph"))
             for engine in worker_of if "cudagraph" not in engine]
    assert len(twins) == 3 and all(worker_of[engine] == worker_of[twin] for engine, twin in twins), worker_of
    assert len(set(worker_of.values())) == 2  # and the batches are spread over both workers
