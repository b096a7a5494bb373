"""torchao's INT8 and FP8 engines on CUDA (issue 24, item 2): `pytest -m gpu tests/test_gpu_lowprec.py`.

An MLP large enough for its matrix products to dominate runs through inductor-int8 (dynamic, and
static from calibration=), inductor-fp8 (per-row and per-tensor) and inductor-bf16; each passes
accuracy at its precision's default tolerance and records its method, and its error against eager
FP32 matches the same model's hand-written torchao recipe's (quantize_ + torch.compile:
fixtures/torchao_hand.py): the same quantization, not merely a passing one.  The two p50s are printed
side by side; the latency claim is benchmarks/gpu_lowprec.py's (a test checks behaviour, not timing:
the two wall p50s' ratio moved between processes on the H100).  Skipped without
CUDA; the FP8 items skip below compute capability 8.9 and everything skips without torchao.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu_check.sh)")]


@pytest.fixture(autouse=True)
def torchao_imported_before_the_runs() -> None:
    """pytester's in-process runs drop the modules a run imported, and torchao registers its custom operators
    (torchao::int_matmul) when it is imported: a second run importing it again fails ("registered ... multiple
    times").  Imported here, in the test's own process, before any run, it stays one copy for the session."""
    pytest.importorskip("torchao")
    import torchao.kernel  # noqa: F401
    import torchao.quantization  # noqa: F401


# The same config on the same BF16 model: the errors differ only by how each compile fused the rest.
SAME_ERROR_WITHIN = 0.25

SOURCE = """
import pytest, torch
from fixtures.torchao_hand import mlp, mlp_inputs

@pytest.mark.infercheck(engines=["inductor-bf16", "inductor-int8", "inductor-fp8"])
def test_mlp(infercheck):
    infercheck(mlp(), mlp_inputs())

@pytest.mark.infercheck(engines=["inductor-fp8"], fp8_granularity="tensor")
def test_mlp_per_tensor(infercheck):
    infercheck(mlp(), mlp_inputs())

@pytest.mark.infercheck(engines=["inductor-int8"])
def test_mlp_static(infercheck):
    gen = torch.Generator().manual_seed(1)
    infercheck(mlp(), mlp_inputs(), calibration=[torch.randn(256, 1024, generator=gen) for _ in range(8)])
"""


def test_torchao_engines_pass_and_quantize_as_the_hand_recipe_does(run_plugin: Any, tmp_path: Path) -> None:
    pytest.importorskip("torchao")
    from fixtures.torchao_hand import cuda_p50_ms, hand_recipe, mlp, mlp_inputs, rel_err, torchao_process_settings

    report = tmp_path / "report.json"
    result = run_plugin(SOURCE, "--infer-device=cuda", f"--infer-report={report}", "--infer-build-timeout=400",
                        "-rs", timing=False)
    print("\n".join(result.outlines[-14:]))
    items = {(r["nodeid"].split("::")[1].split("[")[0], r["spec_id"]): r for r in json.loads(report.read_text())["results"]}
    fp8_ok = torch.cuda.get_device_capability() >= (8, 9)
    rows = []
    for (test, spec_id), item in sorted(items.items()):
        if spec_id.endswith("fp8") and not fp8_ok:
            assert item["outcome"] == "skipped" and "compute capability 8.9" in item["message"], item["message"]
            continue
        assert item["outcome"] == "passed", f"{test} {spec_id}: {item['message']}"
        precision = spec_id.rsplit("-", 1)[1]
        if precision != "bf16":
            recipe = item["recipe"]
            assert recipe["quantized_ops"] == ["Linear"] and recipe["quantized_modules"] == 3
            expected = {"test_mlp_static": "static, per-tensor act", "test_mlp_per_tensor": "dynamic, per-tensor"}
            assert recipe["label"] == expected.get(test, "dynamic, per-token act" if precision == "int8" else
                                                   "dynamic, per-row")
        if test == "test_mlp_static":
            continue  # no hand recipe: torchao's static INT8 needs the same per-layer scales by hand
        granularity = "tensor" if test == "test_mlp_per_tensor" else "row"
        with torchao_process_settings():  # compiled and run as a user's process runs it
            fn, inputs = hand_recipe(mlp(), (mlp_inputs(),), precision, granularity)
            hand, plugin = cuda_p50_ms(fn, inputs), item["latency"]["p50_ms"]
            err, hand_err = item["accuracy"]["outputs"][0]["rel_l2"], rel_err(fn, inputs, mlp(), (mlp_inputs(),))
        rows.append((test, spec_id, plugin, hand, plugin / hand, err, hand_err))
    print("\n test | engine | plugin p50 ms | hand p50 ms | plugin/hand | rel err | hand rel err")
    for test, spec_id, plugin, hand, ratio, err, hand_err in rows:
        print(f" {test} | {spec_id} | {plugin:.4f} | {hand:.4f} | {ratio:.3f} | {err:.2e} | {hand_err:.2e}")
    assert all(math.isfinite(row[5]) and math.isfinite(row[6]) for row in rows), rows  # a NaN compares as "close"
    apart = [row for row in rows if abs(row[5] - row[6]) > SAME_ERROR_WITHIN * row[6]]
    assert not apart, f"the plugin's engine errs unlike the hand recipe at the same precision: {apart}"


OUTLIER = """
import pytest
from fixtures.problem_models import outlier_feature_model, outlier_inputs

@pytest.mark.infercheck(engines=["inductor-int8"], repair_precision=True)
def test_outlier(infercheck):
    infercheck(outlier_feature_model(), outlier_inputs())
"""


def test_the_repair_keeps_the_layer_an_outlier_feature_ruins_in_int8(run_plugin: Any, tmp_path: Path) -> None:
    """torchao's dynamic INT8 (one activation scale per token) rounds every feature but the outlier to
    zero in `mixer`: inductor-int8 fails, and the repair, ranking modules from the engine's own quantized
    copy, keeps `mixer` in FP32 and verifies the rebuilt engine (issue 24, item 4)."""
    pytest.importorskip("torchao")
    report = tmp_path / "report.json"
    result = run_plugin(OUTLIER, "--infer-device=cuda", f"--infer-report={report}", "--infer-build-timeout=400")
    print("\n".join(line for line in result.outlines if "=>" in line or "rel err" in line)[-2000:])
    item = json.loads(report.read_text())["results"][0]
    assert item["outcome"] == "failed", item["message"]
    repair = item["repair"]
    assert repair["candidates"][0] == "mixer" and repair["keep_fp32"] == ["mixer"] and repair["passed"], repair
    assert item["message"].splitlines()[-1].startswith('  => keep_fp32=["mixer"] makes inductor-int8 pass')
