"""torchao's INT8 and FP8 engines (inductor, aoti) where they cannot run: on the CPU, without torchao,
and FP8 below compute capability 8.9 (docs/precision.md).  tests/test_gpu_lowprec.py runs them on CUDA."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_infercheck.backends import torchao_quant
from pytest_infercheck.config.parsers import OptionError, parse_fp8_granularity
from pytest_infercheck.core.spec import EngineSpec

CPU_MATRIX = '''
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(engines=["inductor-int8", "inductor-fp8", "aoti-int8", "aoti-fp8", "eager-fp8"])
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
'''


def test_torchao_engines_skip_on_the_cpu_with_the_reason(run_plugin: Any) -> None:
    result = run_plugin(CPU_MATRIX, "--infer-device=cpu", "-rs")
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines_random([
        "*inductor-int8: inductor-int8 needs CUDA: torchao's INT8/FP8 kernels here run on NVIDIA GPUs*",
        "*inductor-fp8: inductor-fp8 needs CUDA: torchao's INT8/FP8 kernels here run on NVIDIA GPUs*",
        "*aoti-int8: aoti-int8 needs CUDA*",
        "*aoti-fp8: aoti-fp8 needs CUDA*",
        "*eager-fp8: the eager backend has no FP8 engine (it offers fp32, fp16, bf16)*",
    ])


def test_without_torchao_the_reason_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a))
    reason = torchao_quant.unavailable_reason(EngineSpec("inductor", "int8"), "cuda")
    assert reason == "torchao is not installed: pip install 'pytest-infercheck[torchao]'"


def test_fp8_below_sm89_names_the_gpu_and_its_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: SimpleNamespace() if name == "torchao" else real(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA A100-SXM4-80GB")
    reason = torchao_quant.unavailable_reason(EngineSpec("inductor", "fp8"), "cuda")
    assert reason is not None
    assert "compute capability 8.9 or newer" in reason and "NVIDIA A100-SXM4-80GB is 8.0 (sm_80)" in reason
    assert torchao_quant.unavailable_reason(EngineSpec("inductor", "int8"), "cuda") is None  # INT8 runs there
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
    assert torchao_quant.unavailable_reason(EngineSpec("aoti", "fp8"), "cuda:0") is None


def test_fp8_granularity_is_row_or_tensor() -> None:
    assert parse_fp8_granularity("Tensor") == "tensor"
    with pytest.raises(OptionError):
        parse_fp8_granularity("block")


def test_the_method_says_dynamic_or_static_and_the_granularity() -> None:
    def request(precision: str, calibration: Any = None, generated: bool = False) -> Any:
        return SimpleNamespace(spec=EngineSpec("inductor", precision), calibration=calibration,
                               calibration_generated=generated)

    assert torchao_quant.label(request("int8"), "row") == "dynamic, per-token act"
    assert torchao_quant.label(request("int8", [1, 2], generated=True), "row") == "dynamic, per-token act"
    static = request("int8", [1, 2, 3])
    assert torchao_quant.label(static, "row") == "static, per-tensor act"
    assert "from 3 calibration batches" in torchao_quant.method(static, "row")
    assert torchao_quant.label(request("fp8"), "tensor") == "dynamic, per-tensor"
    assert "E4M3" in torchao_quant.method(request("fp8"), "row")


def test_the_recipe_leaves_multihead_attentions_out_proj_as_torchao_does() -> None:
    """PyTorch marks nn.MultiheadAttention's out_proj NonDynamicallyQuantizableLinear and torchao's default
    filter skips it; the plugin's recipe quantizes the layers a hand-written quantize_ would."""
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = torch.nn.MultiheadAttention(16, 2, batch_first=True)
            self.fc = torch.nn.Linear(16, 16)

    request = SimpleNamespace(spec=EngineSpec("inductor", "int8"), calibration=None, calibration_generated=False,
                              keep_fp32=[], artifacts=SimpleNamespace(model=SimpleNamespace(module=Block())))
    assert torchao_quant.record_recipe(request, "row") == ["fc"]
    assert request.recipe.quantized_modules == 1


