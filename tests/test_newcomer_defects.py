"""What a newcomer's model repo hit (issue 22): each case runs the plugin for real through pytester."""

from __future__ import annotations

import json
from pathlib import Path


def test_build_seconds_count_the_export_an_onnx_engine_needed(run_plugin, tmp_path: Path) -> None:
    """The exporter's trace of the forward sleeps, so the export takes at least that long: an ONNX engine's
    build seconds include it, as an Inductor engine's include the trace its compile makes. Only the trace
    sleeps (exporting_only): the build seconds can reach the sleep through the export alone."""
    report = tmp_path / "report.json"
    result = run_plugin(
        """
import pytest, torch
from fixtures.problem_models import SlowToTrace

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"], min_time=0.01, max_time=0.05)
def test_slow(infercheck):
    infercheck(SlowToTrace(0.4, exporting_only=True).eval(), torch.randn(2, 4))
""", "--infer-device=cpu", "--infer-no-cache", f"--infer-report={report}")
    result.assert_outcomes(passed=1)
    (only,) = json.loads(report.read_text())["results"]
    assert only["build_seconds"] >= 0.4, only["build_seconds"]


def test_the_summary_table_fits_the_terminal_and_says_what_it_left_out(run_plugin, monkeypatch, tmp_path: Path) -> None:
    # The width of a real terminal (pytester's output is captured, so it stands in for one here).
    from pytest_infercheck.report import terminal

    monkeypatch.setattr(terminal, "table_width", lambda reporter: 100)
    report = tmp_path / "report.json"
    result = run_plugin(
        """
import pytest, torch

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp32"])
@pytest.mark.parametrize("a_long_parameter_name_as_model_repos_have", ["resnet50_at_batch_8", "resnet50_at_batch_32"])
def test_a_classifier_with_a_long_descriptive_name_deploys(infercheck, a_long_parameter_name_as_model_repos_have):
    infercheck(torch.nn.Linear(8, 4).eval(), torch.randn(2, 8))
""", "--infer-device=cpu", f"--infer-report={report}")
    result.assert_outcomes(passed=4)
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "infercheck summary" in line) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("infercheck JSON report"))
    table = [line for line in lines[start:end] if line]
    assert all(len(line) <= 100 for line in table), [len(line) for line in table]
    assert table[0].split("  ")[0].strip() == "test" and "engine" in table[0] and "p50 ms" in table[0]
    rows = table[2:6]
    assert all(line.startswith("test_model.py::t") and "…" in line for line in rows), rows  # cut in the middle
    assert all(line.split()[0].endswith(("batch_8]", "batch_32]")) for line in rows), rows  # parameters kept
    assert " ".join(table[6:]).startswith("(not shown at 100 columns: p90 ms, cache, device, build s")
    assert "p50 ms" in table[0] and "outcome" in table[0] and "engine" in table[0]
    # The reports keep what the terminal left out.
    assert all(r["latency"]["p90_ms"] > 0 for r in json.loads(report.read_text())["results"])


def test_a_baseline_update_that_could_not_be_written_fails_the_run(run_plugin, tmp_path: Path) -> None:
    """The baseline's folder becomes unwritable during the run (a full disk, a lost mount): the run
    that was asked to record a baseline and did not must not exit 0."""
    from readonly import read_only

    folder = tmp_path / "baselines"
    folder.mkdir()
    with read_only(folder):
        pass  # skips here, before the run, where this machine cannot make a folder read-only
    result = run_plugin(
        f"""
import pytest, torch, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from readonly import read_only

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_model(infercheck, request):
    infercheck(torch.nn.Linear(4, 4).eval(), torch.randn(2, 4))
    lock = read_only({str(folder)!r})
    lock.__enter__()
    request.config.add_cleanup(lambda: lock.__exit__(None, None, None))
""", "--infer-device=cpu", f"--infer-baseline={folder / 'baseline.json'}", "--infer-baseline-update")
    # One wording for the session and `infercheck baseline update` (the attack's immutable-baseline case).
    result.stdout.fnmatch_lines([f"infercheck: baseline file {folder / 'baseline.json'}: not updated: it cannot be "
                                 "written (*); nothing was written"])
    assert result.ret == 4  # a baseline update that blessed nothing ends the run as a usage error
    assert not (folder / "baseline.json").exists()


