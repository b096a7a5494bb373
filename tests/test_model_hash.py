"""The content hash keys the engine cache: it must change with anything that changes the graph."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from fixtures.models import dynamic_mlp, small_cnn
from pytest_infercheck.model.under_test import content_hash, model_identity


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


# -- what the hash must see besides forward's source and plain attributes (issue #23) ----------------

USER_SOURCE = """
import torch

def finish(y):
    return {function}

class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.finish(self.linear(x))

    def finish(self, y):
        return {method}
"""


def _from_source(method: str = "finish(y)", function: str = "y.relu()") -> torch.nn.Module:
    """A model as a user's file defines it: the same class name and forward, the given helpers' bodies."""
    namespace: dict = {"__name__": "user_model"}
    exec(compile(USER_SOURCE.format(method=method, function=function), "user_model.py", "exec"), namespace)
    torch.manual_seed(0)
    return namespace["Model"]()


def test_a_helper_method_and_a_module_level_function_forward_calls_are_hashed() -> None:
    x = torch.zeros(1, 4)
    base = _hash(_from_source(), x)
    assert _hash(_from_source(), x) == base  # the same code from a fresh class: the same model
    assert _hash(_from_source(method="-y"), x) != base  # forward unchanged, its helper method edited
    assert _hash(_from_source(function="-y"), x) != base  # a module-level function it calls, edited


def _branch(y: torch.Tensor) -> torch.Tensor:
    if y.sum() > 0:
        return y.relu()
    return -y


class Holder(torch.nn.Module):
    """A forward that reads a dict, a plain tensor and a function stored as attributes."""

    def __init__(self, table: dict, offset: torch.Tensor, act) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.table, self.offset, self.act = table, offset, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x) * self.table["scale"] + self.offset)


def _holder(**changes) -> Holder:
    torch.manual_seed(0)
    return Holder(**{"table": {"scale": 1.0}, "offset": torch.zeros(4), "act": torch.relu, **changes})


def _scaler(scale: float):
    return lambda y: y * scale  # one code, a closure per scale


@pytest.mark.parametrize("base, other", [
    ({}, {"table": {"scale": 3.0}}),
    ({}, {"offset": torch.full((4,), 5.0)}),
    ({}, {"act": lambda y: y * 2}),
    ({}, {"act": _branch}),
    ({"act": _scaler(2.0)}, {"act": _scaler(3.0)}),
], ids=["dict", "tensor", "lambda", "function", "closure"])
def test_dict_tensor_and_function_attributes_are_hashed_by_content(base, other) -> None:
    x = torch.zeros(1, 4)
    assert _hash(_holder(**other), x) != _hash(_holder(**base), x)
    assert _hash(_holder(**other), x) == _hash(_holder(**other), x)  # by content: a new copy, the same hash


def test_non_persistent_buffers_and_forward_hooks_are_hashed() -> None:
    x = torch.zeros(1, 4)
    base = _hash(_holder(), x)
    buffered = _holder()
    buffered.register_buffer("mask", torch.ones(4), persistent=False)  # not in the state dict
    assert _hash(buffered, x) != base
    hooked = _holder()
    hooked.register_forward_hook(lambda module, args, out: out * 2)
    assert _hash(hooked, x) != base


def test_what_cannot_be_hashed_is_named() -> None:
    model = _holder()
    model.adjacency = torch.eye(4).to_sparse()  # no plain bytes to hash
    model.lock = threading.Lock()
    identity = model_identity(model, (torch.zeros(1, 4),), dynamic_batch=False)
    assert identity.unhashable == ["Holder.adjacency (a torch.sparse_coo torch.float32 tensor (RuntimeError))",
                                   "Holder.lock (a _thread.lock, TypeError)"]
    assert not model_identity(_holder(), (torch.zeros(1, 4),), dynamic_batch=False).unhashable


HASH_IN_A_NEW_PROCESS = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from tests.test_model_hash import _holder
from pytest_infercheck.model.under_test import content_hash
for names in ({"a", "b", "c"}, {"a", "b"}):  # a set: its order follows PYTHONHASHSEED
    print(content_hash(_holder(table={"names": names, "scale": 1.0}), (torch.zeros(1, 4),), dynamic_batch=False))
"""


def test_the_hash_is_the_same_in_every_process() -> None:
    """A cache hit needs it: no addresses, no hash randomisation, no file paths in it."""
    repo = str(Path(__file__).resolve().parents[1])
    runs = {subprocess.run([sys.executable, "-c", HASH_IN_A_NEW_PROCESS, repo], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1  # each model hashes alike under both seeds
    three, two = runs.pop().split()
    assert three != two  # and the set's content counts


def test_the_state_hash_follows_the_weights_alone() -> None:
    """Identity.state: the tensor values only. The gate reads a changed state as another model's error
    figures and a change of code alone as a change to judge (baseline/comparison.py)."""
    class Scaled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module, scale: float) -> None:
            super().__init__()
            self.inner, self.scale = inner, scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) * self.scale

    x = torch.randn(2, 64)
    torch.manual_seed(0)
    base = dynamic_mlp()
    same = model_identity(Scaled(base, 1.0), x, dynamic_batch=False)
    other_code = model_identity(Scaled(base, 2.0), x, dynamic_batch=False)
    torch.manual_seed(1)
    other_weights = model_identity(Scaled(dynamic_mlp(), 1.0), x, dynamic_batch=False)
    assert same.state and same.state == other_code.state and same.digest != other_code.digest
    assert other_weights.state != same.state and other_weights.digest != same.digest
