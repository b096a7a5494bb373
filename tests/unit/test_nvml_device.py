"""Both NVML readers find a CUDA device by its UUID: NVML numbers every GPU of the host and ignores
CUDA_VISIBLE_DEVICES, so a worker pinned to physical GPU 1 (its CUDA device 0) once read GPU 0's
memory in memory.py while environment.py reported GPU 1 (a fake pynvml stands in: no GPU here)."""

from __future__ import annotations

import sys
import types

import pytest

from pytest_infercheck.core import gpus
from pytest_infercheck.measure import memory


def fake_pynvml(calls: list[tuple[str, object]]) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: None  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByUUID = lambda uuid: calls.append(("uuid", uuid)) or f"handle:{uuid!r}"  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda index: calls.append(("index", index)) or f"handle:{index}"  # type: ignore[attr-defined]
    module.nvmlDeviceGetComputeRunningProcesses = lambda handle: []  # type: ignore[attr-defined]
    return module


def test_the_memory_reader_finds_the_device_by_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, object]] = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(calls))
    monkeypatch.setattr(gpus, "device_uuid", lambda index: "GPU-physical-1" if index == 0 else None)
    memory.nvml_process_reader(0)
    assert calls == [("uuid", b"GPU-physical-1")]


def test_without_a_uuid_the_index_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(gpus, "device_uuid", lambda index: None)
    gpus.nvml_handle(fake_pynvml(calls), 3)
    assert calls == [("index", 3)]
