"""Engine identity, inputs and references, as a user meets them (real pytest runs of the plugin, issue #23):
two models share an engine only when they run the same code on the same state; the user's input
tensors are never changed; a reference that is empty or differs between two runs judges nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

HELPER = '''
import pytest, torch

class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x):
        return self.finish(self.linear(x))

    def finish(self, y):
{body}

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_model(infercheck):
    torch.manual_seed(0)
    infercheck(Model().eval(), torch.randn(2, 8))
'''
EXPORTABLE = "        return y.relu()"
# The same outputs on these inputs, but a branch on data: no exporter can hold it.
UNEXPORTABLE = "        if y.sum() > -1e9:\n            return y.relu()\n        return -y"


def test_an_edited_helper_method_is_a_new_model_for_a_warm_cache(run_plugin, tmp_path: Path) -> None:
    """Before, only forward's source was hashed: the edited model passed on the cached export (`hit`)."""
    cache = f"--infer-cache-dir={tmp_path / 'cache'}"
    run_plugin(HELPER.format(body=EXPORTABLE), cache, cache=False).assert_outcomes(passed=1)
    edited = run_plugin(HELPER.format(body=UNEXPORTABLE), cache, cache=False)
    edited.assert_outcomes(failed=1)
    edited.stdout.fnmatch_lines(["*export: torch.onnx.export (dynamo) could not export Model*"])
    edited.stdout.re_match_lines([r"test_model.py::test_model +onnxruntime-fp32 +cpu +failed \(export\)"])


SUBMODULE = '''
import json
import pytest, torch

class Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, h):
        return self.linear(h * {scale})

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = Head()  # the parent names its submodule's class: the class is reached as a global first

    def forward(self, x):
        return self.head(x)

@pytest.mark.infercheck(engines=["onnxruntime-fp32"])
def test_net(infercheck):
    torch.manual_seed(0)
    infercheck(Net().eval(), torch.randn(2, 8))
'''


def test_an_edited_submodule_is_a_new_model_for_a_warm_cache(run_plugin, tmp_path: Path) -> None:
    """Newcomer trial 5: a submodule class that its parent names in __init__ had none of its methods in the key
    (the class was marked seen as a global before its attributes were hashed): after an edit of Head.forward the
    next run loaded the old engine (`hit`) and failed it against the new reference, rel err 0.349."""
    cache = f"--infer-cache-dir={tmp_path / 'cache'}"
    report = tmp_path / "report.json"
    run_plugin(SUBMODULE.format(scale="2.0"), cache, cache=False).assert_outcomes(passed=1)
    edited = run_plugin(SUBMODULE.format(scale="3.0"), cache, f"--infer-report={report}", cache=False)
    edited.assert_outcomes(passed=1)
    assert json.loads(report.read_text())["results"][0]["cache"]["onnx"] == "miss"


PAIRS = '''
import pytest, torch

class Holder(torch.nn.Module):
    def __init__(self, table, offset, act):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)
        self.table, self.offset, self.act = table, offset, act

    def forward(self, x):
        return self.act(self.linear(x) * self.table["scale"] + self.offset)

def holder(**changes):
    torch.manual_seed(0)
    return Holder(**{"table": {"scale": 1.0}, "offset": torch.zeros(8), "act": torch.relu, **changes}).eval()

def branch(y):  # relu's outputs on these inputs, through a branch on data: no exporter can hold it
    if y.sum() > -1e9:
        return y.relu()
    return -y

OTHER = {"dict": {"table": {"scale": 3.0}}, "tensor": {"offset": torch.full((8,), 5.0)},
         "lambda": {"act": lambda y: y * 2}, "function": {"act": branch}}

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
@pytest.mark.parametrize("changed", list(OTHER))
def test_pair(infercheck, changed):
    x = torch.randn(2, 8)
    infercheck(holder(), x, name="base")
    infercheck(holder(**OTHER[changed]), x, name=changed)
'''


