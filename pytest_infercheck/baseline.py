"""The baseline file: what each item measured last time it was blessed, per machine.

One JSON file (``--infer-baseline=PATH``) holds a list of entries.  An entry is keyed by the
test id (pytest's node id, which includes the engine spec), the engine spec id and the
*machine key*: the part of ``environment.fingerprint()`` that moves the figures.  It keeps the
accuracy figures per output and up to ``MAX_SAMPLES`` latency samples, enough for the rank test
in regression.py.  One file can hold entries of several machines (the CPU CI runner and a GPU
runner); an item is compared only with an entry of the same machine key.

What the machine key holds, and why (docs/gate.md says the same):

- ``device`` and the CPU model and the number of CPUs this process may use: latency depends on
  them directly (ONNX Runtime sizes its thread pool from the CPU count).  The CPU stays in the
  key for GPU engines too, because launch overhead is host time that CUDA events see for an
  engine that is not a CUDA graph.
- for CUDA engines the GPU name, compute capability, CUDA runtime and (when NVML answers) the
  driver version.
- the versions of the libraries on the engine's path (torch for all; onnx, onnxscript and
  onnxruntime for ONNX Runtime; onnx, onnxscript and tensorrt for TensorRT; triton for the
  compiled PyTorch backends): a new release may change the graph, the kernels and the error.
- Not in the key: the Python patch version, the kernel and OS string (CI images move them weekly
  without changing a kernel's speed), GPU clocks (they vary from moment to moment) and
  pytest-infercheck's own version and numpy's.

Nothing writes the file unless ``--infer-baseline-update`` is given; then entries of the items
that ran are replaced or added, every other entry is kept, and the file is replaced atomically
under a lock so that concurrent updaters (on one machine) do not lose each other's entries.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import pytest

from .files import file_lock, write_atomic

SCHEMA = "pytest-infercheck-baseline"
VERSION = 1
MAX_SAMPLES = 500
# Libraries whose version changes what an engine computes or how fast: part of the machine key.
ENGINE_LIBRARIES = ("torch", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "tensorrt", "triton")
# Per backend, the ones on its path (torch always: it runs the reference and the exporters), so that
# bumping ONNX Runtime does not orphan the eager engine's entries.
BACKEND_LIBRARIES = {
    "eager": ("torch",),
    "inductor": ("torch", "triton"),
    "aoti": ("torch", "triton"),
    "onnxruntime": ("torch", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu"),
    "tensorrt": ("torch", "onnx", "onnxscript", "tensorrt"),
}
GPU_FACTS = ("name", "compute_capability", "cuda_runtime", "driver")


def machine_key(device: str, fingerprint: Optional[dict[str, Any]] = None, *,
                backend: Optional[str] = None) -> dict[str, Any]:
    """The facts an entry must share with this run to be compared with it (see the module doc)."""
    if fingerprint is None:
        from .environment import fingerprint as current_fingerprint

        fingerprint = current_fingerprint()
    kind = "cuda" if device.startswith("cuda") else device
    key: dict[str, Any] = {"device": kind, "cpu": fingerprint.get("cpu"), "cpus": usable_cpus()}
    gpu = fingerprint.get("gpu") or {}
    if kind == "cuda":
        key["gpu"] = {fact: gpu[fact] for fact in GPU_FACTS if gpu.get(fact) is not None}
    libraries = fingerprint.get("libraries") or {}
    wanted = BACKEND_LIBRARIES.get(backend or "", ENGINE_LIBRARIES)
    key["libraries"] = {name: libraries[name] for name in wanted if name in libraries}
    return key


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def key_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``["torch 2.12.0 -> 2.13.0", "cpu 'A' -> 'B'"]``: what differs, flattened, for a message."""
    flat_old, flat_new = _flatten(stored), _flatten(current)
    lines = []
    for name in sorted(set(flat_old) | set(flat_new)):
        old, new = flat_old.get(name, "absent"), flat_new.get(name, "absent")
        if old != new:
            lines.append(f"{name} {old} -> {new}")
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


def subsample(samples: Sequence[float], limit: int = MAX_SAMPLES) -> list[float]:
    """At most ``limit`` samples that keep the distribution: the sorted values at evenly spaced ranks.

    Deterministic (the same samples give the same subset), and it keeps the tails a random subset
    would often miss.  The time order is not kept; the rank test does not use it.
    """
    values = np.sort(np.asarray(samples, dtype=np.float64))
    if values.size <= limit:
        return [float(v) for v in values]
    picks = np.round(np.linspace(0, values.size - 1, limit)).astype(int)
    return [float(v) for v in values[picks]]


