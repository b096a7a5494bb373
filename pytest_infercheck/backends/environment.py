"""The hardware/software fingerprint that figures are tied to: CPU/GPU model, driver, library versions."""

from __future__ import annotations

import functools
import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path
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


# The plugin's own code that makes an engine: the backends and the model stages (export, precision
# recipes, calibration, inputs).  Its version alone does not say the code: two commits of one version
# (an editable install, a branch under test) would share entries one of them may not have built alike.
ENGINE_CODE = ("backends", "model", "core/spec.py")


@functools.lru_cache(maxsize=None)  # the plugin's files do not change under a running process
def engine_code_digest() -> str:
    """The digest of this plugin's engine-making code: part of the engine cache key, so that an entry
    built by other plugin code is not loaded (about 30 files, read once per process)."""
    return code_digest(Path(__file__).resolve().parents[1])


def code_digest(package: Path) -> str:
    """SHA-256 (first 16 hex digits) of ``package``'s ENGINE_CODE files, names and contents, in path order
    ("unreadable" where they cannot be read, as in a zipped install: the version then stands alone)."""
    digest = hashlib.sha256()
    try:
        for path in engine_code_files(package):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:
        return "unreadable"
    return digest.hexdigest()[:16]


def engine_code_files(package: Path) -> list[Path]:
    files: list[Path] = []
    for part in ENGINE_CODE:
        target = package / part
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return sorted(files)


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