def test_models_differing_only_in_a_dict_tensor_or_function_attribute_share_no_engine(run_plugin,
                                                                                       tmp_path: Path) -> None:
    """Before, the second model of each pair ran the first one's ONNX model (`hit`) and was compared with
    the first one's reference (keyed by the same hash): all four passed, the unexportable one too."""
    result = run_plugin(PAIRS, f"--infer-cache-dir={tmp_path / 'cache'}", "-p", "no:xdist", cache=False)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.re_match_lines_random([
        *(rf"test_model.py::test_pair\[{name}\] \({name}\) +onnxruntime-fp32 +cpu +passed .* miss$"
          for name in ("dict", "tensor", "lambda")),
        r"test_model.py::test_pair\[function\] \(function\) +onnxruntime-fp32 +cpu +failed \(export\)",
    ])


UNHASHABLE = '''
import pytest, torch

class Graph(torch.nn.Module):
    def __init__(self, adjacency):
        super().__init__()
        self.adjacency = adjacency.to_sparse()  # a sparse tensor has no plain bytes to hash
        self.register_buffer("dense", adjacency)

    def forward(self, x):
        return self.dense @ x

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
@pytest.mark.parametrize("weight", [1.0, 2.0])
def test_graph(infercheck, weight):
    infercheck(Graph(torch.eye(4) * weight + 1), torch.randn(4, 3))
'''


def test_a_model_that_cannot_be_hashed_is_built_afresh_and_says_why(run_plugin, tmp_path: Path) -> None:
    cache = f"--infer-cache-dir={tmp_path / 'cache'}"
    for _ in range(2):  # a second run finds nothing cached either
        result = run_plugin(UNHASHABLE, cache, "-p", "no:xdist", "-W", "always::UserWarning", cache=False)
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines_random([
            "*not cached and not shared with other checks: Graph.adjacency (a torch.sparse_coo torch.float32 "
            "tensor (RuntimeError)) cannot be hashed, so its engines are built afresh in every run*",
            *(f"test_model.py::test_graph[[]{weight}[]]*onnxruntime-fp32*passed*off" for weight in ("1.0", "2.0"))])
    assert not any((tmp_path / "cache").rglob("model.onnx"))


IN_PLACE = '''
import pytest, torch

class Doubles(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x):
        x.mul_(2)  # changes its input in place
        return self.linear(x)

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp32"])
def test_in_place(infercheck):
    torch.manual_seed(0)
    x = torch.randn(2, 8)
    given = x.clone()
    infercheck(Doubles().eval(), x)
    assert torch.equal(x, given), f"the user's tensor was changed: x / given = {(x / given).unique().tolist()}"
'''


def test_the_users_input_tensor_is_never_changed(run_plugin) -> None:
    """Before, the eager engine got the user's own tensor: the reference, the first run and every timed
    iteration doubled it (x2^23 at the end), and eager FP32 failed accuracy against its own reference."""
    result = run_plugin(IN_PLACE, "-p", "no:xdist", "-W", "always::UserWarning")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*the forward changes its input 'x' in place: the reference and every engine get "
                                 "their own copy, but an engine's timed iterations reuse theirs*"])


VACUOUS = '''
import pytest, torch
import torch.nn.functional as F

class Empty(torch.nn.Module):
    def forward(self, x):
        return x[:, :0] * 2  # an empty tensor: every engine "matches" it

class Dropout(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x):
        return F.dropout(self.linear(x), p=0.5, training=True)  # random whatever eval() says

class Noise(torch.nn.Module):
    def forward(self, x):
        return x + torch.rand_like(x)

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp32"])
def test_empty(infercheck):
    infercheck(Empty(), torch.randn(2, 8))

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_dropout(infercheck):
    infercheck(Dropout(), torch.randn(2, 8))

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_noise(infercheck):
    infercheck(Noise(), torch.randn(2, 8))

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"], allow_nondeterministic=True)
def test_noise_meant(infercheck):
    result = infercheck(Noise(), torch.randn(2, 8), raise_on_failure=False)
    assert result.stage != "reference"  # compared as it is: then the engine's run differs from the reference
    # ... and the failure says the reference ran once, which is why eager-fp32 itself fails (newcomer trial 3)
    assert "the reference ran once (allow_nondeterministic=True): if the forward's outputs change" in result.message
'''


