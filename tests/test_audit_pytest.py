"""The audit inside pytest runs (pytester): the early failure, the allow-list, infercheck.audit()."""

from __future__ import annotations

DOUBLE_DET_TEST = """
import pytest
from fixtures.problem_models import double_det_model, det_inputs

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"]{marker})
def test_det(infercheck):
    infercheck(double_det_model(), det_inputs())
"""


def test_backend_that_cannot_run_the_model_fails_early_naming_the_node(run_plugin) -> None:
    result = run_plugin(DOUBLE_DET_TEST.format(marker=""))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*audit: onnxruntime cannot run 1 node(s) of DoubleDetModel; offending nodes:*",
        "*n0 (Det) in head: ONNX Runtime cannot load the model: *Could not find an implementation for Det*",
    ])
    # Failed at the audit, before any build: no builder traceback in the output.
    assert "could not build" not in result.stdout.str()


def test_allowed_gap_skips_instead_of_failing(run_plugin) -> None:
    result = run_plugin(DOUBLE_DET_TEST.format(marker=", allow_ops=['Det']"), "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*only known gaps (allowed)*", "*n0 (Det) in head*allowed*"])


def test_allow_list_by_node_name_and_only_for_named_nodes(run_plugin) -> None:
    result = run_plugin(DOUBLE_DET_TEST.format(marker=", allow_nodes='n0'"))
    result.assert_outcomes(skipped=1)
    result = run_plugin(DOUBLE_DET_TEST.format(marker=", allow_nodes=['some_other_node']"))
    result.assert_outcomes(failed=1)  # a new gap still fails the gate


def test_bad_allow_list_value_is_a_clear_error(run_plugin) -> None:
    result = run_plugin(DOUBLE_DET_TEST.format(marker=", allow_ops=5"))
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*allow_ops*5*expected names as a list or a comma-separated string*"])


def test_audit_method_returns_the_report_for_the_tests_own_asserts(run_plugin) -> None:
    result = run_plugin("""
import pytest
from fixtures.problem_models import det_model, det_inputs
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_audit(infercheck):
    report = infercheck.audit(det_model(), det_inputs(), targets=["tensorrt", "onnxruntime"])
    assert not report.can_run("tensorrt") and report.can_run("onnxruntime")
    assert [(f.operator, f.node, f.module_path) for f in report.blocking("tensorrt")] == [("Det", "n0", "head")]
    assert report.allow(operators=["Det"]).passed
    clean = infercheck.audit(small_cnn(), cnn_inputs())  # default target: this item's backend
    assert clean.targets == ["onnxruntime"] and clean.passed and clean.findings == []
""")
    result.assert_outcomes(passed=1)


def test_tensorrt_item_without_tensorrt_skips_naming_the_predicted_gaps(run_plugin) -> None:
    source = '''
import pytest
from fixtures.problem_models import det_model, det_inputs
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["tensorrt"], precisions=["fp16"])
def test_det(infercheck):
    infercheck(det_model(), det_inputs())

@pytest.mark.infercheck(backends=["tensorrt"], precisions=["fp16"])
def test_clean(infercheck):
    infercheck(small_cnn(), cnn_inputs())
'''
    result = run_plugin(source, "-rs")
    result.assert_outcomes(skipped=2)
    out = result.stdout.str()
    assert "tensorrt-fp16: the tensorrt backend runs on NVIDIA GPUs only" in out
    assert "; where it runs, it could not run 1 node(s) of this model:" in out
    assert "n0 (Det) in head: TensorRT does not support Det (predicted from the TensorRT 10.15 table) [unsupported]" in out
    assert out.count("it could not run") == 2  # test_det's skip line and the summary's, not test_clean's


def test_support_table_audit_is_made_once_per_model_across_items_and_reruns(run_plugin, pytester, monkeypatch) -> None:
    """Every item of a model asks the same audit (each precision, with and without CUDA graphs, each
    rerun): the answer is kept beside the export in the engine cache, not folded and walked again."""
    import pytest_infercheck.audit.tensorrt_static as static

    calls = []
    real = static.static_findings
    monkeypatch.setattr(static, "static_findings", lambda *a, **k: calls.append(1) or real(*a, **k))
    source = '''
import pytest
from fixtures.problem_models import det_model, det_inputs

@pytest.mark.infercheck(backends=["tensorrt"], precisions=["fp32", "fp16"], cuda_graphs="both")
def test_det(infercheck):
    infercheck(det_model(), det_inputs())
'''
    cache = pytester.path / "engine-cache"
    for _ in range(2):
        result = run_plugin(source, "-rs", f"--infer-cache-dir={cache}")
        result.assert_outcomes(skipped=4)
        # every item still names the predicted gap, the rerun's too
        assert result.stdout.str().count("n0 (Det) in head: TensorRT does not support Det") >= 4
    assert len(calls) == 1
    # a support table corrected in place is a new audit, not the old answer
    monkeypatch.setattr("pytest_infercheck.check.prebuild.support_tables_digest", lambda: "another table")
    run_plugin(source, f"--infer-cache-dir={cache}").assert_outcomes(skipped=4)
    assert len(calls) == 2


def test_a_kept_audit_answers_only_for_the_device_it_ran_for(tmp_path, monkeypatch) -> None:
    """ONNX Runtime's placement asks this machine's providers: an engine cache carried to another
    machine (or asked for another device) audits again instead of answering with the old findings."""
    import pytest_infercheck.audit.tensorrt_static as static
    from fixtures.problem_models import det_inputs, det_model
    from pytest_infercheck.backends.artifacts import ModelArtifacts
    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.check.prebuild import kept_findings
    from pytest_infercheck.check.reference import model_under_test

    calls = []
    real = static.static_findings
    monkeypatch.setattr(static, "static_findings", lambda *a, **k: calls.append(1) or real(*a, **k))
    artifacts = ModelArtifacts(model_under_test(det_model(), det_inputs(), dynamic_batch=False), EngineCache(tmp_path))
    first = kept_findings(artifacts, "tensorrt", "cpu")
    assert kept_findings(artifacts, "tensorrt", "cpu") == first and len(calls) == 1
    assert [f.operator for f in first if f.blocking] == ["Det"]
    assert kept_findings(artifacts, "tensorrt", "cuda") == first and len(calls) == 2  # asked again, same table
