"""The mixed-precision repair (issue 24, item 4; docs/precision.md): on an accuracy failure of a
reduced-precision engine, the keep-list that makes the same backend's engine pass, found from the
per-module comparison, verified and timed; how far the best got under a cap; nothing without it."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from pytest_infercheck.model.module_errors import ModuleError, candidates
from pytest_infercheck.measure.results import RepairResult


def results_of(report: Path) -> dict[str, dict]:
    return {r["nodeid"].split("::")[1]: r for r in json.loads(report.read_text())["results"]}


def answer_lines(result: pytest.RunResult, pattern: str) -> list[str]:
    """The answer lines (``  => ...``) of the run's output matching ``pattern`` (a regular expression
    in which ``*`` stands for any text: fnmatch would read ``[...]`` as a character class)."""
    regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + "$")
    return [line for line in result.stdout.lines if line.startswith("  => ") and regex.match(line)]


ONE_HOT = '''
import pytest
from fixtures.problem_models import overflow_in_one_module, overflow_inputs

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp16"], repair_precision=True)
def test_one(infercheck):
    infercheck(overflow_in_one_module(), overflow_inputs())
'''


def test_the_repair_finds_the_one_module_that_overflows(run_plugin, tmp_path: Path) -> None:
    """eager-fp16 and onnxruntime-fp16 fail on `hot` (FP16 overflow inside it): the repair keeps
    exactly `hot`, rebuilt engines pass, and the message ends with the answer to paste."""
    report = tmp_path / "report.json"
    result = run_plugin(ONE_HOT, f"--infer-report={report}")
    result.assert_outcomes(failed=2)
    for engine in ("eager-fp16", "onnxruntime-fp16"):
        assert answer_lines(result, f'  => keep_fp32=["hot"] makes {engine} pass (rel err *, p50 *%); repair: '
                            "1 keep-list(s) built in * s, candidates from the per-module comparison: hot"), engine
    for backend in ("eager", "onnxruntime"):
        item = results_of(report)[f"test_one[{backend}-fp16]"]
        assert item["message"].splitlines()[-1].startswith('  => keep_fp32=["hot"] makes')
        repair = item["repair"]
        assert repair["keep_fp32"] == ["hot"] and repair["passed"] and repair["tried"] == 1
        assert repair["rel_err"] < 1e-2 and repair["nonfinite"] == 0 and repair["failing_nonfinite"] > 0
        assert repair["p50_ms"] > 0 and repair["failing_p50_ms"] > 0
        assert repair["p50_change"] == pytest.approx(repair["p50_ms"] / repair["failing_p50_ms"] - 1)
        assert repair["candidates"] == ["hot"]
        assert item["accuracy"]["outputs"][0]["nonfinite"] > 0  # the failure stands as measured


ROOT_CODE = '''
import pytest, torch

class HotSoftmax(torch.nn.Module):
    """exp of large logits in the model's own forward: FP16 overflows there, in no submodule."""
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(16, 8)
    def forward(self, x):
        z = self.proj(x) * 20.0
        e = torch.exp(z - z.mean(-1, keepdim=True))
        return e / e.sum(-1, keepdim=True)

@pytest.mark.infercheck(engines=["eager-fp16"], repair_precision=True)
def test_root(infercheck):
    torch.manual_seed(0)
    infercheck(HotSoftmax().eval(), torch.randn(4, 16))
'''


def test_an_error_that_starts_in_the_models_own_forward_is_said_to_and_what_to_do(run_plugin, tmp_path: Path) -> None:
    """No submodule starts it: the note says it starts in code outside them (HotSoftmax.forward itself) and that
    keep_fp32 keeps modules only, instead of only "finds no module where the error starts"."""
    report = tmp_path / "report.json"
    result = run_plugin(ROOT_CODE, f"--infer-report={report}")
    result.assert_outcomes(failed=1)
    note = results_of(report)["test_root[eager-fp16]"]["repair"]["note"]
    assert "it starts in code outside them: in HotSoftmax.forward itself" in note, note
    assert "move that code (a softmax, an exp, a large sum) into a submodule of its own" in note
    assert "HotSoftmax.forward itself" in result.stdout.str()


POSITIONS = '''
import pytest
from fixtures.problem_models import positions_in_low_precision, token_ids

