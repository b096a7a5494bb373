"""The audit's graph-break stage runs the forward (torch._dynamo.explain): on copies, as every other
stage does, so a forward that changes its input or its module in place leaves the user's alone."""

from __future__ import annotations

import torch
from torch import nn

from pytest_infercheck.audit.torch_stage import graph_break_findings


class MutatesAndBreaks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)
        self.norm = nn.BatchNorm1d(8)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mul_(2)
        self.calls += 1
        print("", end="")  # a graph break
        return self.linear(self.norm(x))


def test_graph_break_findings_change_neither_the_users_tensor_nor_the_model() -> None:
    model = MutatesAndBreaks().train()  # train mode: BatchNorm would update its running statistics
    x = torch.randn(4, 8) + 3
    x_before, state_before = x.clone(), {k: v.clone() for k, v in model.state_dict().items()}
    findings = graph_break_findings(model, (x,))
    assert any("graph break" in finding.reason for finding in findings), findings  # it did run the forward
    assert torch.equal(x, x_before), "the user's input was multiplied by the forward"
    for name, value in model.state_dict().items():
        assert torch.equal(value, state_before[name]), f"the user's {name} changed"
    assert model.training
