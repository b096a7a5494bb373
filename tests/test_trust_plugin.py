"""Verdicts a CI can trust, as a user meets them (real pytest runs of the plugin): no pass of a
comparison that checks nothing, no lost baseline entry, no traceback at session end."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

DEGENERATE = '''
import pytest, torch

class ZeroHead(torch.nn.Module):
    """What torchvision's vit_b_16(weights=None) does: the classifier head starts at zero."""
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(8, 16)
        self.head = torch.nn.Linear(16, 4)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
    def forward(self, x):
        return self.head(torch.relu(self.body(x)))

class Tiny(torch.nn.Module):
    """Outputs near 1e-14, as an untrained efficientnet_b0 gives: FP16 flushes them to zero."""
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)
    def forward(self, x):
        return self.fc(x) * 1e-14

class NaNs(torch.nn.Module):
    def forward(self, x):
        return torch.log(x)  # NaN for every negative input: the reference itself

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_zero_head(infercheck):
    infercheck(ZeroHead().eval(), torch.randn(2, 8))

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"], allow_degenerate=["output"])
def test_zero_head_meant(infercheck):
    infercheck(ZeroHead().eval(), torch.randn(2, 8))

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32", "fp16"])
def test_tiny(infercheck):
    infercheck(Tiny().eval(), torch.randn(2, 8))

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_nan_reference(infercheck):
    infercheck(NaNs().eval(), torch.randn(2, 8))

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_never_calls(infercheck):
    pass
'''


def test_a_reference_that_cannot_judge_an_engine_fails_at_its_own_stage(run_plugin) -> None:
    result = run_plugin(DEGENERATE)
    # zero head: fails; exempted on purpose: passes; tiny: fp32 passes, fp16 fails; NaN: fails; never calls: fails
    result.assert_outcomes(failed=4, passed=2)
    result.stdout.fnmatch_lines_random([
        "*reference: the eager reference cannot judge an engine:",
        "*output output is all zero ([[]2, 4[]]): every engine matches zeros, so comparing checks nothing",
        "*measured: output output: std 0, |x| <= 0",
        "*activations (RMS) measured with forward hooks fall from * at the input to 0 after head; "
        "every weight of head is zero",
        "*use trained weights or initialise the layer named above*allow_degenerate=*",
        "*output output spans [[]*, *[]], below the smallest normal FP16 value (6.1e-05)*",
        "*output output has * NaN/Inf value(s) of 16 in the eager reference itself*",
        "*test_never_calls*never called infercheck(model, example_inputs)*",
    ])
    result.stdout.re_match_lines([r"test_model.py::test_zero_head +onnxruntime-fp32 +cpu +failed \(reference\)"])


NAN_INPUT = '''
import pytest, torch

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_nan_input(infercheck):
    x = torch.randn(2, 16)
    x[1, 3] = float("nan")
    infercheck(torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)).eval(), x)
'''


def test_a_nan_in_the_example_inputs_is_named_not_blamed_on_the_model(run_plugin) -> None:
    """The reference's NaN came from the inputs: the message names the input and where, and advises on the
    inputs, not on weights or a layer (a newcomer was told to "use trained weights")."""
    result = run_plugin(NAN_INPUT)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*output output has 4 NaN/Inf value(s) of 8 in the eager reference itself: they come before any engine runs",
        "*example input 'input' holds 1 NaN of 32 (first at [[]1, 3[]]): the reference is computed from them",
        "*pass finite example inputs (torch.nan_to_num, *",
    ])
    out = result.stdout.str()
    assert "trained weights" not in out and "activations (RMS)" not in out


MASKED_ZERO_HEAD = '''
import pytest, torch

class MaskedZeroHead(torch.nn.Module):
    """A -Inf additive mask (on purpose) and a head of zero weights (the real fault): the output is NaN."""
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 4)
        torch.nn.init.zeros_(self.lin.weight)
        torch.nn.init.zeros_(self.lin.bias)
    def forward(self, x, mask):
        return self.lin(x) * (x + mask).sum(-1, keepdim=True)

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_masked(infercheck):
    mask = torch.zeros(2, 8)
    mask[:, 6:] = float("-inf")
    infercheck(MaskedZeroHead().eval(), (torch.randn(2, 8), mask))
'''


def test_an_inf_mask_is_a_possible_cause_beside_the_trail_not_the_verdict(run_plugin) -> None:
    """An Inf in the inputs is often meant (an additive attention mask): it is named as a possible cause, and
    the trail still says where the signal went (a reviewer saw "pass finite example inputs" hide "every
    weight of lin is zero")."""
    result = run_plugin(MASKED_ZERO_HEAD)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*example input 'mask' holds 4 Inf of 16 (first at [[]0, 6[]]): a possible cause, unless the model handles "
        "them (an additive attention mask holds -Inf on purpose)",
        "*every weight of lin is zero*",
        "*use trained weights or initialise the layer named above*",
    ])
    assert "pass finite example inputs" not in result.stdout.str()


VANISHING = '''
import pytest, torch