@pytest.mark.infercheck(engines=["eager-bf16", "onnxruntime-fp16"], repair_precision=True)
def test_positions(infercheck):
    infercheck(positions_in_low_precision(), token_ids(1024))
'''


def test_the_repair_finds_a_real_numerical_cause_it_was_not_built_around(run_plugin, tmp_path: Path) -> None:
    """Nothing overflows here: a sinusoidal positional encoding computed in the activations' dtype is wrong
    in BF16 (positions past 256 not whole numbers) and in FP16 (angles of hundreds of radians rounded by
    0.25 rad), and the error spreads through every later layer.  The per-module comparison finds where
    it starts (the error jumps at `positions`, whose input is exact), the verified list is that module,
    and the rebuilt engines' errors are those of the precision."""
    report = tmp_path / "report.json"
    result = run_plugin(POSITIONS, f"--infer-report={report}")
    result.assert_outcomes(failed=2)
    for engine in ("eager-bf16", "onnxruntime-fp16"):
        assert answer_lines(result, f'  => keep_fp32=["positions"] makes {engine} pass (rel err *'), engine
    items = results_of(report)
    for engine, bound in (("eager-bf16", 3e-2), ("onnxruntime-fp16", 5e-3)):
        repair = items[f"test_positions[{engine}]"]["repair"]
        assert repair["keep_fp32"] == ["positions"] and repair["passed"] and repair["candidates"][0] == "positions"
        assert repair["failing_rel_err"] > bound > repair["rel_err"], repair  # failed the precision's bound, now within


def test_the_p50_change_compares_two_timings_under_the_same_short_plan(run_plugin, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The failing engine is timed under the repair's short plan before it is closed, and the answer's
    change is against that timing, not against the item's full one."""
    from pytest_infercheck.check import repair as repair_module

    timed: list[float] = []
    original = repair_module.short_p50

    def recording(*args):
        timed.append(original(*args))
        return timed[-1]

    monkeypatch.setattr(repair_module, "short_p50", recording)
    report = tmp_path / "report.json"
    run_plugin(ONE_HOT.replace('backends=["eager", "onnxruntime"], precisions=["fp16"]', 'engines=["eager-fp16"]'),
               f"--infer-report={report}", "--infer-max-time=2s", timing=False).assert_outcomes(failed=1)
    item = results_of(report)["test_one[eager-fp16]"]
    assert len(timed) == 2
    failing, repaired = timed  # the failing engine first, then the passing keep-list's
    assert item["repair"]["failing_p50_ms"] == failing and item["repair"]["p50_ms"] == repaired
    assert item["latency"]["p50_ms"] != failing  # the item's own figure is its full timing, kept apart


TWO_HOT = '''
import pytest
from fixtures.problem_models import overflow_in_two_modules, overflow_inputs

@pytest.mark.infercheck(engines=["eager-fp16"], repair_precision=True)
def test_two(infercheck):
    infercheck(overflow_in_two_modules(), overflow_inputs())
