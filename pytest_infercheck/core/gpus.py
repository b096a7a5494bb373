"""One xdist worker per GPU: which GPU each worker gets, and which GPU a timing lock stands for.

With ``pytest -n N`` on a host with several GPUs, worker ``gwK`` is pinned to one GPU by setting
``CUDA_VISIBLE_DEVICES`` in its own process, in ``pytest_configure``, before any test runs: CUDA
reads the variable once, when the process first initialises it, so the pin must come before
anything touches CUDA (importing torch alone does not).  The GPUs are shared out round robin:
``gwK`` gets the ``K mod len(gpus)``-th, so N workers on G GPUs put ``ceil(N/G)`` workers on a GPU
at most, and the per-GPU timing lock keeps their timed loops from overlapping.

Nothing changes without xdist, on the xdist controller (it runs no test), or when fewer than two
GPUs are visible and ``--infer-gpus`` was not given.  Nothing here imports torch at import time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Any, Callable, Mapping, Optional, Sequence

VISIBLE = "CUDA_VISIBLE_DEVICES"
OPTION = "--infer-gpus"
_WORKER_ID = re.compile(r"^gw(\d+)$")


def visible_entries(value: Optional[str]) -> Optional[tuple[str, ...]]:
    """``CUDA_VISIBLE_DEVICES`` split into its entries (indices, ``GPU-``/``MIG-`` UUIDs); None when unset.

    CUDA ignores everything from the first invalid entry on; a negative index ("-1") is the usual
    way to hide every GPU, so the list stops there too.
    """
    if value is None:
        return None
    entries = []
    for part in value.split(","):
        part = part.strip()
        if not part or part.startswith("-"):
            break
        entries.append(part)
    return tuple(entries)


def nvidia_smi_count() -> Optional[int]:
    """How many GPUs the driver lists (``nvidia-smi -L``), asked in a child process so that this one
    never initialises CUDA; None when there is no driver tool or it cannot tell (MIG: see docs/multi-gpu.md)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        listing = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = listing.splitlines()
    if any(line.strip().startswith("MIG") for line in lines):
        return None  # MIG instances are what CUDA numbers, not the GPUs: name them in CUDA_VISIBLE_DEVICES
    return sum(1 for line in lines if line.startswith("GPU "))