def test_the_plugin_registers_no_gpu_marker_in_a_users_project(run_plugin) -> None:
    """A ``gpu`` marker said "skipped without a GPU" in every user's project, yet nothing skipped it.
    The project's own marker is registered in its pyproject.toml, for its own tests."""
    result = run_plugin("def test_x():\n    pass\n", "--markers")
    assert not any(line.startswith("@pytest.mark.gpu") for line in result.outlines)
    assert any(line.startswith("@pytest.mark.infercheck") for line in result.outlines)


def test_a_dynamic_batch_from_an_example_batch_of_one_names_torchs_specialisation(run_plugin) -> None:
    """A Segformer example at batch 1 with dynamic_batch=True (the newcomer trial): torch.export's failure
    kept only "Found the following conflicts ...:" without the conflict, and the ONNX engine, exported
    with the batch fixed at 1, failed with ONNX Runtime's internal Squeeze/Reshape error alone.  Both now
    carry torch's sentence or the cause, and what to do."""
    result = run_plugin(
        """
import pytest, torch

class SingleImagePath(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)
    def forward(self, x):
        y = self.fc(x)
        return y.squeeze(0) if x.shape[0] == 1 else y  # another path for one image, as many models have

@pytest.mark.infercheck(engines=["aoti-fp32", "onnxruntime-fp32"], dynamic_batch=True)
def test_model(infercheck):
    infercheck(SingleImagePath().eval(), torch.randn(1, 8))
""", "--infer-device=cpu")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "infercheck aoti-fp32 on cpu (SingleImagePath) failed:",
        "  - export: torch.export could not export SingleImagePath:",
        "*Found the following conflicts between user-specified ranges and inferred ranges*",
        "*0/1 specialized due to hint of 1 for dimension inputs?'x'?.shape?0?.",
        "*torch.export fixes a dynamic batch traced from an example batch of 1 where an operation broadcasts or "
        "branches on it*: give an example batch of 2 or more",
    ])
    result.stdout.fnmatch_lines([
        "infercheck onnxruntime-fp32 on cpu (SingleImagePath) failed:",
        "  - dynamic batch: the engine rejects batch 2 (exported at 1, likely kept there: a dimension of size 0 or "
        "1 is special to torch's tracers (0/1 specialisation): give an example batch of 2 or more): *",
    ])


def test_a_vit_at_batch_one_fails_aoti_at_export_saying_why_onnx_did_not(run_plugin) -> None:
    """A ViT at batch 1 with dynamic_batch=True (the second newcomer trial): `embeddings + position_embeddings`,
    whose second term has batch 1, makes torch.export fix the batch ("0/1 specialized") while the same test's
    ONNX engine (torch.onnx traces size-obliviously) exports and passes at batch 1 and 2.  Exporting
    size-obliviously for AOTInductor too was tried: its compile of that program ran batch 2 with wrong
    values, so aoti-fp32 fails at export, and says why the ONNX engine did not."""
    result = run_plugin(
        """
import pytest, torch

class TinyViT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.cls = torch.nn.Parameter(torch.randn(1, 1, 8))
        self.position = torch.nn.Parameter(torch.randn(1, 5, 8))
        self.qkv, self.head = torch.nn.Linear(8, 24), torch.nn.Linear(8, 4)
    def forward(self, x):
        b = x.shape[0]
        tokens = torch.cat([self.cls.expand(b, -1, -1), x], 1) + self.position
        q, k, v = self.qkv(tokens).view(b, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 5, 8)
        return self.head(attended[:, 0])

@pytest.mark.infercheck(engines=["aoti-fp32", "onnxruntime-fp32"], dynamic_batch=True)
def test_model(infercheck):
    result = infercheck(TinyViT().eval(), torch.randn(1, 4, 8), raise_on_failure=False)
    if result.spec_id == "onnxruntime-fp32":
        assert result.passed and (result.dynamic_batch.batch, result.dynamic_batch.passed) == (2, True)
    else:
        assert not result.passed and result.stage == "export", result.message
""", "--infer-device=cpu")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*aoti-fp32*export*"])


