"""Device memory an engine holds, every allocator included, beside torch's allocator figure.

torch.cuda.max_memory_allocated sees torch's caching allocator only: ONNX Runtime's arena,
TensorRT's engine and context memory, cuBLAS/cuDNN workspaces and the CUDA graph pools of other
libraries are invisible to it.  Two ways to see them, in order of preference:

* ``nvml-process``: NVML's per-process figure (pynvml, optional): memory the driver has given this
  process on the device.  Only this process; needs the process to be visible to NVML (in some
  containers it is not, and the next method is used).
* ``cuda-mem-get-info``: ``total - free`` from ``torch.cuda.mem_get_info`` (cudaMemGetInfo):
  device-wide, so another process's allocations in between count too.

Figures are levels after the build and after running, minus the level before the build: what the
engine added and kept (arenas and caches grow and stay, so the level after timing is the run's
high-water mark for all of them except torch's, whose own peak is reported beside it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

Reader = Callable[[], Optional[int]]


@dataclass(frozen=True)
class DeviceMemory:
    method: str  # nvml-process | cuda-mem-get-info
    build_bytes: Optional[int]  # in use after the build, over the level before it
    run_bytes: Optional[int]  # in use after running and timing, over the level before the build
    torch_peak_bytes: Optional[int] = None  # torch's caching allocator, max_memory_allocated while timing
    torch_reserved_bytes: Optional[int] = None  # what torch's allocator holds from the device
    note: str = ""

    def describe(self) -> str:
        return (f"device memory ({self.method}): build +{_mib(self.build_bytes)}, after running +{_mib(self.run_bytes)}; "
                f"torch allocator peak {_mib(self.torch_peak_bytes)}, reserved {_mib(self.torch_reserved_bytes)}")

def _mib(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _device_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def nvml_process_reader(index: int) -> Optional[Reader]:
    """Bytes this process holds on GPU ``index`` per NVML; None when pynvml or the process's entry is missing."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        from ..core.gpus import nvml_handle

        pynvml.nvmlInit()
        handle = nvml_handle(pynvml, index)  # by UUID: NVML's index is not CUDA's under CUDA_VISIBLE_DEVICES
    except Exception:  # no driver, no such device: the fallback decides
        return None
    pid = os.getpid()

    def read() -> Optional[int]:
        for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if process.pid == pid and process.usedGpuMemory is not None:
                return int(process.usedGpuMemory)
        return None

    try:
        return read if read() is not None else None  # a container may hide our pid from NVML
    except Exception:
        return None


def mem_get_info_reader(index: int) -> Reader:
    import torch

    def read() -> int:
        free, total = torch.cuda.mem_get_info(index)
        return int(total - free)

    return read


def choose_reader(device: str) -> Optional[tuple[str, Reader]]:
    """The best method available for ``device``; None on the CPU or without CUDA."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    index = _device_index(device)
    torch.cuda.init()  # the context first: its own memory is not the engine's
    nvml = nvml_process_reader(index)
    if nvml is not None:
        return "nvml-process", nvml
    return "cuda-mem-get-info", mem_get_info_reader(index)


class DeviceMemoryTracker:
    """``start()`` before the build, ``mark_build()`` after it, ``result()`` after timing."""

    def __init__(self, method: str, read: Reader, *, synchronize: Callable[[], None] = lambda: None) -> None:
        self.method, self.read, self.synchronize = method, read, synchronize
        self.before: Optional[int] = None
        self.after_build: Optional[int] = None

    @classmethod
    def start(cls, device: str) -> Optional["DeviceMemoryTracker"]:
        chosen = choose_reader(device)
        if chosen is None:
            return None
        import torch

        tracker = cls(*chosen, synchronize=torch.cuda.synchronize)
        tracker.synchronize()
        tracker.before = tracker.read()
        return tracker

    def mark_build(self) -> None:
        self.synchronize()
        self.after_build = self.read()

    def result(self, *, torch_peak_bytes: Optional[int] = None,
               torch_reserved_bytes: Optional[int] = None) -> DeviceMemory:
        self.synchronize()
        now = self.read()
        note = "device-wide: other processes' allocations count too" if self.method == "cuda-mem-get-info" else ""
        return DeviceMemory(self.method, _delta(self.after_build, self.before), _delta(now, self.before),
                            torch_peak_bytes, torch_reserved_bytes, note)


def _delta(after: Optional[int], before: Optional[int]) -> Optional[int]:
    return None if after is None or before is None else after - before


def torch_allocator_figures(device: str) -> tuple[Optional[int], Optional[int]]:
    """(max_memory_allocated, memory_reserved) of torch's caching allocator on ``device``."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None, None
    return int(torch.cuda.max_memory_allocated(device)), int(torch.cuda.memory_reserved(device))