@dataclass
class Entry:
    """What one item measured on one machine when the baseline was last updated."""

    nodeid: str
    spec_id: str
    machine: dict[str, Any]
    accuracy: dict[str, dict[str, float]]  # output -> {max_abs, mean_abs, ...}
    latency: Optional[dict[str, Any]]  # {timer, count, p50_ms, p90_ms, p99_ms, samples_ms}
    model_hash: str = ""
    recorded: str = ""

    @property
    def samples_ms(self) -> list[float]:
        return list(self.latency["samples_ms"]) if self.latency else []

    def matches(self, nodeid: str, spec_id: str) -> bool:
        return self.nodeid == nodeid and self.spec_id == spec_id


@dataclass
class Lookup:
    """The entry for an item on this machine (``found``), or why there is none."""

    status: str  # found | missing | fingerprint-mismatch
    entry: Optional[Entry] = None
    differences: list[str] = field(default_factory=list)


class BaselineStore:
    """The entries of one baseline file, read once and validated."""

    def __init__(self, path: Path, entries: list[Entry], exists: bool) -> None:
        self.path = path
        self.entries = entries
        self.exists = exists

    @classmethod
    def load(cls, path: Path) -> "BaselineStore":
        """Read and validate ``path``; a missing file is an empty store, a broken one a usage error."""
        path = Path(path)
        if not path.exists():
            return cls(path, [], exists=False)
        try:
            text = path.read_text()
        except OSError as err:
            raise pytest.UsageError(f"baseline file {path}: cannot be read ({err.strerror or err})") from None
        return cls(path, parse_entries(path, text), exists=True)

    def lookup(self, nodeid: str, spec_id: str, machine: dict[str, Any]) -> Lookup:
        candidates = [entry for entry in self.entries if entry.matches(nodeid, spec_id)]
        for entry in candidates:
            if entry.machine == machine:
                return Lookup("found", entry)
        if not candidates:
            return Lookup("missing")
        closest = min(candidates, key=lambda entry: len(key_differences(entry.machine, machine)))
        return Lookup("fingerprint-mismatch", differences=key_differences(closest.machine, machine))


# -- reading and validating -----------------------------------------------------------------------


class _Invalid(Exception):
    pass