class Vanishing(torch.nn.Module):
    """What MobileNet and EfficientNet with random weights do: each layer shrinks the signal (x0.04 here)."""
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(*[torch.nn.Linear(16, 16) for _ in range(8)])
        self.head = torch.nn.Linear(16, 4)
        for layer in self.features:
            torch.nn.init.normal_(layer.weight, std=0.01)
            torch.nn.init.zeros_(layer.bias)
        torch.nn.init.zeros_(self.head.bias)
    def forward(self, x):
        return self.head(self.features(x))

@pytest.mark.infercheck(engines=["eager-fp16"])
def test_vanishing(infercheck):
    infercheck(Vanishing().eval(), torch.randn(2, 16))
'''


def test_a_degenerate_reference_says_where_the_activations_vanish(run_plugin) -> None:
    """The hint reports what was measured: the output's spread and the layer where the signal is lost."""
    result = run_plugin(VANISHING)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*output output spans * below the smallest normal FP16 value*",
        "*measured: output output: std *e-1*, |x| <= *e-1*",
        "*activations (RMS) measured with forward hooks fall from * at the input to *e-1* after head; "
        "first below 1e-03 of the input after features.* (*e-0*)",
    ])
    assert "torchvision heads start at zero" not in result.stdout.str()


SAME_SHAPES_OTHER_VALUES = '''
import pytest, torch

def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_scaled(infercheck, scale):
    infercheck(mlp(), torch.ones(2, 16) * scale)

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_two_checks(infercheck):
    model = mlp()
    infercheck(model, torch.ones(2, 16), name="ones")
    infercheck(model, torch.full((2, 16), 2.0), name="twos")
'''


def test_a_reference_is_never_reused_for_inputs_of_the_same_shape_but_other_values(run_plugin) -> None:
    """The engines of one model and shapes are shared; the eager reference is of the inputs' values.

    Before, the second parameter set (and the second check) was compared with the first one's
    outputs: eager FP32 failed accuracy against itself.
    """
    result = run_plugin(SAME_SHAPES_OTHER_VALUES, "-p", "no:xdist", "-rA")
    result.assert_outcomes(passed=3)
    assert "ACCURACY" not in result.stdout.str()


TWO_MODELS = '''
import pytest, torch
from fixtures.models import small_cnn, cnn_inputs, dynamic_mlp

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_two_models(infercheck):
    infercheck(small_cnn(), cnn_inputs())
    infercheck(dynamic_mlp(), torch.randn(2, 64))
    infercheck(dynamic_mlp(), torch.randn(4, 64))

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
@pytest.mark.parametrize("shape", [(2, 64)], ids=["shape[ 2, 64 ]"])
def test_spaced_id(infercheck, shape):
    infercheck(dynamic_mlp(), torch.randn(*shape))
'''


def test_every_check_keeps_its_own_baseline_entry_and_ids_stay_verbatim(run_plugin, pytester: pytest.Pytester) -> None:
    (pytester.path / "ci").mkdir()
    pytester.makeini("[pytest]\ninfer_baseline = ci/baseline.json\n")
    lenient = "--infer-max-regression=100000%"
    for _ in range(3):  # update, update again, compare: nothing lost, nothing duplicated
        run_plugin(TWO_MODELS, "--infer-baseline-update", lenient).assert_outcomes(passed=2)
    entries = json.loads((pytester.path / "ci" / "baseline.json").read_text())["entries"]
    assert sorted((e["nodeid"], e["check"]) for e in entries) == [
        ("test_model.py::test_spaced_id[eager-fp32-shape[ 2, 64 ]]", "DynamicBatchMLP"),
        ("test_model.py::test_two_models[eager-fp32]", "DynamicBatchMLP"),
        ("test_model.py::test_two_models[eager-fp32]", "DynamicBatchMLP#2"),
        ("test_model.py::test_two_models[eager-fp32]", "SmallCNN"),
    ]
    # Run from a subdirectory: the ini's relative path is the ini file's, as pytest resolves its own.
    sub = pytester.path / "tests"
    sub.mkdir()
    (pytester.path / "test_model.py").rename(sub / "test_model.py")
    result = pytester.runpytest("-p", "no:randomly", "--rootdir", str(pytester.path), "-c",
                                str(pytester.path / "tox.ini"), str(sub), lenient,
                                f"--infer-cache-dir={pytester.path / 'cache'}", "--infer-min-iters=5",
                                "--infer-max-time=0.05")
    result.stdout.fnmatch_lines(["baseline *ci/baseline.json: * 0 regressed, 0 improved, * missing*"])


SECOND_CHECK_FAILS = '''
import pytest, torch
from fixtures.models import small_cnn, cnn_inputs, dynamic_mlp

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_two(infercheck):
    infercheck(small_cnn(), cnn_inputs())
    infercheck(dynamic_mlp(), torch.randn(2, 64), budget="p50:1us")

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_own_assert(infercheck):
    infercheck(dynamic_mlp(), torch.randn(2, 64))
    assert False, "the user's own check"

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_caught(infercheck):
    infercheck(small_cnn(), cnn_inputs())
    with pytest.raises(pytest.fail.Exception):
        infercheck(dynamic_mlp(), torch.randn(2, 64), budget="p50:1us")
    assert False, "the user's own check, after catching the check's failure"
