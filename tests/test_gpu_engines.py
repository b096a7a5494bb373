"""GPU engines, end to end through pytest runs of the plugin: run on a CUDA machine (`pytest -m gpu`).

Skipped without CUDA (CI has none); scripts/gpu_check.sh runs them on the lent H100.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu_check.sh)")]

REPO = Path(__file__).resolve().parents[1]
TORCH_BACKENDS = ("eager", "inductor", "aoti")
FLOAT_PRECISIONS = ("fp32", "fp16", "bf16")

# AOTInductor at FP16 only: each AOTInductor compile takes a minute or more on the GPU machine, and
# the other precisions take the same code path with another dtype (the eager and inductor rows
# cover every precision).
MATRIX = """
import pytest
from fixtures.models import small_cnn, cnn_inputs, tiny_encoder, token_inputs

@pytest.mark.infercheck(backends=["eager", "inductor", "onnxruntime", "tensorrt"],
                        precisions=["fp32", "fp16", "bf16", "int8"], cuda_graphs="both")
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())

@pytest.mark.infercheck(backends=["aoti"], precisions=["fp16", "int8"], cuda_graphs="both")
def test_cnn_aoti(infercheck):
    infercheck(small_cnn(), cnn_inputs())

@pytest.mark.infercheck(backends=["eager", "inductor"], precisions=["fp32", "fp16", "bf16"], cuda_graphs="both")
def test_encoder(infercheck):
    infercheck(tiny_encoder(), token_inputs())

@pytest.mark.infercheck(backends=["aoti"], precisions=["fp16"], cuda_graphs="both")
def test_encoder_aoti(infercheck):
    infercheck(tiny_encoder(), token_inputs())
"""


def results_of(report: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(test name, engine id) -> that item's result from the JSON report."""
    data = json.loads(report.read_text())
    return {(r["nodeid"].split("::")[-1].split("[")[0], r["spec_id"]): r for r in data["results"]}


def run_matrix(run_plugin: Any, tmp_path: Path, source: str, *args: str) -> tuple[Any, dict]:
    report = tmp_path / "report.json"
    result = run_plugin(source, "--infer-device=cuda", f"--infer-report={report}", "--infer-build-timeout=240", *args)
    return result, results_of(report)


def aoti_runtime_crashes(message: str) -> bool:
    """The one failure allowed: AOTInductor's own loader crashing (seen on the H100's torch 2.11+cu130),
    caught in a probe process and reported, with the session going on."""
    return "aoti_load_package crashed with SIGSEGV" in message and "this session goes on" in message


def test_every_gpu_engine_spec_on_the_fixture_models(run_plugin: Any, tmp_path: Path) -> None:
    result, results = run_matrix(run_plugin, tmp_path, MATRIX)
    failed = {key: r["message"] for key, r in results.items()
              if r["outcome"] == "failed" and not (key[1].startswith("aoti-") and aoti_runtime_crashes(r["message"]))}
    assert not failed, f"engines failed on the GPU: {json.dumps(failed, indent=1)}"
    for test in ("test_cnn", "test_encoder"):
        for backend in TORCH_BACKENDS:
            for precision in FLOAT_PRECISIONS if backend != "aoti" else ("fp16",):
                for graphs in ("", "-cudagraph"):
                    item = results[(test + ("_aoti" if backend == "aoti" else ""), f"{backend}-{precision}{graphs}")]
                    if backend == "aoti" and aoti_runtime_crashes(item["message"]):
                        assert item["stage"] == "build" and item["cache"]["aoti"] in ("hit", "miss")
                        continue
                    assert item["outcome"] == "passed", (test, backend, precision, graphs, item["message"])
                    assert item["device"].startswith("cuda")
                    assert item["latency"]["timer"] == "cuda-events"
                    assert item["latency"]["peak_memory_bytes"] > 0
                    assert item["gpu"]["name"]
                    assert item["reference"].endswith("TF32 off")
                    assert item["machine"]["gpu"]["name"] == item["gpu"]["name"]
                    assert item["latency"]["device_memory"]["method"] in ("nvml-process", "cuda-mem-get-info")
                    if graphs:
                        assert item["cuda_graph_drift"] <= 1.0  # in units of the allowed drift
    # INT8 on the torch backends: eager has none and says so; inductor and aoti quantize the CNN's
    # classifier with torchao (tests/test_gpu_lowprec.py covers them), or skip naming the extra.
    assert "has no INT8 engine" in results[("test_cnn", "eager-int8")]["message"]
    for test, backend in (("test_cnn", "inductor"), ("test_cnn_aoti", "aoti")):
        for graphs in ("", "-cudagraph"):
            item = results[(test, f"{backend}-int8{graphs}")]
            if item["outcome"] == "skipped":
                assert "pytest-infercheck[torchao]" in item["message"], item["message"]
            elif not aoti_runtime_crashes(item["message"]):
                assert item["outcome"] == "passed" and item["recipe"]["label"], item["message"]
    for graphs in ("", "-cudagraph"):
        for precision in ("fp32", "fp16", "int8"):
            ort = results[("test_cnn", f"onnxruntime-{precision}{graphs}")]
            if ort["outcome"] == "skipped":
                assert "CUDAExecutionProvider" in ort["message"]
            elif (precision, graphs) == ("int8", "-cudagraph") and ort["outcome"] == "failed":
                # Seen on the H100 (onnxruntime-gpu 1.31.1): the QDQ model leaves nodes to the CPU
                # provider, and the CUDA provider captures a graph only of a model it runs whole.
                assert ort["stage"] == "build", ort["message"]
                assert "cannot use the graph capture feature" in ort["message"], ort["message"]
            else:
                assert ort["outcome"] == "passed", (precision, graphs, ort["message"])
                assert any("ONNX Runtime providers: CUDAExecutionProvider" in note for note in ort["warnings"]), ort
        for precision in FLOAT_PRECISIONS + ("int8",):
            trt = results[("test_cnn", f"tensorrt-{precision}{graphs}")]
            assert trt["outcome"] in ("passed", "skipped"), trt["message"]
    result.stdout.fnmatch_lines(["*infercheck summary*"])