'''


def test_two_overflowing_modules_are_found_one_after_the_other(run_plugin, tmp_path: Path) -> None:
    """hot2's overflow shows only once hot is kept (its inputs are Inf before): the greedy search
    compares again with hot kept, adds hot2, and the shrink step keeps both."""
    report = tmp_path / "report.json"
    result = run_plugin(TWO_HOT, f"--infer-report={report}")
    result.assert_outcomes(failed=1)
    assert answer_lines(result, '  => keep_fp32=["hot", "hot2"] makes eager-fp16 pass (rel err *'), result.stdout.str()
    repair = results_of(report)["test_two[eager-fp16]"]["repair"]
    assert [trial["keep_fp32"] for trial in repair["trials"]] == [["hot"], ["hot", "hot2"], ["hot2"]]
    assert [trial["passed"] for trial in repair["trials"]] == [False, True, False]
    assert repair["candidates"] == ["hot", "hot2"]


def test_under_a_tiny_cap_the_message_says_how_far_the_best_got(run_plugin, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run_plugin(TWO_HOT, "--infer-repair-time=1ms", f"--infer-report={report}")
    result.assert_outcomes(failed=1)
    assert answer_lines(result,
                        "  => repair: no keep_fp32 list tried within repair_time=0.001s makes eager-fp16 pass; none "
                        'improves on keeping nothing: the closest, keep_fp32=["hot"], leaves rel err inf (8 NaN/Inf) '
                        "against inf (8 NaN/Inf) without it "
                        "(1 keep-list(s) built in * s, candidates from the per-module comparison: hot; stopped at the "
                        "cap after 1 rebuild(s))"), result.stdout.str()
    repair = results_of(report)["test_two[eager-fp16]"]["repair"]
    assert not repair["passed"] and repair["tried"] == 1 and repair["cap_s"] == 0.001


def test_repair_off_leaves_the_message_unchanged(run_plugin, tmp_path: Path) -> None:
    """Off (the default), nothing is rebuilt and the message is what it was; on, the same message
    gains one last line."""
    off = TWO_HOT.replace(", repair_precision=True", "").replace("def test_two", "def test_off")
    report = tmp_path / "report.json"
    run_plugin(TWO_HOT + off, f"--infer-report={report}").assert_outcomes(failed=2)
    results = results_of(report)
    without, repaired = results["test_off[eager-fp16]"], results["test_two[eager-fp16]"]
    assert without["repair"] is None and without["settings"]["repair_precision"]["value"] is False
    assert "=>" not in without["message"] and "keep_fp32" not in without["message"]
    assert repaired["message"].splitlines()[:-1] == without["message"].splitlines()
    assert repaired["message"].splitlines()[-1].startswith("  => ")


def test_the_int8_repair_ranks_modules_from_the_quantized_model(run_plugin, tmp_path: Path) -> None:
    """onnxruntime-int8 has no eager twin: its per-module comparison runs the QDQ model against the
    FP32 export, tensors grouped by the export's module scopes.  The bound (rel err 0.0175: the INT8 MLP
    errs 0.022, 0.013 with net.0 kept, 0.015 with net.2) asks for one kept Linear: keeping both quantizes
    nothing, which is no INT8 engine (refused at build), so the answer must leave one quantized."""
    source = '''
import pytest
import torch
from fixtures.models import dynamic_mlp

@pytest.mark.infercheck(engines=["onnxruntime-int8"], repair_precision=True, max_rel_l2=0.0175, min_cosine=0.0,
                        atol=1e-6, rtol=1e-6, max_mismatch=1.0)
def test_mlp(infercheck):
    infercheck(dynamic_mlp(), torch.randn(4, 64, generator=torch.Generator().manual_seed(0)))
'''
    report = tmp_path / "report.json"
    result = run_plugin(source, f"--infer-report={report}")
    result.assert_outcomes(failed=1)
    repair = results_of(report)["test_mlp[onnxruntime-int8]"]["repair"]
    assert repair["candidates"] and set(repair["candidates"]) <= {"net.0", "net.2"}, repair
    assert repair["passed"], repair
    assert len(repair["keep_fp32"]) == 1 and set(repair["keep_fp32"]) <= {"net.0", "net.2"}, repair
    assert answer_lines(result, '  => keep_fp32=["net.*"] makes onnxruntime-int8 pass (rel err *'), result.stdout.str()


def test_an_int8_repair_that_would_keep_everything_says_nothing_is_left_quantized(run_plugin, tmp_path: Path) -> None:
    """The INT8 MLP's error against a bound no quantized Linear meets (1e-4): the only list that passes keeps
    both, which quantizes nothing (refused at build): the answer says so, not that no module was found."""
    source = '''
