"""Reduced precision you can ship (docs/precision.md, issue 24): the INT8 recipe that serves masked
transformers, its place in the cache key and the report, a run failure that quantization produced,
and keep_fp32 on eager, ONNX FP16 and ONNX INT8."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_infercheck.config.options import INT8_DEFAULT_OPS


def results_of(report: Path) -> dict[str, dict]:
    return {r["nodeid"].split("::")[1]: r for r in json.loads(report.read_text())["results"]}


def test_default_int8_recipe_serves_masked_transformers(run_plugin, tmp_path: Path) -> None:
    """Llama, CLIP text and T5 (random weights, padded attention mask) pass onnxruntime-int8 as they
    come: the recipe quantizes the matrix products only, and the report says so."""
    pytest.importorskip("transformers")
    source = '''
import pytest
from fixtures import hf_models as hf

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["int8"])
@pytest.mark.parametrize("name", ["llama", "clip_text", "t5_encoder"])
def test_int8(infercheck, name):
    infercheck(getattr(hf, name)(), hf.text_inputs())
'''
    report = tmp_path / "report.json"
    result = run_plugin(source, f"--infer-report={report}")
    result.assert_outcomes(passed=3)
    for item in results_of(report).values():
        recipe = item["recipe"]
        assert recipe["method"].startswith("ONNX Runtime static INT8")
        assert recipe["quantized_ops"] == list(INT8_DEFAULT_OPS)
        assert recipe["keep_fp32"] == [] and recipe["not_honoured"] == ""


CNN_INT8 = '''
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(engines=["onnxruntime-int8"])
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
'''


def test_int8_recipe_is_part_of_the_cache_key(run_plugin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    report = tmp_path / "report.json"

    def int8_model_cache(*args: str) -> str:
        result = run_plugin(CNN_INT8, f"--infer-cache-dir={cache}", f"--infer-report={report}", *args, cache=False)
        result.assert_outcomes(passed=1)
        return next(iter(results_of(report).values()))["cache"]["onnx-int8"]

    assert int8_model_cache() == "miss"
    assert int8_model_cache() == "hit"
    assert int8_model_cache("--infer-int8-ops=Conv") == "miss"  # another recipe, another model
    assert int8_model_cache("--infer-int8-ops=Conv") == "hit"
    assert int8_model_cache() == "hit"  # the default's entry is still there


def test_an_unknown_int8_operator_type_names_the_option(run_plugin) -> None:
    result = run_plugin(CNN_INT8.replace('engines=["onnxruntime-int8"]', 'engines=["onnxruntime-int8"], int8_ops=["Matmul"]'))
    result.assert_outcomes(errors=1)  # the marker's own error, at its line (was: every INT8 item failing at build)
    result.stdout.fnmatch_lines(["*test_model.py:*: @pytest.mark.infercheck int8_ops: 'Matmul' is no operator type "
                                 "ONNX Runtime's QDQ quantizer handles; it handles *MatMul*"])


def test_an_int8_recipe_that_quantizes_nothing_fails_the_build_naming_the_models_operator_types(run_plugin) -> None:
    """Before, int8_ops naming no operator type of the model (Conv on a CNN's Linear head is not it: here a
    Linear-only MLP), or keep_fp32 covering every quantizable module, built an "INT8" engine without one
    QuantizeLinear node: it ran FP32, passed as INT8, and nothing said so (found by an attacker's session)."""
    source = """
import pytest, torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))

@pytest.mark.infercheck(engines=["onnxruntime-int8"], int8_ops=["Conv"])
def test_conv_only(infercheck):
    torch.manual_seed(0)
    infercheck(Net().eval(), torch.randn(4, 16))

@pytest.mark.infercheck(engines=["onnxruntime-int8"], keep_fp32=["a", "b"])
def test_all_kept(infercheck):
    torch.manual_seed(0)
    infercheck(Net().eval(), torch.randn(4, 16))
"""
    result = run_plugin(source)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*NothingQuantized: the INT8 recipe quantized nothing: no operator of int8_ops=[[]'Conv'[]] occurs in the model "
        "(its operator types: Gemm, Relu), so the engine would run in FP32 and pass as INT8; choose int8_ops among "
        "its types, or keep fewer modules in FP32"])
    result.stdout.fnmatch_lines(["*quantized nothing: no operator of int8_ops=* occurs in the model outside the 2 "
                                 "node(s) of keep_fp32's modules*"])
    result.stdout.re_match_lines([r"test_model.py::test_conv_only +onnxruntime-int8 +cpu +failed \(build\)"])


