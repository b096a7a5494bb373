"""The CUDA graph wrapper and the GPU timer on their own (`pytest -m gpu`; skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from fixtures.models import small_cnn
from pytest_infercheck.backends.torch_engine import TorchEngine
from pytest_infercheck.backends.cudagraphs import CudaGraphEngine, CudaGraphError, largest_difference, wrap_for_graphs

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu_check.sh)")]


def cnn_engine(dtype: torch.dtype = torch.float16) -> TorchEngine:
    torch.manual_seed(0)
    return TorchEngine(small_cnn().to("cuda", dtype), "cuda", dtype)


def test_replay_equals_the_same_engine_without_a_graph_on_fresh_inputs() -> None:
    plain = cnn_engine()
    graphed = CudaGraphEngine(cnn_engine())
    graphed.prepare([torch.randn(4, 3, 32, 32)])  # captures
    assert graphed.graph_difference is not None and graphed.graph_difference <= 1.0
    for _ in range(3):  # new data each time: the copy into the static inputs must take effect
        inputs = [torch.randn(4, 3, 32, 32)]
        expected = plain.to_numpy(plain.run(plain.prepare(inputs)))
        got = graphed.to_numpy(graphed.run(graphed.prepare(inputs)))
        assert largest_difference([torch.from_numpy(got[0]).half()], [torch.from_numpy(expected[0]).half()]) <= 1.0


def test_the_graph_runs_on_its_own_stream_which_the_timer_uses() -> None:
    graphed = wrap_for_graphs(cnn_engine(), True)
    assert isinstance(graphed, CudaGraphEngine)
    assert graphed.stream is not None and graphed.stream != torch.cuda.current_stream()
    assert wrap_for_graphs(cnn_engine(), False).__class__ is TorchEngine


def test_another_input_shape_is_refused_with_both_shapes() -> None:
    graphed = CudaGraphEngine(cnn_engine())
    graphed.prepare([torch.randn(4, 3, 32, 32)])
    with pytest.raises(CudaGraphError, match=r"captured for input shapes \[\(4, 3, 32, 32\)\].*\(8, 3, 32, 32\)"):
        graphed.run(graphed.inner.prepare([torch.randn(8, 3, 32, 32)]))


def test_a_host_synchronisation_cannot_be_captured() -> None:
    class SyncsWithHost(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * float(x.abs().max())  # .item() under capture

    graphed = CudaGraphEngine(TorchEngine(SyncsWithHost(), "cuda", torch.float32))
    with pytest.raises(CudaGraphError, match="cannot be captured into a CUDA graph"):
        graphed.prepare([torch.randn(4, 4)])
    # The failed capture leaves the device usable for the next item.
    assert float((torch.ones(2, device="cuda") * 2).sum()) == 4.0


def test_cuda_event_timer_reports_device_time_and_peak_memory() -> None:
    from pytest_infercheck.measure.timing import CudaEventTimer, TimingPlan

    graphed = CudaGraphEngine(cnn_engine())
    prepared = graphed.prepare([torch.randn(4, 3, 32, 32)])
    stats = CudaEventTimer(graphed.stream).measure(lambda: graphed.run(prepared), TimingPlan(5, 50, 500, 0.05),
                                                   batch_size=4)
    assert stats.count >= 50 and 0 < stats.p50_ms <= stats.p99_ms
    assert stats.peak_memory_bytes > 0 and stats.timer == "cuda-events"


def test_gpu_artifacts_are_keyed_by_gpu_name_and_compute_capability() -> None:
    from pytest_infercheck.backends.artifacts import device_target

    props = torch.cuda.get_device_properties(0)
    assert device_target("cuda") == f"cuda:{props.name}:sm_{props.major}{props.minor}"
    assert device_target("cpu") == "cpu"