def visible_gpus(environ: Mapping[str, str], count: Callable[[], Optional[int]] = nvidia_smi_count,
                 ) -> Optional[tuple[str, ...]]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries; None when it cannot be told."""
    entries = visible_entries(environ.get(VISIBLE))
    if entries is not None:
        return entries
    number = count()
    return None if number is None else tuple(str(index) for index in range(number))


def choose_gpus(chosen: Optional[Sequence[int]], visible: Optional[Sequence[str]]) -> tuple[str, ...]:
    """The ``CUDA_VISIBLE_DEVICES`` entries the workers share out; () leaves every worker as it is.

    ``chosen`` (``--infer-gpus``) indexes the visible GPUs, as CUDA numbers them inside this
    process; None means every visible GPU, and pins only when there are two or more.  When what is
    visible cannot be told (no ``nvidia-smi``), the indices are taken as they are.  An index past
    the visible GPUs raises ValueError naming the option.
    """
    if chosen is None:
        return tuple(visible) if visible is not None and len(visible) >= 2 else ()
    if visible is None:
        return tuple(str(index) for index in chosen)
    beyond = [index for index in chosen if index >= len(visible)]
    if beyond and not visible:
        raise ValueError(f"{OPTION}: no GPU is visible to this process ({VISIBLE} hides them all, or nvidia-smi "
                         f"lists none); drop {OPTION} or make the GPUs visible")
    if beyond:
        count = len(visible)
        raise ValueError(f"{OPTION}: GPU {', '.join(map(str, beyond))} is not visible: this process sees {count} "
                         f"GPU{'s' if count != 1 else ''} ({VISIBLE} or nvidia-smi: {', '.join(visible)}), which "
                         f"{OPTION} numbers {'0' if count == 1 else f'0 to {count - 1}'}")
    return tuple(visible[index] for index in chosen)


def assign_gpu(worker_id: str, gpus: Sequence[str]) -> str:
    """Round robin: xdist worker ``gwK`` gets ``gpus[K % len(gpus)]``."""
    match = _WORKER_ID.match(worker_id)
    if match is None:
        raise ValueError(f"{worker_id!r} is not an xdist worker id (gw0, gw1, ...)")
    if not gpus:
        raise ValueError("no GPU to assign")
    return gpus[int(match[1]) % len(gpus)]


def cuda_untouched() -> bool:
    """Whether CUDA can still be pinned in this process: torch not imported, or imported with CUDA uninitialised."""
    torch = sys.modules.get("torch")
    if torch is None:
        return True
    try:
        return not torch.cuda.is_initialized()
    except Exception:  # a torch stub or a broken install: nothing to spoil either
        return True


class PinTooLate(ValueError):
    """CUDA was initialised in the worker before the pin: it keeps every GPU visible and runs on its first."""


def pin_worker(worker_id: str, chosen: Optional[Sequence[int]], environ: "os._Environ[str] | dict[str, str]",
               count: Callable[[], Optional[int]] = nvidia_smi_count) -> Optional[str]:
    """Set ``CUDA_VISIBLE_DEVICES`` in ``environ`` to this worker's GPU; return the entry, or None when unchanged.

    Raises ValueError (naming the option) for an index past the visible GPUs, and PinTooLate when
    CUDA was initialised before the pin (a conftest or plugin touched it at import): the variable is
    then left alone, since CUDA would ignore it and the timing lock's fallback key would misname the GPU.
    """
    gpus = choose_gpus(chosen, visible_gpus(environ, count))
    if not gpus or not _WORKER_ID.match(worker_id):  # a worker that is not xdist's gwK: left as it is
        return None
    return _pin(assign_gpu(worker_id, gpus), f"worker {worker_id}", environ)


def pin_single_process(chosen: Sequence[int], environ: "os._Environ[str] | dict[str, str]",
                       count: Callable[[], Optional[int]] = nvidia_smi_count) -> str:
    """A run without xdist and with ``--infer-gpus``: the process runs on the first GPU chosen (what
    worker gw0 would get), so ``pytest --infer-gpus=1`` uses GPU 1. Same errors as ``pin_worker``."""
    return _pin(choose_gpus(chosen, visible_gpus(environ, count))[0], "this process", environ)


def _pin(entry: str, who: str, environ: "os._Environ[str] | dict[str, str]") -> str:
    if not cuda_untouched():
        raise PinTooLate(f"{OPTION}: CUDA was initialised in {who} before pytest-infercheck could pin it "
                         f"to GPU {entry}, so it runs on its first visible GPU (and its timed loops take turns with "
                         "any other process there); keep CUDA calls out of conftest.py and plugin import time")
    environ[VISIBLE] = entry
    return entry


def distributes(config: Any) -> bool:
    """Whether this process is an xdist controller that starts workers (``-n N``, ``--tx``)."""
    option = config.option
    return getattr(option, "dist", "no") != "no" and bool(getattr(option, "tx", None))


def configure(config: Any, chosen: Optional[Sequence[int]]) -> Optional[str]:
    """``plugin.pytest_configure``'s part, before any test: pin an xdist worker to its GPU; on a controller
    that starts workers, check an explicit ``--infer-gpus`` once (the controller runs no test and is left
    as it is).  Returns a usage error's text, or None.

    A run without xdist is left as it is unless ``--infer-gpus`` is given: it then runs on the first GPU
    listed (a warning says the others are unused), and an index past the visible GPUs is a usage error
    there too, never a silently ignored value.
    """
    import pytest

    workerinput = getattr(config, "workerinput", None)
    try:
        if workerinput is not None:
            pin_worker(str(workerinput.get("workerid", "")), chosen, os.environ)
        elif chosen is not None and distributes(config):
            choose_gpus(chosen, visible_gpus(os.environ))
        elif chosen is not None:
            entry = pin_single_process(chosen, os.environ)
            if len(chosen) > 1:
                config.issue_config_time_warning(pytest.PytestConfigWarning(
                    f"{OPTION}={','.join(map(str, chosen))} without pytest-xdist: one process runs on one GPU, "
                    f"GPU {chosen[0]} ({VISIBLE}={entry}); run with -n {len(chosen)} to use each GPU listed"),
                    stacklevel=2)
    except PinTooLate as late:
        config.issue_config_time_warning(pytest.PytestConfigWarning(str(late)), stacklevel=2)
    except ValueError as err:
        return str(err)
    return None


# -- the timing lock's key --------------------------------------------------------------------------


def gpu_lock_key(index: int, visible: Optional[str], uuid: Optional[str]) -> str:
    """Which physical GPU device ``index`` of this process is, as a lock key.

    Its UUID when CUDA gives one: the same GPU has the same UUID in every process however
    ``CUDA_VISIBLE_DEVICES`` names it.  Otherwise the ``CUDA_VISIBLE_DEVICES`` entry it stands
    for, or the index itself when the variable is unset (a pinned worker's "1" and an unpinned
    process's device 1 are then the same key).
    """
    if uuid:
        return uuid
    entries = visible_entries(visible)
    if entries is None or index >= len(entries):
        return str(index)
    return entries[index]


def device_uuid(index: int) -> Optional[str]:
    """The UUID of CUDA device ``index`` as nvidia-smi writes it (``GPU-...``), when torch can tell."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        text = str(torch.cuda.get_device_properties(index).uuid)
    except Exception:  # no CUDA, an older torch without uuid, ROCm oddities: the fallback key serves
        return None
    if not text:
        return None
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def nvml_handle(pynvml: Any, index: int) -> Any:
    """NVML's handle of CUDA device ``index``, found by its UUID when CUDA gives one: NVML numbers every
    GPU of the host and ignores CUDA_VISIBLE_DEVICES, so in an xdist worker pinned to GPU 1 its CUDA
    device 0 is NVML's 1. Both NVML readers (environment.py's facts, memory.py's figure) use this."""
    uuid = device_uuid(index)
    return pynvml.nvmlDeviceGetHandleByUUID(uuid.encode()) if uuid else pynvml.nvmlDeviceGetHandleByIndex(index)


def device_index(device: str) -> int:
    """``cuda:1`` -> 1; ``cuda`` -> the current device (0 unless torch was told otherwise)."""
    _, _, number = device.partition(":")
    if number.isdigit():
        return int(number)
    torch = sys.modules.get("torch")
    try:
        return int(torch.cuda.current_device()) if torch is not None else 0
    except Exception:
        return 0


def timing_lock_key(device: str) -> str:
    """The lock key of the GPU a timed loop on ``device`` runs on, in this process."""
    index = device_index(device)
    return gpu_lock_key(index, os.environ.get(VISIBLE), device_uuid(index))