def test_an_empty_or_random_reference_fails_at_stage_reference(run_plugin) -> None:
    """Before, an empty output passed every engine with cosine 1.000000, and random outputs were blamed on
    the engine (eager FP32 failed accuracy against its own reference) or, where they cancel, passed."""
    result = run_plugin(VACUOUS, "-p", "no:xdist")
    result.assert_outcomes(failed=4, passed=1)
    text = result.stdout.str()
    result.stdout.fnmatch_lines_random([
        "*output output is empty ([[]2, 0[]]): there is nothing to compare, so every engine matches it",
        "*reference: the eager reference is nondeterministic: two runs on the same inputs differ:",
        "*output output differs in * of 16 values (largest difference *)",
        "*likely causes: dropout applied regardless of eval() (F.dropout(x, training=True)), random ops in forward "
        "(torch.rand_like*allow_nondeterministic=True*",
    ])
    for test, engines in (("test_empty", ("eager-fp32", "onnxruntime-fp32")), ("test_dropout", ("eager-fp32",)),
                          ("test_noise", ("eager-fp32",))):
        for engine in engines:
            assert re.search(rf"test_model.py::{test} +{engine} +cpu +failed \(reference\)", text), (test, engine)
    assert re.search(r"test_model.py::test_noise_meant +eager-fp32 +cpu +failed \(accuracy\)", text)


def test_an_entry_built_by_other_plugin_code_is_built_again(run_plugin, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin's version alone keyed its entries: two commits of one version (an editable install, a
    branch under test) shared exports and engines the other commit's code had made."""
    from pytest_infercheck.backends import artifacts

    cache = f"--infer-cache-dir={tmp_path / 'cache'}"
    row = r"test_model.py::test_model +onnxruntime-fp32 +cpu +passed .* {state}$"
    source = HELPER.format(body=EXPORTABLE)
    run_plugin(source, cache, cache=False).stdout.re_match_lines([row.format(state="miss")])
    run_plugin(source, cache, cache=False).stdout.re_match_lines([row.format(state="hit")])
    monkeypatch.setattr(artifacts, "engine_code_digest", lambda: "0123456789abcdef")  # another commit's code
    other = run_plugin(source, cache, cache=False)
    other.assert_outcomes(passed=1)
    other.stdout.re_match_lines([row.format(state="miss")])


def test_the_code_digest_covers_the_code_that_makes_engines_and_nothing_else(tmp_path: Path) -> None:
    import shutil

    from pytest_infercheck.backends.environment import code_digest, engine_code_files

    package = Path(__file__).resolve().parents[1] / "pytest_infercheck"
    names = {path.relative_to(package).as_posix() for path in engine_code_files(package)}
    assert {"backends/inductor.py", "backends/onnxruntime.py", "model/export.py", "model/precision.py",
            "core/spec.py"} <= names
    assert not any(name.startswith(("report/", "judge/", "baseline/")) for name in names)
    copy = tmp_path / "pytest_infercheck"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_digest(copy)
    assert before == code_digest(package)
    (copy / "report" / "table.py").write_text((copy / "report" / "table.py").read_text() + "\n# a comment\n")
    assert code_digest(copy) == before  # a report's code does not make engines
    (copy / "model" / "export.py").write_text((copy / "model" / "export.py").read_text() + "\n# a comment\n")
    assert code_digest(copy) != before


SCRIPTED = '''
import pytest, torch

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_scripted(infercheck):
    infercheck(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()), torch.randn(2, 8))
'''


def test_a_scripted_model_is_said_in_one_sentence_not_a_dozen_internals(run_plugin) -> None:
    """A TorchScript module's note named twelve compiled internals (over 1,000 characters)."""
    result = run_plugin(SCRIPTED, "-p", "no:xdist", "-W", "always::UserWarning")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*not cached and not shared with other checks: a TorchScript module "
                                 "(RecursiveScriptModule, from torch.jit.script or trace) cannot be hashed by content, "
                                 "so its engines are built afresh in every run*"])
    assert "_concrete_type" not in result.stdout.str()


