"""What a baseline entry is tied to, spelt once: the machine key and the entry's identity.

An entry is found by its *identity* (test id, check within the test, engine) and applied only where
its *machine key* equals this run's: the part of ``environment.fingerprint()`` that moves figures.

- ``device`` and the CPU model and the number of CPUs this process may use: latency depends on
  them directly (ONNX Runtime sizes its thread pool from the CPU count).  The CPU stays in the key
  for GPU engines too, because launch overhead is host time that CUDA events see for an engine
  that is not a CUDA graph.
- for CUDA engines the GPU name, compute capability, CUDA runtime and (when NVML answers) the
  driver version.
- the versions of the libraries on the engine's path: its backend descriptor's ``libraries``
  (backends/), so bumping ONNX Runtime does not orphan the eager engine's entries, and a new
  backend's libraries key its entries without a change here.
- Not in the key: the Python patch version, the kernel and OS string (CI images move them weekly
  without changing a kernel's speed), GPU clocks (they vary from moment to moment) and
  pytest-infercheck's own version and numpy's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Optional

GPU_FACTS = ("name", "compute_capability", "cuda_runtime", "driver")


@dataclass(frozen=True)
class EntryIdentity:
    """Which check an entry belongs to: the test, the check within it, the engine.

    ``check`` tells apart several checks in one test (two models, or one model twice): the model's
    name, or the ``name=`` the user gave, with ``#2``, ``#3`` for repeats.  Entries written before
    checks were named (baseline version 1) have an empty ``check`` and stand for the test's first.
    """

    nodeid: str
    check: str
    spec_id: str

    def matches(self, other: "EntryIdentity") -> bool:
        if (self.nodeid, self.spec_id) != (other.nodeid, other.spec_id):
            return False
        return self.check == other.check or (not self.check and "#" not in other.check) or (
            not other.check and "#" not in self.check)

    def describe(self) -> str:
        return f"{self.nodeid}" + (f" ({self.check})" if self.check else "")


def machine_key(device: str, fingerprint: Optional[dict[str, Any]] = None, *,
                backend: Optional[str] = None) -> dict[str, Any]:
    """The facts an entry must share with this run to be compared with it (see the module doc)."""
    if fingerprint is None:
        from ..backends.environment import fingerprint as current_fingerprint

        fingerprint = current_fingerprint()
    kind = "cuda" if device.startswith("cuda") else device
    key: dict[str, Any] = {"device": kind, "cpu": fingerprint.get("cpu"), "cpus": usable_cpus()}
    gpu = fingerprint.get("gpu") or {}
    if kind == "cuda":
        key["gpu"] = {fact: gpu[fact] for fact in GPU_FACTS if gpu.get(fact) is not None}
    libraries = fingerprint.get("libraries") or {}
    key["libraries"] = {name: libraries[name] for name in engine_libraries(backend) if name in libraries}
    return key


def engine_libraries(backend: Optional[str]) -> tuple[str, ...]:
    """The libraries whose versions key ``backend``'s entries (all backends' for None or an unknown one)."""
    from ..backends import descriptors

    known = descriptors()
    if backend in known:
        return known[backend].libraries
    return tuple(dict.fromkeys(lib for descriptor in known.values() for lib in descriptor.libraries))


def machine_text(machine: dict[str, Any]) -> str:
    """A canonical text of a machine key: two keys are the same machine when these are equal."""
    return json.dumps(machine, sort_keys=True)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def key_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``["torch 2.12.0 -> 2.13.0", "cpu 'A' -> 'B'"]``: what differs, flattened, for a message.  Never empty
    for two keys that differ: values that print alike are shown by their repr (``cpus '2' -> 2``), and keys
    that differ only in their layout (``gpu: {}`` against no ``gpu``) say so."""
    flat_old, flat_new = _flatten(stored), _flatten(current)
    lines = []
    for name in sorted(set(flat_old) | set(flat_new)):
        old, new = flat_old.get(name, "absent"), flat_new.get(name, "absent")
        if old != new:
            alike = str(old) == str(new)
            lines.append(f"{name} {old!r} -> {new!r}" if alike else f"{name} {old} -> {new}")
    if not lines and machine_text(stored) != machine_text(current):
        lines.append(f"the key's layout {machine_text(stored)} -> {machine_text(current)}")
    return lines


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested facts as ``gpu.name: ...``; libraries by their own name (``torch: 2.13.0``)."""
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, "" if name == "libraries" else f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat
