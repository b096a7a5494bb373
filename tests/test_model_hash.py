"""The content hash keys the engine cache: it must change with anything that changes the graph."""

from __future__ import annotations

import torch

from fixtures.models import dynamic_mlp, small_cnn
from pytest_infercheck.model import content_hash


class Scaled(torch.nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.scale = scale  # a plain attribute: not in repr, not in the state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.scale


def _hash(model: torch.nn.Module, *inputs: torch.Tensor) -> str:
    return content_hash(model, inputs, dynamic_batch=False)


def test_same_weights_same_hash() -> None:
    torch.manual_seed(0)
    first = small_cnn()
    torch.manual_seed(0)
    assert _hash(first, torch.zeros(1, 3, 8, 8)) == _hash(small_cnn(), torch.zeros(1, 3, 8, 8))


def test_weights_inputs_and_dynamic_batch_change_the_hash() -> None:
    model = dynamic_mlp()
    x = torch.zeros(2, 64)
    base = _hash(model, x)
    assert _hash(model, torch.zeros(3, 64)) != base
    assert _hash(model, x.double()) != base
    assert content_hash(model, (x,), dynamic_batch=True) != base
    with torch.no_grad():
        model.net[0].bias[0] += 1e-6
    assert _hash(model, x) != base


def test_plain_python_attributes_change_the_hash() -> None:
    torch.manual_seed(0)
    one = Scaled(1.0)
    torch.manual_seed(0)
    big = Scaled(100000.0)
    x = torch.zeros(1, 4)
    assert _hash(one, x) != _hash(big, x)


def test_hashing_does_not_touch_the_model() -> None:
    model = small_cnn().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _hash(model, torch.zeros(1, 3, 8, 8))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
