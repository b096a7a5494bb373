"""How many threads an engine may use on the CPU, and applying that to torch and ONNX Runtime.

Why: torch and ONNX Runtime each default to one intra-op thread per core.  On a 2-core runner
where other work (another xdist worker, the exporter in another process, a neighbour's job) holds a
core, a parallel region waits for its slowest thread, which the OS has descheduled: the demo's
small CNN went from p50 0.56 ms to 88 ms under Inductor, and a tiny encoder's eager p50 from 0.6 ms
to 192 ms (docs/benchmarks.md).  Fewer threads than free cores keeps every timing's threads running.

The count is ``--infer-threads`` (``auto`` by default): the usable physical cores (CPU affinity,
cgroup quota, hyper-threads counted once), divided among the xdist workers, less one core left for
everything else; at least one.  It applies while a check runs on the
CPU: ``torch.set_num_threads`` (restored afterwards), and ONNX Runtime sessions made meanwhile read
it through ``active_threads()`` (``configure_session``).
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

AUTO = "auto"
_active: Optional[int] = None  # the thread count of the check running now, for sessions made meanwhile


class ThreadsError(ValueError):
    """A thread count that does not parse (the options module turns it into a usage error)."""


def parse_threads(value: Any) -> Any:
    """``auto`` or a positive integer."""
    text = str(value).strip().lower()
    if text == AUTO:
        return AUTO
    try:
        count = int(text)
    except ValueError:
        raise ThreadsError(f"{value!r} is not a thread count; use a positive integer or 'auto'") from None
    if not 1 <= count <= 4096:
        raise ThreadsError(f"{value!r}: use a positive integer or 'auto' (at most 4096)")
    return count


def usable_cores() -> int:
    """Physical cores this process may run on: affinity, hyper-thread siblings counted once, cgroup quota."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = {_core_of(cpu) for cpu in cpus}
    quota = _cgroup_quota()
    return max(1, min(len(cores), quota) if quota else len(cores))


def _core_of(cpu: int) -> str:
    """A name shared by the hyper-threads of one core (the CPU itself when the topology is unknown)."""
    try:
        return Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
    except OSError:
        return str(cpu)


def _cgroup_quota() -> Optional[int]:
    """Cores allowed by a cgroup v2 CPU quota (containers, CI runners), rounded up; None without one."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def usable_cpus() -> int:
    """Logical CPUs this process may run on: its affinity, under a cgroup quota (hyper-threads each count)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    return min(available, quota) if quota else available


def xdist_workers() -> int:
    return max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))


def resolve_threads(setting: Any, *, cores: Optional[int] = None, workers: Optional[int] = None) -> int:
    """The thread count for ``setting`` (``auto`` or an integer)."""
    if setting != AUTO and setting is not None:
        return int(setting)
    cores = usable_cores() if cores is None else cores
    workers = xdist_workers() if workers is None else workers
    # One core of each worker's share is left to everything else (the OS, a neighbour, the other
    # workers' exports): a timing's threads then rarely wait for a descheduled sibling.
    return max(1, cores // workers - 1)


COMPILE_THREADS = "TORCHINDUCTOR_COMPILE_THREADS"


def share_compile_threads(environ: Any, workers: int, cpus: Optional[int] = None) -> Optional[int]:
    """In an xdist worker, before torch is imported: Inductor's compile subprocesses for this worker,
    its share of the CPUs (``TORCHINDUCTOR_COMPILE_THREADS``), unless the user set that variable.

    Inductor starts one compile subprocess per CPU (at most 32) in every process that compiles: two
    workers on a 32-CPU host started 64, all importing torch at once, and compiled side by side
    (BERT-base's builds took 10-11 s alone, 14-16 s beside another worker's on the H200 pair).
    Returns the count set, or None when the user's value (or one worker) leaves it alone.
    """
    if COMPILE_THREADS in environ or workers < 2:
        return None
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, min(32, cpus) // workers)
    environ[COMPILE_THREADS] = str(share)
    # Inductor reads the variable when its config is imported: a conftest that imported torch._dynamo
    # (or Inductor) before this hook ran has it already, so it is told directly too.
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:
        setattr(inductor_config, "compile_threads", share)  # noqa: B010 (a module found at run time)
    return share


def active_threads() -> Optional[int]:
    """The thread count of the CPU check running now (None outside one: libraries' defaults apply)."""
    return _active


@contextmanager
def cpu_threads(count: Optional[int]) -> Iterator[None]:
    """torch's intra-op threads at ``count`` for the block, and ``active_threads()`` saying so."""
    global _active
    if count is None:
        yield
        return
    import torch

    saved, saved_active = torch.get_num_threads(), _active
    torch.set_num_threads(count)
    _active = count
    try:
        yield
    finally:
        torch.set_num_threads(saved)
        _active = saved_active


def configure_session(options: Any, threads: Optional[int] = None) -> Any:
    """ONNX Runtime ``SessionOptions`` for ``threads`` (default: the active count), on the CPU.

    One intra-op pool of ``threads`` (the caller's thread counts as one), no inter-op pool, and no
    spinning: ONNX Runtime's idle pool threads otherwise spin after each run and take the core the
    next timed call (or the next engine's timing) needs.
    """
    threads = active_threads() if threads is None else threads
    if threads is None:
        return options
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options