import pytest
import torch
from fixtures.models import dynamic_mlp

@pytest.mark.infercheck(engines=["onnxruntime-int8"], repair_precision=True, max_rel_l2=1e-4, min_cosine=0.0,
                        atol=1e-6, rtol=1e-6, max_mismatch=1.0)
def test_mlp(infercheck):
    infercheck(dynamic_mlp(), torch.randn(4, 64, generator=torch.Generator().manual_seed(0)))
'''
    report = tmp_path / "report.json"
    run_plugin(source, f"--infer-report={report}").assert_outcomes(failed=1)
    repair = results_of(report)["test_mlp[onnxruntime-int8]"]["repair"]
    assert not repair["passed"], repair
    assert "leaves nothing quantized: no keep-list short of every quantized module makes it pass" in repair["note"]


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_torchaos_int8_copy_ranks_the_layer_an_outlier_feature_ruins(tmp_path: Path, static: bool) -> None:
    """inductor-int8 and aoti-int8 are torchao's: the repair's per-module comparison (repair._profiler) runs
    the engine's own quantized copy (BF16, nn.Linear layers INT8, dynamic per-token or static calibrated
    activation scales) against FP32 by forward hooks.  On a model with one outlier feature (LLM.int8's), the
    error starts in the layer that reads it; kept, the output comes back.  Real torchao on the CPU's eager
    kernels (the plugin itself builds these engines on CUDA only; the GPU run is tests/test_gpu_lowprec.py)."""
    pytest.importorskip("torchao")
    import copy
    import types

    import torch

    from fixtures.problem_models import outlier_feature_model, outlier_inputs
    from pytest_infercheck.backends.artifacts import ModelArtifacts
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.backends.inductor import InductorBackend
    from pytest_infercheck.backends.torch_engine import quantized_copy
    from pytest_infercheck.check import repair
    from pytest_infercheck.check.reference import model_under_test
    from pytest_infercheck.core.spec import EngineSpec
    from pytest_infercheck.model.module_errors import torch_module_errors

    model = outlier_feature_model()
    before = copy.deepcopy(model.state_dict())
    mut = model_under_test(model, outlier_inputs(), dynamic_batch=False)
    request = BuildRequest(EngineSpec("inductor", "int8"), ModelArtifacts(mut, EngineCache(tmp_path)), "cpu",
                           calibration=[mut.inputs] if static else None)
    # _profiler reads the failed engine's request, the model and the backend of the search's job record.
    ranked = repair._profiler(types.SimpleNamespace(request=request, mut=mut, backend=InductorBackend()))
    assert ranked is not None
    assert [c.name for c in ranked([])][:1] == ["mixer"]
    assert "mixer" not in [c.name for c in ranked(["mixer"])]

    def head_error(keep: list[str]) -> float:
        quantized = quantized_copy(repair._with_keep(request, keep))
        return {e.name: e for e in torch_module_errors(model, mut.inputs, torch.bfloat16, "cpu", keep,
                                                       quantized)}["head"].output_error

    without, kept = head_error([]), head_error(["mixer"])
    assert without > 0.3 and kept < without / 10, (without, kept)
    after = model.state_dict()  # the user's model: same weights, no hooks left
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_an_fp8_jump_is_measured_against_one_products_own_error() -> None:
    """FP8 E4M3 leaves a few percent on every quantized layer: the first one is no cause (its error is
    FP8's own, from exact inputs), the layer where the error jumps past that is."""
    from pytest_infercheck.check.repair import FP8_EPSILON, INT8_EPSILON

    errors = [
        ModuleError("embed", math.nan, 0.04, 0, 0, 3.0),  # exact inputs, FP8's own error
        ModuleError("block.attn", 0.04, 0.05, 0, 0, 3.0),
        ModuleError("block.mixer", 0.05, 0.6, 0, 0, 3.0),  # the jump
        ModuleError("head", 0.6, 0.62, 0, 0, 3.0),
    ]
    assert [c.name for c in candidates(errors, math.inf, FP8_EPSILON)] == ["block.mixer"]
    # Against INT8's floor the first layer would rank first and cost a rebuild before the real cause.
    assert [c.name for c in candidates(errors, math.inf, INT8_EPSILON)][0] == "embed"


def test_candidates_move_out_to_the_module_whose_output_fits_the_dtype() -> None:
    """An overflow that starts in a leaf whose FP32 output is itself beyond FP16 is the parent's to
    keep (a kept module's output is cast back); a jump in error is the innermost module's."""
    errors = [
        ModuleError("block.up", 1e-4, math.inf, 0, 32, 5e5),
        ModuleError("block", 1e-4, math.inf, 0, 32, 4e3),
        ModuleError("attn.softmax", 1e-4, 5e-2, 0, 0, 1.0),
        ModuleError("attn", 1e-4, 5e-2, 0, 0, 3.0),
        ModuleError("head", 5e-2, 6e-2, 0, 0, 3.0),
    ]
    ranked = candidates(errors, 65504.0, 1e-3)
    assert [c.name for c in ranked] == ["block", "attn.softmax"]
    assert [c.name for c in candidates(errors, 65504.0, 1e-3, covered=["block"])] == ["attn.softmax"]


@pytest.mark.parametrize("passed", [True, False])
def test_the_answer_reads_as_a_keep_list(passed: bool) -> None:
    found = RepairResult("inductor-fp16", ["encoder.layer.3.attention", "pooler"], passed, 2.1e-3, 0, 0.3, 0,
                         p50_change=0.06, tried=3, seconds=12.0, cap_s=60.0)
    text = found.describe()
    if passed:
        assert text.startswith('keep_fp32=["encoder.layer.3.attention", "pooler"] makes inductor-fp16 pass '
                               "(rel err 0.0021, p50 +6%)")
    else:
        assert "the best, keep_fp32=[\"encoder.layer.3.attention\", \"pooler\"], leaves rel err 0.0021" in text


def test_a_keep_list_names_each_module_once_and_none_inside_another() -> None:
    """The user's keep_fp32 and the search's finds join in one list: the user's ``encoder.layer.3`` beside a
    found ``encoder`` read as two modules to keep, one inside the other (an attacker's session)."""
    from pytest_infercheck.model.precision import keep_list

    assert keep_list(["encoder.layer.3", "hot", "encoder", "hot", "hot2"]) == ["hot", "encoder", "hot2"]
    assert keep_list(["pooler", "encoder.layer.30", "encoder.layer.3"]) == ["pooler", "encoder.layer.30",
                                                                           "encoder.layer.3"]  # prefixes by dots


def test_a_repair_whose_rebuilds_all_stopped_says_what_stopped_them_not_a_best_list() -> None:
    """Every rebuild past --infer-build-timeout: the answer named a "best" list never measured (rel err nan) and
    a wrong reason, and not the timeout (an attacker's session)."""
    from pytest_infercheck.measure.results import RepairTrial

    timeout = "build: building eager-fp16 took longer than --infer-build-timeout=1s"
    trials = (RepairTrial(("hot",), False, math.nan, 0, 1.5, stopped=timeout),
              RepairTrial(("hot", "hot2"), False, math.nan, 0, 1.5, stopped=timeout))
    found = RepairResult("eager-fp16", ("hot", "hot2"), False, math.nan, 0, math.inf, 8, tried=2, seconds=3.0,
                         cap_s=60.0, candidates=("hot", "hot2"), trials=trials)
    assert found.describe() == ("repair: none of the 2 keep_fp32 list(s) built for eager-fp16 could be judged: "
                                f"{timeout} (2 keep-list(s) built in 3.0 s, candidates from the per-module "
                                "comparison: hot, hot2)")
    one = RepairResult("eager-fp16", ("hot",), False, 0.2, 0, math.inf, 8, tried=2, seconds=3.0, cap_s=60.0,
                       trials=(RepairTrial(("hot",), False, 0.2, 0, 1.0), trials[1]))
    assert f"the best, keep_fp32=[\"hot\"], leaves rel err 0.2" in one.describe()
    assert f"; 1 of them could not be judged: {timeout})" in one.describe()


def test_a_backend_that_cannot_honour_keep_fp32_is_not_searched() -> None:
    """TensorRT 10 builds the same engine whatever keep_fp32 says: the repair stops at the first
    rebuild and says why instead of trying list after list."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from fixtures.problem_models import overflow_in_one_module, overflow_inputs
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.backends.tensorrt import DESCRIPTOR
    from pytest_infercheck.check import repair
    from pytest_infercheck.model.under_test import ModelUnderTest
    from pytest_infercheck.measure.results import AccuracyResult
    from pytest_infercheck.config.settings import Settings
    from pytest_infercheck.core.spec import EngineSpec

    mut = ModelUnderTest.create(overflow_in_one_module(), overflow_inputs())
    built: list[tuple[str, ...]] = []

    def build(request: BuildRequest) -> SimpleNamespace:
        built.append(request.keep_fp32)
        return SimpleNamespace(close=lambda: None)

    request = BuildRequest(spec=EngineSpec("tensorrt", "fp16"), device="cpu",
                           artifacts=SimpleNamespace(model=mut, cache_states={}))  # type: ignore[arg-type]
    job = repair.Repairing(SimpleNamespace(build_lock=nullcontext, progress=None, timing_lock=None),
                           SimpleNamespace(descriptor=DESCRIPTOR, build=build), request, mut, [], Settings.defaults(),
                           (None, {}), AccuracyResult(), None)  # type: ignore[arg-type]
    found = repair.repair(job)
    assert built == [("hot",)] and found.tried == 0 and not found.passed
    assert found.describe().startswith("repair: no keep_fp32 list to try for tensorrt-fp16: keep_fp32 is not "
                                       "honoured by tensorrt-fp16: TensorRT 10 builds")


def test_the_repair_applies_to_reduced_precisions_with_paired_outputs() -> None:
    """What repair.applies lets through is also what the flow times before closing the failing engine:
    FP32 has no precision to keep, and outputs that could not be paired are no precision problem."""
    import types

    from pytest_infercheck.check.repair import applies
    from pytest_infercheck.core.spec import EngineSpec
    from pytest_infercheck.measure.results import AccuracyResult

    def request(engine: str) -> types.SimpleNamespace:
        backend, precision = engine.split("-")
        return types.SimpleNamespace(spec=EngineSpec(backend, precision))

    paired, unpaired = AccuracyResult(), AccuracyResult(structure_error="the engine returned 2 outputs, the model 1")
    assert [applies(request(e), paired) for e in ("eager-fp16", "onnxruntime-int8", "inductor-fp8", "eager-fp32")] \
        == [True, True, True, False]
    assert not applies(request("eager-fp16"), unpaired)


AMPLIFIED = '''
import pytest
from fixtures.problem_models import amplifying_attention, attention_inputs