def test_a_run_failure_after_quantization_says_so_and_how_to_exclude(run_plugin) -> None:
    """The T5 symptom of issue 24 (Gather index out of bounds at run): the message says quantization
    produced it (the FP32 export runs the same inputs) and names the module to keep in float."""
    pytest.importorskip("transformers")
    source = '''
import pytest
from fixtures import hf_models as hf
from pytest_infercheck.backends import onnxruntime as ort

NODE = "/module/encoder/block.0/layer.0/SelfAttention/relative_attention_bias/Gather"

@pytest.mark.infercheck(engines=["onnxruntime-int8"])
def test_t5(infercheck, monkeypatch):
    def run(self, prepared):
        raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code returned while "
                           f"running Gather node. Name:'{NODE}' Status Message: indices element out of data bounds")
    monkeypatch.setattr(ort.OnnxRuntimeEngine, "run", run)
    infercheck(hf.t5_encoder(), hf.text_inputs())
'''
    result = run_plugin(source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "  - run: the onnxruntime-int8 engine failed on the example inputs:",
        "*Gather node*indices element out of data bounds*",
        "      INT8 quantization produced this failure at node '/module/encoder/block.0/layer.0/SelfAttention/"
        "relative_attention_bias/Gather' in module 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias': "
        "the FP32 export runs the same inputs. The recipe quantized int8_ops=MatMul,Gemm,Conv,ConvTranspose; "
        "keep_fp32=['encoder.block.0.layer.0.SelfAttention.relative_attention_bias'] keeps that module in float, "
        "or int8_ops= narrows the operator types quantized (docs/precision.md)",
    ])


OVERFLOW = '''
import pytest
from fixtures.problem_models import overflow_in_one_module, overflow_inputs

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp16"])
def test_as_is(infercheck):
    infercheck(overflow_in_one_module(), overflow_inputs())

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp16"], keep_fp32=["hot"])
def test_hot_kept(infercheck):
    infercheck(overflow_in_one_module(), overflow_inputs())
'''


def test_keep_fp32_fixes_an_fp16_overflow_in_eager_and_onnx(run_plugin, tmp_path: Path) -> None:
    """`hot` overflows FP16: kept in FP32 (eager: between casts; ONNX: blocked from conversion by the
    export's scope metadata) both engines pass, and the report says what was kept."""
    report = tmp_path / "report.json"
    # A cache of its own: the repair tests build the same kept model in the shared one, and this test
    # shows that keep_fp32 makes a model of its own (a miss beside the FP16 model without it).
    result = run_plugin(OVERFLOW, f"--infer-report={report}", f"--infer-cache-dir={tmp_path / 'cache'}", cache=False)
    result.assert_outcomes(passed=2, failed=2)
    results = results_of(report)
    for backend in ("eager", "onnxruntime"):
        assert results[f"test_as_is[{backend}-fp16]"]["outcome"] == "failed"
        kept = results[f"test_hot_kept[{backend}-fp16]"]
        assert kept["outcome"] == "passed", kept["message"]
        assert kept["recipe"]["keep_fp32"] == ["hot"] and kept["recipe"]["not_honoured"] == ""
    # Every node of hot's forward (its two Gemms and the reshapes between) and none other.
    assert results["test_hot_kept[onnxruntime-fp16]"]["recipe"]["kept_nodes"] >= 5
    assert results["test_hot_kept[onnxruntime-fp16]"]["cache"]["onnx-fp16"] == "miss"  # its own model