HALF_MODEL = """
import json
import pytest, torch

def make(dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval().to(dtype)
    model.register_buffer("scale64", torch.ones(4, dtype=torch.float64))  # a float64 buffer stays float64
    return model

@pytest.mark.infercheck(engines=["eager-fp32", "eager-fp16", "onnxruntime-fp32"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half(infercheck, dtype):
    model = make(dtype)
    x = torch.randn(8, 16).to(dtype)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    result = infercheck(model, x)
    # The user's model and input keep their dtype and values.
    assert x.dtype == dtype and all(p.dtype == dtype for p in model.parameters())
    assert model.scale64.dtype == torch.float64
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())
    print("ERR", result.spec_id, str(dtype), result.accuracy["output"].max_abs)
    kind = str(dtype).removeprefix("torch.")
    # Said on the result (and in a failure's notes), not as a warning: a strict filter must not fail it.
    assert result.widened == (f"parameters and buffers in {kind} (4 tensors)", f"input 'input' in {kind}")
"""


def test_a_half_precision_model_is_checked_from_its_fp32_form(run_plugin) -> None:
    """A model.half() was its own reference: eager-fp16 passed with error 0 (compared with itself) and the FP32
    engines failed for FP16's rounding (newcomer trial 3)."""
    result = run_plugin(HALF_MODEL, "--infer-device=cpu", "-s", "-W", "error")
    result.assert_outcomes(passed=6)
    errors = {(spec, dtype): float(err) for spec, dtype, err in
              re.findall(r"ERR (\S+) (\S+) (\S+)", result.stdout.str())}
    for dtype in ("torch.float16", "torch.bfloat16"):
        assert errors[("eager-fp32", dtype)] == 0.0  # the reference is the eager model in FP32
        assert errors[("eager-fp16", dtype)] > 0.0  # FP16's own rounding, against FP32: something was compared
        assert errors[("onnxruntime-fp32", dtype)] < 1e-5  # an FP32 engine is FP32
    assert "checked from the model's FP32 form" not in result.stdout.str()  # no warning of it


HALF_EDGES = """
import pytest, torch

class CastsItself(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)
    def forward(self, x):
        return self.linear(x.to(torch.float16))  # runs only at FP16: its FP32 form fails

@pytest.mark.infercheck(engines=["onnxruntime-int8"])
def test_half_calibration(infercheck):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval().half()
    batches = [torch.randn(4, 16).half() for _ in range(4)]
    infercheck(model, torch.randn(4, 16).half(), calibration=batches)

@pytest.mark.infercheck(engines=["eager-fp16"])
def test_casts_itself(infercheck):
    torch.manual_seed(0)
    result = infercheck(CastsItself().eval().half(), torch.randn(2, 8).half())
    assert result.widened == ()

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_exported_module(infercheck):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()
    x = torch.randn(2, 8)
    infercheck(torch.export.export(model, (x,)).module(), x)
"""


def test_half_models_calibrated_casting_or_exported_are_checked(run_plugin) -> None:
    """The review of the FP32 form: FP16 calibration batches beside widened example inputs failed at calibration
    (dtypes differ); a forward that casts to FP16 itself failed on FP32 weights; under -W error, deep-copying a
    torch.export'ed module raised torch's own FutureWarning, and its FakeTensor metadata made it unhashable."""
    pytest.importorskip("onnxruntime")
    result = run_plugin(HALF_EDGES, "--infer-device=cpu", "-W", "error", "-W",
                        "default::pytest_infercheck.check.InfercheckWarning")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert ("checked as given, not from the model's FP32 form: widened to float32 (parameters and buffers in "
            "float16 (2 tensors); input 'x' in float16), its forward failed (RuntimeError: mat1 and mat2 must have "
            "the same dtype") in out
    assert "cannot be hashed" not in out


def test_a_tensor_subclass_input_keeps_its_dtype() -> None:
    import torch

    from pytest_infercheck.model.inputs import ModelInputs

    class Marked(torch.Tensor):
        pass

    inputs = ModelInputs.from_example((torch.ones(2).half(), torch.ones(2).half().as_subclass(Marked)))
    widened = inputs.widened((torch.float16, torch.bfloat16))
    assert [t.dtype for t in widened.tensors] == [torch.float32, torch.float16]