@pytest.mark.infercheck(engines=["onnxruntime-fp16"], repair_precision=True)
def test_attention(infercheck):
    infercheck(amplifying_attention(), attention_inputs())
'''


def test_the_repair_keeps_what_feeds_a_module_that_amplifies_its_inputs_rounding(run_plugin, tmp_path: Path) -> None:
    """The error shows in `scores`, and keeping it alone does not pass: the search then keeps the modules that
    computed its inputs (q, k) and minimises. Was: "starts in code outside them: in AmplifyingAttention.forward
    itself", about a model with no code outside its modules (newcomer trial 3). The answer, pasted, passes."""
    pytest.importorskip("onnxruntime")
    report = tmp_path / "report.json"
    result = run_plugin(AMPLIFIED, f"--infer-report={report}")
    result.assert_outcomes(failed=1)
    repair = results_of(report)["test_attention[onnxruntime-fp16]"]["repair"]
    assert repair["passed"] and repair["candidates"][0] == "scores", repair
    assert repair["keep_fp32"] and set(repair["keep_fp32"]) <= {"scores", "q", "k"}, repair
    assert set(repair["keep_fp32"]) & {"q", "k"}, repair  # a module that feeds scores
    assert ["scores"] in [trial["keep_fp32"] for trial in repair["trials"]]  # tried first, alone, and failed
    kept = "[" + ", ".join(f'"{name}"' for name in repair["keep_fp32"]) + "]"
    assert answer_lines(result, f"  => keep_fp32={kept} makes onnxruntime-fp16 pass (rel err *")
    pasted = run_plugin(AMPLIFIED.replace("repair_precision=True", f"keep_fp32={kept}"))
    pasted.assert_outcomes(passed=1)


def test_a_closest_list_no_better_than_none_is_not_called_the_best() -> None:
    """Keeping `scores` in eager FP16 made the error 2.6x worse and was offered as "the best" (newcomer trial 3)."""
    worse = RepairResult("eager-fp16", ("scores",), False, 0.0202, 0, 0.00786, 0, tried=2, seconds=0.1, cap_s=60.0)
    assert ('none improves on keeping nothing: the closest, keep_fp32=["scores"], leaves rel err 0.0202 against '
            "0.00786 without it") in worse.describe()
    assert "the best" not in worse.describe()
    fewer_nans = RepairResult("eager-fp16", ("hot",), False, math.inf, 2, math.inf, 8, tried=1, seconds=0.1,
                              cap_s=60.0)
    assert "the best, keep_fp32=[\"hot\"], leaves rel err inf (2 NaN/Inf) against inf (8 NaN/Inf)" in \
        fewer_nans.describe()


def test_the_modules_that_feed_a_module_are_found_through_views_and_past_pass_throughs() -> None:
    """A view at an offset (q, k, v = qkv(x).chunk(3, -1)) was not traced to qkv, and an eval-mode Dropout that
    hands its input back was named as that tensor's producer (the review)."""
    import torch
    from torch import nn

    from pytest_infercheck.model.inputs import ModelInputs
    from pytest_infercheck.model.module_errors import module_producers

    class Scores(nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            return torch.softmax(q @ k.transpose(-1, -2), -1)

    class Fused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv, self.scores, self.drop, self.tail = nn.Linear(8, 24), Scores(), nn.Dropout(0.1), nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.drop(x)  # eval mode: x itself
            q, k, v = self.qkv(x).chunk(3, -1)
            return self.scores(k, v) @ q + self.tail(x)

    model = Fused().eval()
    found = module_producers(model, ModelInputs.from_example((torch.randn(2, 4, 8),), model), "cpu")
    assert found == {"drop": (), "qkv": (), "scores": ("qkv",), "tail": ()}


def test_a_stopped_rebuild_is_said_with_its_reason_not_its_heading() -> None:
    """"1 of them could not be judged: the onnxruntime backend could not build onnxruntime-int8:;" said nothing:
    the reason was on the next line (newcomer trial 5)."""
    from pytest_infercheck.check.repair import _reason_line

    text = "the onnxruntime backend could not build onnxruntime-int8:\n      NothingQuantized: the INT8 recipe ..."
    assert _reason_line(text) == ("the onnxruntime backend could not build onnxruntime-int8: NothingQuantized: the "
                                  "INT8 recipe ...")
    assert _reason_line("build: took longer than --infer-build-timeout=1s\n(detail)") == \
        "build: took longer than --infer-build-timeout=1s"