def test_keep_fp32_excludes_modules_from_int8_quantization(run_plugin, tmp_path: Path) -> None:
    """Kept modules are not quantized: keeping one of the two Linears leaves half the quantization error;
    keeping both leaves nothing to quantize, which is refused (an FP32 engine would pass as INT8)."""
    source = '''
import pytest
from fixtures.models import dynamic_mlp
import torch

@pytest.mark.infercheck(engines=["onnxruntime-int8"])
@pytest.mark.parametrize("keep", [[], ["net.2"], ["net.0", "net.2"]], ids=["none", "last", "all"])
def test_mlp(infercheck, keep):
    infercheck(dynamic_mlp(), torch.randn(4, 64, generator=torch.Generator().manual_seed(0)), keep_fp32=keep)
'''
    report = tmp_path / "report.json"
    run_plugin(source, f"--infer-report={report}").assert_outcomes(passed=2, failed=1)
    results = results_of(report)
    quantized, kept = results["test_mlp[onnxruntime-int8-none]"], results["test_mlp[onnxruntime-int8-last]"]
    assert kept["recipe"]["keep_fp32"] == ["net.2"] and kept["recipe"]["kept_nodes"] >= 1
    assert quantized["accuracy"]["outputs"][0]["rel_l2"] > 1e-4
    assert kept["accuracy"]["outputs"][0]["rel_l2"] < quantized["accuracy"]["outputs"][0]["rel_l2"]
    everything = results["test_mlp[onnxruntime-int8-all]"]
    assert everything["outcome"] == "failed" and "the INT8 recipe quantized nothing" in everything["message"]


def test_an_unknown_module_in_keep_fp32_is_a_usage_error(run_plugin) -> None:
    source = OVERFLOW.replace('keep_fp32=["hot"]', 'keep_fp32=["hott", "head"]')
    result = run_plugin(source, "-k", "hot_kept and eager")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "  - model: keep_fp32: OverflowInOneModule has no module 'hott' (did you mean 'hot'*?); names are those "
        "of model.named_modules(): embed, hot, hot.amplify, hot.attenuate, head",
    ])


def test_a_backend_that_cannot_honour_keep_fp32_says_which_and_why() -> None:
    """TensorRT 10 builds from the FP32 export with flags: the item runs and its warnings say so."""
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.backends.tensorrt import DESCRIPTOR
    from pytest_infercheck.check.build import Attempt, Deadline, build_engine
    from pytest_infercheck.core.spec import EngineSpec

    artifacts = SimpleNamespace(model=SimpleNamespace(name="Model"), cache_states={})
    request = BuildRequest(spec=EngineSpec("tensorrt", "fp16"), artifacts=artifacts, device="cuda",
                           keep_fp32=("hot",))
    backend = SimpleNamespace(descriptor=DESCRIPTOR, build=lambda request: SimpleNamespace())
    attempt = Attempt()
    build_engine(backend, request, deadline=Deadline(None), progress=None, attempt=attempt)
    assert attempt.recipe is not None and attempt.recipe.not_honoured.startswith("TensorRT 10 builds")
    assert attempt.notes == ["keep_fp32 is not honoured by tensorrt-fp16: TensorRT 10 builds reduced-precision "
                             "engines from the FP32 export with builder flags, and no per-layer precision is set "
                             "there; TensorRT 11 builds from the converted ONNX model, which keeps them; those "
                             "modules ran in FP16 like the rest"]


def test_module_scopes_of_both_exporters() -> None:
    import onnx
    from onnx import helper

    from pytest_infercheck.audit.onnx_graph import module_scopes

    traced = helper.make_node("MatMul", ["a", "b"], ["c"], name="/module/encoder/block.0/attn/q/MatMul")
    dynamo = helper.make_node("MatMul", ["a", "b"], ["c"], name="node_linear")
    dynamo.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'encoder', 'encoder.attn', 'linear']")
    assert module_scopes(traced) == ["encoder", "encoder.block.0", "encoder.block.0.attn", "encoder.block.0.attn.q"]
    assert module_scopes(dynamo) == ["encoder", "encoder.attn"]
    assert module_scopes(onnx.NodeProto(name="Identity_3")) == []


