"""What one test item checks (an engine specification and its readable id), and the enums results use.

Plain data: nothing here imports torch, a backend or the registry.  Reading an engine id back
(``backends.engine_spec``) needs the registry's backend names, so it lives there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from itertools import product
from typing import Iterable, Optional


class TextEnum(str, Enum):
    """An enum whose members are their value as text: in f-strings, JSON and comparisons with str."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Precision(TextEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    FP8 = "fp8"  # E4M3 (torchao, on GPUs of compute capability 8.9+)


class Outcome(TextEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    XFAILED = "xfailed"  # the item's final outcome, read off pytest's report on the controller
    XPASSED = "xpassed"


class Stage(TextEnum):
    """Where a check stopped, in flow order (check/flow.py); TEST is the user's own code after the check."""

    AVAILABILITY = "availability"
    INPUTS = "inputs"
    MODEL = "model"  # the model itself cannot be used as given (a copy cannot be made)
    OUTPUTS = "outputs"  # its outputs cannot be compared (no tensor, a cache object)
    REFERENCE = "reference"
    EXPORT = "export"
    AUDIT = "audit"
    CALIBRATION = "calibration"
    BUILD = "build"
    CUDA_GRAPH = "cuda-graph"
    RUN = "run"
    ACCURACY = "accuracy"
    DYNAMIC_BATCH = "dynamic batch"
    LATENCY = "latency"
    REGRESSION = "regression"
    BASELINE = "baseline"
    TEST = "test"


PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision)
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True, order=True)
class EngineSpec:
    """One engine to build and check: backend x precision x CUDA Graphs.

    The device is not part of the spec: it is a property of the run (``--infer-device``),
    so the same test id means the same engine on every machine.
    """

    backend: str
    precision: str
    cuda_graphs: bool = False

    @property
    def id(self) -> str:
        suffix = "-cudagraph" if self.cuda_graphs else ""
        return f"{self.backend}-{self.precision}{suffix}"

    def __str__(self) -> str:
        return self.id


def expand_specs(
    backends: Iterable[str], precisions: Iterable[str], cuda_graphs: Iterable[bool]
) -> list[EngineSpec]:
    """The cartesian product, in the order the user listed things, without duplicates."""
    seen: dict[EngineSpec, None] = {}
    for backend, precision, graphs in product(backends, precisions, cuda_graphs):
        seen.setdefault(EngineSpec(backend, precision, graphs), None)
    return list(seen)
