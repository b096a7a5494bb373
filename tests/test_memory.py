"""Device memory per engine: method choice on this CPU machine, and the arithmetic with a fake reader."""

from __future__ import annotations

from pytest_infercheck.core.jsonsafe import json_safe
from pytest_infercheck.measure.memory import DeviceMemoryTracker, choose_reader, torch_allocator_figures


def test_cpu_has_no_device_memory_figure() -> None:
    assert choose_reader("cpu") is None
    assert DeviceMemoryTracker.start("cpu") is None
    assert torch_allocator_figures("cpu") == (None, None)


def test_cuda_without_a_gpu_gives_no_figure() -> None:
    import torch

    if torch.cuda.is_available():  # on a GPU machine the method is real: see the GPU benchmark
        assert choose_reader("cuda")[0] in ("nvml-process", "cuda-mem-get-info")
    else:
        assert choose_reader("cuda") is None


def test_deltas_over_the_level_before_the_build() -> None:
    levels = iter([500, 800, 1300])  # FAKE reader (no GPU here): before the build, after it, after running
    tracker = DeviceMemoryTracker("cuda-mem-get-info", lambda: next(levels))
    tracker.before = tracker.read()
    tracker.mark_build()
    memory = tracker.result(torch_peak_bytes=100, torch_reserved_bytes=2**20)
    assert (memory.build_bytes, memory.run_bytes) == (300, 800)
    assert memory.note.startswith("device-wide")
    assert "build +0.0 MiB" in memory.describe() and "reserved 1.0 MiB" in memory.describe()
    assert json_safe(memory)["method"] == "cuda-mem-get-info"


def test_a_missing_reading_stays_missing() -> None:
    tracker = DeviceMemoryTracker("nvml-process", lambda: None)  # FAKE: NVML lost sight of the process
    tracker.before = tracker.read()
    tracker.mark_build()
    memory = tracker.result()
    assert memory.build_bytes is None and memory.run_bytes is None and memory.note == ""
    assert "build +-" in memory.describe()
