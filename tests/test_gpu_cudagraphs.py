"""The CUDA graph wrapper and the GPU timer on their own (`pytest -m gpu`; skipped without CUDA)."""

from __future__ import annotations

import inspect
import re

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


def line_of(function: object, code: str) -> str:
    """``file:line`` of the line of ``function``'s source that holds ``code``, the file as failures show it
    (relative to the working directory where it is below it)."""
    from pytest_infercheck.core.failure_location import shown_path

    lines, start = inspect.getsourcelines(function)  # type: ignore[arg-type]
    file = shown_path(str(inspect.getsourcefile(function)))  # type: ignore[arg-type]
    return f"{file}:{start + next(i for i, line in enumerate(lines) if code in line)}"


class ItemInForward(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.abs().max().item()  # a host synchronisation under capture


class CopyFromHostInForward(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.arange(x.shape[-1], dtype=x.dtype).to(x.device)  # a CPU tensor copied in under capture


class CaughtCaptureError(torch.nn.Module):
    """The capture's first error caught in the model, as a library's fallback might: a later call fails with
    only 'operation failed due to a previous error during capture' (BART's form in the newcomer trial)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            scale = float(x.abs().max())  # the first host synchronisation
        except RuntimeError:
            scale = 1.0
        return x * scale


def capture_failure(model: torch.nn.Module) -> str:
    graphed = CudaGraphEngine(TorchEngine(model, "cuda", torch.float32))
    with pytest.raises(CudaGraphError) as failure:
        graphed.prepare([torch.randn(4, 4)])
    # The probe restored torch's sync debug mode, and the caller's stream is current again.
    assert torch.cuda.get_sync_debug_mode() == 0
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    return str(failure.value)


def test_an_item_call_in_forward_is_named_at_the_models_line() -> None:
    lines = capture_failure(ItemInForward()).splitlines()
    assert lines[0] == "the engine cannot be captured into a CUDA graph:"
    assert lines[1] == f"at {line_of(ItemInForward.forward, '.item()')} in forward: " \
                       "return x * x.abs().max().item()  # a host synchronisation under capture"
    assert any(line.startswith("the same line is the first to synchronise with the host") for line in lines)


def test_a_copy_from_host_in_forward_is_named_at_the_models_line() -> None:
    lines = capture_failure(CopyFromHostInForward()).splitlines()
    assert lines[1].startswith(f"at {line_of(CopyFromHostInForward.forward, 'arange')} in forward: return x + ")
    assert "CPU" in lines[2]  # torch's "Cannot copy between CPU and CUDA tensors during CUDA graph capture ..."


def test_a_capture_error_caught_in_the_model_is_found_by_the_sync_debug_probe() -> None:
    message = capture_failure(CaughtCaptureError())
    lines = message.splitlines()
    assert lines[1] == f"at {line_of(CaughtCaptureError.forward, 'float(')} in forward: " \
                       "scale = float(x.abs().max())  # the first host synchronisation"
    assert lines[2].startswith("the first call that synchronises with the host when the forward runs again")
    # torch >= 2.9 raises CUDA errors as torch.AcceleratorError, a RuntimeError (on the H100 at torch 2.11: "CUDA
    # error: operation failed due to a previous error during capture")
    said = re.match(r"the capture's error: (\w+): ", lines[3])
    assert said is not None and said[1] in ("RuntimeError", "AcceleratorError"), message
    assert issubclass(getattr(torch, said[1], RuntimeError), RuntimeError) and "capture" in lines[3], message


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
