"""List and nested-sequence example inputs (torchvision detection's ``model([image])``), end to end:
copies, casts, the reference, ONNX export and feeds, the PyTorch engines, the comparison."""

from __future__ import annotations

import pytest
import torch

from pytest_infercheck.model.calibration import calibration_batches
from pytest_infercheck.model.inputs import InputsError, ModelInputs, onnx_feeds
from pytest_infercheck.model.under_test import ModelUnderTest

LIST_MODELS = '''
import pytest, torch

class PerImage(torch.nn.Module):
    """model([img, img]): one score vector per image, images of different sizes (detection's call)."""
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
    def forward(self, images):
        return [self.conv(image.unsqueeze(0)).mean(dim=(2, 3)).squeeze(0) for image in images]

class Pairs(torch.nn.Module):
    """model([(a, b), (c, d)], scale=[s]): nested lists and tuples, positional and keyword."""
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 3)
    def forward(self, pairs, scale):
        return torch.stack([self.fc(a * b) for a, b in pairs]) * scale[0]

def images():
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(3, 16, 16, generator=generator), torch.randn(3, 20, 12, generator=generator)]

def pairs():
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(6, generator=generator), torch.randn(6, generator=generator)) for _ in range(2)]

@pytest.mark.infercheck(engines=["eager-fp32", "onnxruntime-fp32", "inductor-fp32"])
def test_list(infercheck):
    given = images()
    infercheck(PerImage(), (given,))
    assert torch.equal(given[0], images()[0])  # the user's tensors are not changed

@pytest.mark.infercheck(engines=["eager-fp32", "onnxruntime-fp32"])
def test_nested(infercheck):
    infercheck(Pairs(), ((pairs(),), {"scale": [torch.tensor(2.0)]}))

@pytest.mark.infercheck(engines=["onnxruntime-fp32"], dynamic_batch=True)
def test_list_with_dynamic_batch(infercheck):
    infercheck(PerImage(), (images(),))
'''


def test_a_list_argument_flattens_names_and_rebuilds() -> None:
    a, b, c = torch.ones(3, 4, 4), torch.zeros(3, 5, 5), torch.ones(2)
    inputs = ModelInputs.from_example(([a, (b, c)],))
    assert inputs.nested and len(inputs) == 3 and inputs.names == ("input_0_0", "input_0_1_0", "input_0_1_1")
    rebuilt = inputs.with_tensors([t + 1 for t in inputs.tensors])
    assert isinstance(rebuilt.args[0], list) and isinstance(rebuilt.args[0][1], tuple)
    assert torch.equal(rebuilt.args[0][1][1], c + 1)
    cast = inputs.cast(dtype=torch.float16, device="cpu")
    assert cast.args[0][0].dtype == torch.float16 and cast.args[0][0] is not a
    assert inputs.batch_size == 2  # a list of images: one sample each
    feeds = onnx_feeds(["input_0_0", "input_0_1_0", "input_0_1_1"], inputs)
    assert feeds["input_0_1_0"].shape == (3, 5, 5)


def test_a_forward_names_the_list_argument_and_calibration_keeps_its_structure() -> None:
    class Model(torch.nn.Module):
        def forward(self, images, weight):
            return sum(image.sum() for image in images) * weight

    model = Model()
    example = ModelInputs.from_example(([torch.ones(2), torch.ones(3)], torch.ones(1)), model)
    assert example.names == ("images_0", "images_1", "weight") and example.argument_names == ("images", "weight")
    batches = calibration_batches([([torch.zeros(2), torch.zeros(3)], torch.ones(1), "label")], example, model)
    assert isinstance(batches.batches[0].args[0], list) and batches.batches[0].args[0][1].shape == (3,)
    generated = calibration_batches(None, example, model)
    assert isinstance(generated.batches[0].args[0], list)


@pytest.mark.parametrize("bad, words", [
    (([],), "example input 0 is an empty list"),
    (([torch.ones(1), "x"],), r"example input 0\[1\] is a str"),
])
def test_a_bad_list_names_where(bad: object, words: str) -> None:
    with pytest.raises(InputsError, match=words):
        ModelInputs.from_example(bad)


def test_a_list_cannot_have_a_dynamic_batch_and_the_message_names_the_batched_form() -> None:
    with pytest.raises(InputsError, match=r"dynamic_batch=True with the list input\(s\) 'input'.*one batched tensor"):
        ModelUnderTest.create(torch.nn.Identity(), ([torch.ones(3, 4, 4)],), dynamic_batch=True)


def test_list_and_nested_inputs_run_through_every_engine(run_plugin) -> None:
    result = run_plugin(LIST_MODELS, "-rA")
    out = result.stdout.str()
    result.assert_outcomes(passed=5, failed=1)
    assert "is a list" not in out
    result.stdout.fnmatch_lines(["*inputs: dynamic_batch=True with the list input(s) 'images'*"
                                 "one batched tensor [[]N, ...[]] in place of the list*"])
    result.stdout.re_match_lines([r"test_model.py::test_nested +onnxruntime-fp32 +cpu +passed"])


DETECTION = '''
import pytest, torch

@pytest.mark.infercheck(engines=["eager-fp32", "onnxruntime-fp32"], device="cpu")
def test_fasterrcnn(infercheck):
    import torchvision
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, box_score_thresh=0.0).eval()
    infercheck(model, ([torch.rand(3, 320, 320)],))  # the documented call: model([image])
'''


def test_torchvision_detection_takes_its_documented_list_call(run_plugin, tmp_path) -> None:
    """Faster R-CNN (random weights) called as model([image]): no engine refuses the list; eager passes."""
    try:
        import torchvision  # noqa: F401
    except Exception as err:  # a torchvision built for another torch fails at import (RuntimeError)
        pytest.skip(f"torchvision cannot be imported here: {type(err).__name__}: {err}")
    import json

    report = tmp_path / "report.json"
    result = run_plugin(DETECTION, f"--infer-report={report}")
    outcomes = {r["spec_id"]: r for r in json.loads(report.read_text())["results"]}
    assert outcomes["eager-fp32"]["outcome"] == "passed", result.stdout.str()
    assert "is a list" not in result.stdout.str() and "failed (inputs)" not in result.stdout.str()