def parse_entries(path: Path, text: str) -> list[Entry]:
    """The file's entries; any problem is a UsageError naming the file, the entry and the field."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise pytest.UsageError(f"baseline file {path}: not valid JSON (line {err.lineno}, column {err.colno}: "
                                f"{err.msg}); fix it by hand, or delete it and run with --infer-baseline-update") from None
    try:
        return _validate_file(data)
    except _Invalid as err:
        raise pytest.UsageError(f"baseline file {path}: {err}; fix it by hand, or delete it and run with "
                                f"--infer-baseline-update") from None


def _validate_file(data: Any) -> list[Entry]:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise _Invalid(f"not a pytest-infercheck baseline (expected an object with \"schema\": \"{SCHEMA}\")")
    version = data.get("version")
    if version != VERSION:
        raise _Invalid(f"version {version!r} is not supported (this pytest-infercheck reads version {VERSION})")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list):
        raise _Invalid("\"entries\" must be a list")
    entries, seen = [], set()
    for index, raw in enumerate(raw_entries):
        where = f"entries[{index}]"
        if isinstance(raw, dict) and isinstance(raw.get("nodeid"), str):
            where += f" ({raw['nodeid']})"
        entry = _validate_entry(raw, where)
        identity = (entry.nodeid, entry.spec_id, json.dumps(entry.machine, sort_keys=True))
        if identity in seen:
            raise _Invalid(f"{where}: a second entry for the same test, engine and machine")
        seen.add(identity)
        entries.append(entry)
    return entries


def _validate_entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise _Invalid(f"{where}: expected an object, got {type(raw).__name__}")
    for name in ("nodeid", "spec_id"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise _Invalid(f"{where}: \"{name}\" must be a non-empty string")
    if not isinstance(raw.get("machine"), dict):
        raise _Invalid(f"{where}: \"machine\" must be an object")
    accuracy = raw.get("accuracy", {})
    if not isinstance(accuracy, dict):
        raise _Invalid(f"{where}: \"accuracy\" must be an object of outputs")
    for output, figures in accuracy.items():
        if not isinstance(figures, dict):
            raise _Invalid(f"{where}: accuracy.{output} must be an object of figures")
        for metric, value in figures.items():
            _check_number(value, f"{where}: accuracy.{output}.{metric}", positive=False)
    latency = raw.get("latency")
    if latency is not None:
        _validate_latency(latency, where)
    return Entry(nodeid=raw["nodeid"], spec_id=raw["spec_id"], machine=raw["machine"], accuracy=accuracy,
                 latency=latency, model_hash=str(raw.get("model_hash", "")), recorded=str(raw.get("recorded", "")))


def _validate_latency(latency: Any, where: str) -> None:
    if not isinstance(latency, dict):
        raise _Invalid(f"{where}: \"latency\" must be an object or null")
    samples = latency.get("samples_ms")
    if not isinstance(samples, list) or not samples:
        raise _Invalid(f"{where}: latency.samples_ms must be a non-empty list of milliseconds")
    for index, value in enumerate(samples):
        _check_number(value, f"{where}: latency.samples_ms[{index}]", positive=True)


def _check_number(value: Any, where: str, *, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > 0 if positive else value >= 0)
    if not ok:
        wanted = "a positive number" if positive else "a finite number >= 0"
        raise _Invalid(f"{where} is {value!r}, expected {wanted}")


# -- writing ---------------------------------------------------------------------------------------


@dataclass
class UpdateSummary:
    path: Path
    written: list[str]  # "nodeid" of the entries added or replaced
    kept: int  # entries of other items or machines left as they were
    not_written: list[str]  # "nodeid: why"


def entry_from_result(result: Any) -> Optional[Entry]:
    """The entry a finished CheckResult becomes, or None when it has nothing to bless."""
    machine = result.extra.get("machine")
    if machine is None or result.accuracy is None:
        return None
    accuracy = {output.name: {metric: float(getattr(output, metric)) for metric in ("max_abs", "mean_abs", "rel_l2")
                              if math.isfinite(getattr(output, metric))}
                for output in result.accuracy.outputs}
    latency = None
    if result.latency is not None and result.latency.samples_ms:
        lat = result.latency
        latency = {"timer": lat.timer, "count": lat.count, "p50_ms": _six(lat.p50_ms), "p90_ms": _six(lat.p90_ms),
                   "p99_ms": _six(lat.p99_ms), "samples_ms": [_six(v) for v in subsample(lat.samples_ms)]}
    return Entry(nodeid=result.nodeid, spec_id=result.spec_id, machine=machine, accuracy=accuracy, latency=latency,
                 model_hash=result.model_hash, recorded=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _six(value: float) -> float:
    """Six significant digits: far below timer resolution, and the file stays readable."""
    return float(f"{value:.6g}")


def why_not_written(result: Any) -> Optional[str]:
    """None when the result may replace its entry; else the reason (a broken engine is never blessed)."""
    if result.outcome == "skipped":
        return "skipped"
    if "machine" not in result.extra:
        return f"did not finish its check (stopped at {result.stage or 'an earlier stage'})"
    if result.outcome != "passed":
        return f"failed ({result.stage or 'test'}); a failing engine is not written into the baseline"
    return None


def update_baseline(path: Path, results: Sequence[Any]) -> UpdateSummary:
    """Replace or add the entries of ``results`` (the items that ran); keep every other entry."""
    path = Path(path)
    by_identity: dict[tuple[str, str, str], Entry] = {}
    not_written = []
    for result in results:
        reason = why_not_written(result)
        entry = entry_from_result(result) if reason is None else None
        if entry is None:
            not_written.append(f"{result.nodeid}: {reason or 'no figures to record'}")
        else:
            by_identity[_identity(entry)] = entry  # one entry per item: a rerun's result replaces the first
    fresh = list(by_identity.values())
    with _locked(path):
        # Re-read under the lock: another run may have written since this one started.
        current = BaselineStore.load(path).entries
        replaced = {_identity(entry) for entry in fresh}
        kept = [entry for entry in current if _identity(entry) not in replaced]
        write_entries(path, kept + fresh)
    return UpdateSummary(path, [entry.nodeid for entry in fresh], len(kept), not_written)


def _identity(entry: Entry) -> tuple[str, str, str]:
    return entry.nodeid, entry.spec_id, json.dumps(entry.machine, sort_keys=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An flock shared by every updater of ``path`` on this machine, kept in the temp dir (not beside the file,
    which usually sits in the user's repository)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with file_lock(Path(tempfile.gettempdir()) / f"pytest-infercheck-baseline-{digest}.lock"):
        yield


_NUMBER_LIST = re.compile(r"\[\s+(-?[0-9][0-9.eE+-]*(?:,\s+-?[0-9][0-9.eE+-]*)*)\s+\]")


def render(entries: Sequence[Entry]) -> str:
    """Indented JSON with each list of numbers on one line, so a diff of the file stays readable."""
    ordered = sorted(entries, key=lambda e: (e.nodeid, e.spec_id, json.dumps(e.machine, sort_keys=True)))
    data = {"schema": SCHEMA, "version": VERSION, "entries": [asdict(entry) for entry in ordered]}
    text = json.dumps(data, indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(part.strip() for part in m.group(1).split(",")) + "]", text) + "\n"


def write_entries(path: Path, entries: Sequence[Entry]) -> None:
    write_atomic(Path(path), render(entries))