def test_a_container_or_a_tied_module_in_keep_fp32_fails_at_the_model_naming_the_fix(run_plugin, tmp_path: Path) -> None:
    """Before, a ModuleList named in keep_fp32 had its weights cast to FP32 while its hooks never ran (it has no
    forward of its own): eager and Inductor FP16 failed in the user's code with a dtype error, ONNX kept nothing
    and said the exporter had folded it away; a module tying its weight to one outside the list (GPT-2's
    lm_head and wte) failed the same way in PyTorch's engines (found by an attacker's session).  ONNX engines
    convert the export's tensors: a tied module is kept there as asked.  A ModuleList subclass with its own
    forward, and a module registered under a second name inside the kept one, are kept (a review)."""
    source = """
import pytest, torch

class Stack(torch.nn.ModuleList):  # a container with its own forward, as torchvision's IntermediateLayerGetter
    def forward(self, x):
        for layer in self:
            x = torch.relu(layer(x))
        return x

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)])
        shared = torch.nn.Linear(8, 8)
        self.alias = shared  # registered first: named_modules() lists it here, outside the kept 'stack'
        self.stack = Stack([shared])
        self.embed = torch.nn.Embedding(10, 8)
        self.head = torch.nn.Linear(8, 10, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, ids):
        x = self.stack(self.embed(ids))
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.head(x)

@pytest.mark.infercheck(engines=["eager-fp16", "onnxruntime-fp16"])
@pytest.mark.parametrize("keep", [["layers"], ["head"], ["layers.0", "head", "embed"], ["stack"]],
                         ids=["list", "tied", "fine", "own-forward"])
def test_net(infercheck, keep):
    torch.manual_seed(0)
    infercheck(Net().eval(), torch.randint(0, 10, (2, 5)), keep_fp32=keep)
"""
    report = tmp_path / "report.json"
    result = run_plugin(source, f"--infer-report={report}")
    outcomes = {r["nodeid"].split("::")[1]: (r["outcome"], r["stage"]) for r in results_of_list(report)}
    assert outcomes == {
        "test_net[eager-fp16-list]": ("failed", "model"), "test_net[onnxruntime-fp16-list]": ("failed", "model"),
        "test_net[eager-fp16-tied]": ("failed", "model"), "test_net[onnxruntime-fp16-tied]": ("passed", None),
        "test_net[eager-fp16-fine]": ("passed", None), "test_net[onnxruntime-fp16-fine]": ("passed", None),
        "test_net[eager-fp16-own-forward]": ("passed", None), "test_net[onnxruntime-fp16-own-forward]": ("passed", None),
    }, outcomes
    result.stdout.fnmatch_lines(["*keep_fp32: 'layers' is a ModuleList, which has no forward of its own (its children "
                                 "run, not it), so it cannot be kept in FP32 as one module: name its children instead: "
                                 "'layers.0', 'layers.1'*"])
    result.stdout.fnmatch_lines(["*keep_fp32: tied weights shared with modules that are not kept ('head' with "
                                 "'embed.weight'): a parameter has one dtype, so keep those modules in FP32 too "
                                 "(keep_fp32=[[]'head', 'embed'[]]) or none of them*"])


def results_of_list(report: Path) -> list[dict]:
    return json.loads(report.read_text())["results"]


def test_a_cpu_pass_of_onnxruntime_fp16_says_what_it_does_not_show(run_plugin) -> None:
    """ONNX Runtime's CPU runs many FP16 kernels in FP32: a sum of squares 59% off in eager FP16 passed there
    with no word (newcomer trial 5). The pass stands, with a note in the summary (information, not a warning)."""
    pytest.importorskip("onnxruntime")
    result = run_plugin("""
import pytest, torch

@pytest.mark.infercheck(engines=["onnxruntime-fp16"])
def test_fp16(infercheck):
    assert "ONNX Runtime runs many FP16 kernels in FP32" in infercheck(torch.nn.Linear(8, 4).eval(),
                                                                        torch.randn(2, 8)).notes[0]
""", "--infer-device=cpu", "-W", "error")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["notes (information, not warnings):",
                                 "*on the CPU, ONNX Runtime runs many FP16 kernels in FP32 behind casts*"])