def test_compiled_engines_come_from_the_cache_on_a_second_run(run_plugin: Any, tmp_path: Path) -> None:
    source = """
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["aoti", "inductor"], precisions=["fp16"], cuda_graphs="both")
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
"""
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    run_matrix(run_plugin, first_dir, source)
    _, second = run_matrix(run_plugin, second_dir, source)
    for graphs in ("", "-cudagraph"):
        aoti = second[("test_cnn", f"aoti-fp16{graphs}")]
        assert aoti["outcome"] == "passed" or aoti_runtime_crashes(aoti["message"]), aoti["message"]
        assert aoti["cache"]["aoti"] == "hit"  # the package is not compiled again either way
        inductor = second[("test_cnn", f"inductor-fp16{graphs}")]
        assert inductor["cache"]["inductor"] == "hit"


XDIST_SOURCE = """
import pytest, torch
from fixtures.models import small_cnn, cnn_inputs, data_dependent_branch

@pytest.mark.infercheck(backends=["eager", "inductor"], precisions=["fp16", "bf16"], cuda_graphs="both")
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"], cuda_graphs="both")
def test_branchy(infercheck):
    infercheck(data_dependent_branch(), torch.randn(4, 8))
"""


def test_two_xdist_workers_give_the_same_verdicts_as_one_process(run_plugin: Any, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The workers are new processes: `import fixtures` there too (and keep any carried site dir).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    (tmp_path / "serial").mkdir()
    (tmp_path / "xdist").mkdir()
    _, serial = run_matrix(run_plugin, tmp_path / "serial", XDIST_SOURCE)
    _, parallel = run_matrix(run_plugin, tmp_path / "xdist", XDIST_SOURCE, "-n", "2")
    verdicts = lambda results: {key: (r["outcome"], r["stage"]) for key, r in results.items()}  # noqa: E731
    assert verdicts(parallel) == verdicts(serial)
    assert len(serial) == 2 * 2 * 2 + 2


def test_a_model_that_syncs_with_the_host_is_a_failed_cudagraph_item(run_plugin: Any, tmp_path: Path) -> None:
    source = """
import pytest, torch
from fixtures.models import data_dependent_branch

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"], cuda_graphs="both")
def test_branchy(infercheck):
    infercheck(data_dependent_branch(), torch.randn(4, 8))
"""
    result, results = run_matrix(run_plugin, tmp_path, source)
    result.assert_outcomes(passed=1, failed=1)
    failed = results[("test_branchy", "eager-fp32-cudagraph")]
    assert failed["stage"] == "cuda-graph"
    assert "cannot be captured into a CUDA graph" in failed["message"]
    result.stdout.fnmatch_lines(["*cuda-graph: the engine cannot be captured into a CUDA graph:"])
    # The model's line, as an export failure names it (the newcomer trial, defect 3).
    from fixtures.models import DataDependentBranch

    lines, start = inspect.getsourcelines(DataDependentBranch.forward)
    branch = start + next(i for i, line in enumerate(lines) if "if y.sum() > 0:" in line)
    # The file as failures show it: relative to the run's working directory where it is below it, else whole.
    assert re.search(rf"at \S*fixtures/models\.py:{branch} in forward: if y\.sum\(\) > 0:", failed["message"])


def test_time_transfers_adds_the_copies_to_the_figure(run_plugin: Any, tmp_path: Path) -> None:
    source = """
import pytest, torch

@pytest.mark.infercheck(backends=["eager"], precisions=["fp16"], cuda_graphs=True)
def test_big_input(infercheck):
    infercheck(torch.nn.Conv2d(3, 8, 3).eval(), torch.randn(16, 3, 256, 256))
"""
    (tmp_path / "device").mkdir()
    (tmp_path / "transfers").mkdir()
    _, device_only = run_matrix(run_plugin, tmp_path / "device", source)
    _, with_copies = run_matrix(run_plugin, tmp_path / "transfers", source, "--infer-time-transfers")
    key = ("test_big_input", "eager-fp16-cudagraph")
    assert not device_only[key]["latency"]["includes_transfers"]
    assert with_copies[key]["latency"]["includes_transfers"]
    # 12 MB in and 8 MB out over PCIe take far longer than one small convolution on the GPU.
    assert with_copies[key]["latency"]["p50_ms"] > 2 * device_only[key]["latency"]["p50_ms"]