def test_the_cache_key_of_a_quantized_package_holds_the_layers_it_quantizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """An AOTInductor package built when the recipe chose other layers (another keep_fp32, or before
    out_proj was left out) must not load under the new choice."""
    torch = pytest.importorskip("torch")
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.17.0")  # torchao need not be installed

    def request(keep: list[str]) -> Any:
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        return SimpleNamespace(spec=EngineSpec("aoti", "int8"), calibration=None, calibration_generated=False,
                               keep_fp32=keep, artifacts=SimpleNamespace(model=SimpleNamespace(module=model)))

    everything, kept = torchao_quant.cache_key(request([]), "row"), torchao_quant.cache_key(request(["1"]), "row")
    assert everything["layers"] != kept["layers"] and everything["method"] == kept["method"]


def test_a_compiled_function_compiles_again_when_tf32_is_switched_after_its_compile() -> None:
    """Why the hand recipe is compiled and timed under one setting (fixtures/torchao_hand.py): Dynamo guards
    the TF32 switch, so a function compiled under torchao's TF32 "high" and called after it was restored
    compiles a new graph, under whatever Inductor options are set then.  The H100's ViT-ish INT8 "hand
    recipe" ran such a recompile, under Inductor's defaults, until 2026-12-07 evening."""
    torch = pytest.importorskip("torch")
    from torch._dynamo.utils import counters

    saved = torch.get_float32_matmul_precision()
    model, example = torch.nn.Linear(8, 8).eval(), torch.randn(2, 8)
    torch._dynamo.reset()
    try:
        torch.set_float32_matmul_precision("high")
        compiled = torch.compile(model, backend="eager")
        with torch.inference_mode():
            compiled(example)
            graphs = counters["stats"]["unique_graphs"]
            compiled(example)
            assert counters["stats"]["unique_graphs"] == graphs  # same setting: the same graph
            torch.set_float32_matmul_precision("highest")
            compiled(example)
        assert counters["stats"]["unique_graphs"] == graphs + 1  # switched: compiled again
    finally:
        torch.set_float32_matmul_precision(saved)
        torch._dynamo.reset()


def test_the_hand_recipe_refuses_to_be_made_outside_torchaos_settings() -> None:
    pytest.importorskip("torch")
    from fixtures.torchao_hand import hand_recipe

    with pytest.raises(RuntimeError, match=r"inside torchao_process_settings\(\), and so does its timing"):
        hand_recipe(object(), (), "int8")  # type: ignore[arg-type]


def test_torchaos_settings_hold_through_the_block_and_are_restored_after_it_even_on_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand recipe is compiled and timed inside torchao_process_settings(): its settings stay on for the
    whole block (a function compiled and called inside compiles once), and every one is restored after,
    error or not, so the plugin's engines timed later in the process see their own."""
    import sys
    import types

    torch = pytest.importorskip("torch")

    def recommended_inductor_config_setter() -> None:  # torchao 0.17's (quantization/utils.py), torchao not needed
        torch._inductor.config.coordinate_descent_tuning = True
        torch._inductor.config.coordinate_descent_check_all_directions = True
        torch._inductor.config.force_fuse_int_mm_with_mul = True
        torch._inductor.config.fx_graph_cache = True
        torch._inductor.config.triton.unique_kernel_names = True
        torch.set_float32_matmul_precision("high")

    utils = types.ModuleType("torchao.quantization.utils")
    utils.recommended_inductor_config_setter = recommended_inductor_config_setter  # type: ignore[attr-defined]
    for name, module in (("torchao", types.ModuleType("torchao")),
                         ("torchao.quantization", types.ModuleType("torchao.quantization")),
                         ("torchao.quantization.utils", utils)):
        monkeypatch.setitem(sys.modules, name, module)
    from torch._dynamo.utils import counters

    from fixtures.torchao_hand import torchao_process_settings

    def state() -> tuple[object, ...]:
        config = torch._inductor.config
        return (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32, config.coordinate_descent_tuning,
                config.coordinate_descent_check_all_directions, config.force_fuse_int_mm_with_mul)

    before = state()
    torch._dynamo.reset()
    with torchao_process_settings():
        assert state()[0] == "high" and state()[2:] == (True, True, True)
        compiled = torch.compile(torch.nn.Linear(8, 8).eval(), backend="eager")
        with torch.inference_mode():
            compiled(torch.randn(2, 8))
            graphs = counters["stats"]["unique_graphs"]
            for _ in range(3):  # the timed calls
                compiled(torch.randn(2, 8))
        assert counters["stats"]["unique_graphs"] == graphs
    assert state() == before
    with pytest.raises(ValueError, match="inside"):
        with torchao_process_settings():
            raise ValueError("inside")
    assert state() == before
    torch._dynamo.reset()