def test_a_degenerate_detector_reference_says_where_the_signal_went_and_names_no_missing_layer(run_plugin) -> None:
    """torchvision detection's transform returns an ImageList: the activation trail's hook on it raised,
    so the degenerate-reference message of every detection model measured nothing, yet still said
    "initialise the layer named above".  The trail now leaves such a layer out, and the remedy names a
    layer only when the trail did."""
    result = run_plugin(
        """
import pytest, torch

class ImageBatch:
    def __init__(self, tensors):
        self.tensors = tensors

class Transform(torch.nn.Module):
    def forward(self, images):
        return ImageBatch(torch.stack(images))

class Detector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.transform = Transform()
        self.backbone = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Linear(4, 2)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
    def forward(self, images):
        return self.head(self.backbone(self.transform(images).tensors).mean((2, 3)))

class ZeroEmbedding(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        torch.nn.init.zeros_(self.embed.weight)
    def forward(self, ids):
        return self.embed(ids)

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_detector(infercheck):
    infercheck(Detector().eval(), ([torch.randn(3, 16, 16)],))

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_ids_only(infercheck):
    infercheck(ZeroEmbedding().eval(), torch.randint(0, 10, (2, 5)))
""", "--infer-device=cpu")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "infercheck eager-fp32 on cpu (Detector) failed:",
        "*output output is all zero*",
        "*activations (RMS) measured with forward hooks fall from * at the input to 0 after head; "
        "every weight of head is zero",
        "      use trained weights or initialise the layer named above, pass other example inputs, *",
    ])
    result.stdout.fnmatch_lines([
        "infercheck eager-fp32 on cpu (ZeroEmbedding) failed:",
        "*output output is all zero*",
        "*measured: output output: std 0, |x| <= 0",
        "      use trained weights, pass other example inputs, or exempt the output on purpose with *",
    ])


SHORT_SUMMARY = """
import pytest, torch
from fixtures.problem_models import overflow_in_one_module, overflow_inputs

@pytest.mark.infercheck(engines=["eager-fp16"])
def test_model(infercheck):
    infercheck(overflow_in_one_module(), overflow_inputs())
"""


def test_the_short_summary_says_the_stage_and_the_reason(run_plugin) -> None:
    """`pytest -rf` shows a failure's first line: it read "Failed: infercheck eager-fp16 on cpu (...) failed:",
    the reason on the lines below it (the newcomer trial, defect 4)."""
    result = run_plugin(SHORT_SUMMARY, "-rf", "-vv")  # -vv: pytest does not cut the line to 80 columns
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED test_model.py::test_model[[]eager-fp16[]] - Failed: eager-fp16 failed at "
                                 "accuracy: output 'output' * NaN/Inf element*"])


def test_a_forward_that_fails_on_its_second_call_says_when(run_plugin) -> None:
    """Newcomer trial 3: "timing the engine failed: at /abs/path:114 in forward: ..." with the error on a line of
    its own outside the bullet list."""
    result = run_plugin("""
import pytest, torch

class RaiseSecond(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(16, 4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls >= 2:
            raise RuntimeError(f"boom on call {self.calls}")
        return self.linear(x)

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_raise_second(infercheck):
    infercheck(RaiseSecond().eval(), torch.randn(8, 16))
""", "--infer-device=cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "  - latency: the engine failed in a timed call, after its first calls passed the accuracy check:",
        '      at test_model.py:12 in forward: raise RuntimeError(f"boom on call {self.calls}")',
        "      RuntimeError: boom on call 2",
        "  at test_model.py:17 in test_raise_second: infercheck(RaiseSecond().eval(), torch.randn(8, 16))",
    ])
