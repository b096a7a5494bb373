"""The hardware/software fingerprint that figures are tied to: CPU/GPU model, driver, library versions."""

from __future__ import annotations

import functools
import platform
import sys
from importlib import metadata
from typing import Any, Optional

# Beside every backend's own libraries (its descriptor's ``libraries``): the plugin and numpy.
OWN_LIBRARIES = ("pytest-infercheck", "numpy")


def fingerprint_libraries() -> tuple[str, ...]:
    """Every distribution whose version keys the engine cache and appears in the fingerprint."""
    from . import descriptors

    names = [*OWN_LIBRARIES, *(lib for d in descriptors().values() for lib in d.libraries)]
    return tuple(dict.fromkeys(names))


@functools.lru_cache(maxsize=None)  # installed versions cannot change under a running process
def library_versions() -> dict[str, str]:
    """Installed versions by distribution name (metadata only: nothing is imported)."""
    versions = {}
    for name in fingerprint_libraries():
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> Optional[dict[str, Any]]:
    """Name, compute capability, driver and current clocks of the CUDA device, when torch sees one."""
    if "torch" not in sys.modules:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    info: dict[str, Any] = {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_bytes": int(props.total_memory),
        "cuda_runtime": torch.version.cuda,
    }
    from ..core.gpus import device_uuid

    uuid = device_uuid(index)
    if uuid:  # which physical GPU, for the report (not in the machine key: two H100s time alike)
        info["uuid"] = uuid
    info.update(_nvml_facts(index))
    return info


def _nvml_facts(index: int) -> dict[str, Any]:
    """Driver and clocks through NVML when nvidia-ml-py is installed; nothing otherwise (the device
    found as gpus.nvml_handle finds it)."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return {}
    try:
        from ..core.gpus import nvml_handle

        pynvml.nvmlInit()
        handle = nvml_handle(pynvml, index)
        driver = pynvml.nvmlSystemGetDriverVersion()
        return {
            "driver": driver.decode() if isinstance(driver, bytes) else driver,
            "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "max_sm_clock_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
        }
    except Exception:  # NVML missing or refused inside a sandbox: the figures still stand
        return {}


def fingerprint() -> dict[str, Any]:
    """What a figure depends on beyond the model: machine and library versions."""
    gpu = gpu_info()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "gpu": gpu,
        "libraries": library_versions(),
    }