'''


def test_a_passing_check_keeps_its_outcome_when_a_later_check_of_its_test_fails(run_plugin, tmp_path: Path) -> None:
    """The test failed because its second check raised: the first check passed and reads so (it read
    "failed (test)"); a test failing on its own assertion after a passing check still marks the check."""
    report = tmp_path / "report.json"
    for workers in (("-p", "no:xdist"), ("-n", "2")):  # settled on the worker and again on the controller
        result = run_plugin(SECOND_CHECK_FAILS, f"--infer-report={report}", *workers)
        result.assert_outcomes(failed=3)
        outcomes = {(r["nodeid"].split("::")[1], r["check_name"]): (r["outcome"], r["stage"])
                    for r in json.loads(report.read_text())["results"]}
        assert outcomes == {("test_two[eager-fp32]", "SmallCNN"): ("passed", None),
                            ("test_two[eager-fp32]", "DynamicBatchMLP"): ("failed", "latency"),
                            ("test_own_assert[eager-fp32]", "DynamicBatchMLP"): ("failed", "test"),
                            # the check's raise was caught, and the test failed on its own assertion after it
                            ("test_caught[eager-fp32]", "SmallCNN"): ("failed", "test"),
                            ("test_caught[eager-fp32]", "DynamicBatchMLP"): ("failed", "latency")}, workers


def test_output_paths_are_checked_before_any_test_runs(run_plugin, tmp_path: Path) -> None:
    same = tmp_path / "figures.json"
    result = run_plugin(TWO_MODELS, f"--infer-report={same}", f"--infer-baseline={same}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--infer-report*--infer-baseline*"])
    (tmp_path / "a-directory").mkdir()
    result = run_plugin(TWO_MODELS, f"--infer-html={tmp_path / 'a-directory'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--infer-html: *"])


def test_a_report_that_cannot_be_written_at_the_end_is_one_line_and_the_rest_is_written(
        run_plugin, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    source = TWO_MODELS + f'''

def test_removes_the_report_directory():
    import shutil
    shutil.rmtree({str(gone)!r})
    open({str(gone)!r}, "w").close()  # a file where the report's directory was
'''
    markdown = tmp_path / "summary.md"
    result = run_plugin(source, f"--infer-report={gone / 'report.json'}", f"--infer-markdown={markdown}")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "infercheck: could not write the JSON report" in out and "Traceback" not in out
    assert "infercheck summary" in out and markdown.read_text().startswith("## infercheck: ")


def test_without_pytest_cache_provider_the_engine_cache_is_private(run_plugin, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    source = TWO_MODELS.replace('backends=["eager"]', 'backends=["onnxruntime"]')
    result = run_plugin(source, "-p", "no:cacheprovider", cache=False)
    result.assert_outcomes(passed=2)
    private = tmp_path / "xdg" / "pytest-infercheck"
    assert private.is_dir() and (private.stat().st_mode & 0o777) == 0o700
    assert any(private.rglob("model.onnx"))  # the exports went there


CHECK_THEN_SKIP = '''
import pytest, torch
from fixtures.models import dynamic_mlp

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_disowned(infercheck):
    infercheck(dynamic_mlp(), torch.randn(2, 64))
    pytest.skip("this runner's numbers are not ours")
'''


def test_a_check_its_test_skips_afterwards_is_not_a_pass_nor_a_baseline_entry(run_plugin, pytester: pytest.Pytester,
                                                                             tmp_path: Path) -> None:
    """pytest.skip() after a passing check: pytest says skipped, so the reports must not say passed,
    and an update must not bless figures the test disowned."""
    report, baseline, junit = tmp_path / "r.json", tmp_path / "baseline.json", tmp_path / "junit.xml"
    result = run_plugin(CHECK_THEN_SKIP, f"--infer-report={report}", f"--infer-baseline={baseline}",
                        "--infer-baseline-update", "-p", "no:xdist", f"--junitxml={junit}")
    result.assert_outcomes(skipped=1)
    [item] = json.loads(report.read_text())["results"]
    assert (item["outcome"], item["stage"]) == ("skipped", "test")
    assert item["message"] == "the test skipped after the check passed: this runner's numbers are not ours"
    assert "  not written: test_model.py::test_disowned[eager-fp32]: skipped" in result.stdout.lines
    assert not baseline.exists() or not json.loads(baseline.read_text())["entries"]
    props = {p.get("name"): p.get("value") for p in ElementTree.parse(junit).getroot().iter("property")}
    assert props["infercheck.eager-fp32.outcome"] == "skipped"  # JUnit's figures say what the test said
