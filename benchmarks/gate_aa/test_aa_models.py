"""The models benchmarks/gate_aa.py times in separate processes: three the repository's tests do not
use, each through CUDA-graph and launch-bound engines (on CUDA), or eager and ONNX Runtime (CPU)."""

import os

import pytest
import torch

ON_CUDA = torch.cuda.is_available()
ENGINES = (["eager-fp32", "eager-fp16", "eager-fp16-cudagraph", "inductor-fp16", "inductor-fp16-cudagraph"]
           if ON_CUDA else ["eager-fp32", "onnxruntime-fp32"])
pytestmark = pytest.mark.infercheck(engines=ENGINES)


class ConvMixer(torch.nn.Module):
    """A ConvMixer-style CNN (depthwise + pointwise blocks): many small kernels."""

    def __init__(self, width: int = 64, depth: int = 6) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, width, 4, stride=4), torch.nn.GELU(),
                                        torch.nn.BatchNorm2d(width))
        self.blocks = torch.nn.ModuleList(torch.nn.Sequential(
            torch.nn.Conv2d(width, width, 5, padding=2, groups=width), torch.nn.GELU(), torch.nn.BatchNorm2d(width),
            torch.nn.Conv2d(width, width, 1), torch.nn.GELU(), torch.nn.BatchNorm2d(width)) for _ in range(depth))
        self.head = torch.nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x.mean(dim=(2, 3)))


class TinyDecoder(torch.nn.Module):
    """A 4-layer pre-norm transformer decoder with a causal mask: launch-bound at batch 1."""

    def __init__(self, dim: int = 128, layers: int = 4) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(1000, dim)
        layer = torch.nn.TransformerEncoderLayer(dim, 4, dim * 4, dropout=0.0, batch_first=True, norm_first=True)
        self.layers = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = torch.nn.Linear(dim, 1000)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = torch.nn.Transformer.generate_square_subsequent_mask(ids.shape[1], device=ids.device)
        return self.out(self.layers(self.embed(ids), mask=mask, is_causal=True))


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 1024),
                               torch.nn.GELU(), torch.nn.Linear(1024, 256))


def test_convmixer(infercheck):
    torch.manual_seed(0)
    infercheck(ConvMixer().eval(), torch.randn(8, 3, 64, 64))


def test_tiny_decoder(infercheck):
    torch.manual_seed(0)
    infercheck(TinyDecoder().eval(), torch.randint(0, 1000, (1, 32)))


def test_mlp(infercheck):
    torch.manual_seed(0)
    infercheck(mlp().eval(), torch.randn(16, 512))
