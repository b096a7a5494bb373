"""What one test item checks (an engine specification and its readable id), and the enums results use.

Nothing here imports torch or a backend: the backend names come from the registry
(``backends.names()``), which reads each backend's descriptor.
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

    @classmethod
    def from_id(cls, spec_id: str) -> "EngineSpec":
        """``onnxruntime-fp16-cudagraph`` -> EngineSpec; backend names may hold dashes (``tensorrt-rtx``)."""
        from .backends import names

        text = spec_id.strip().lower()
        cuda_graphs = text.endswith("-cudagraph")
        if cuda_graphs:
            text = text[: -len("-cudagraph")]
        backend, _, precision = text.rpartition("-")
        if backend not in names() or precision not in PRECISIONS:
            raise ValueError(
                f"{spec_id!r} is not an engine id; expected <backend>-<precision>[-cudagraph] "
                f"with backend in {', '.join(names())} and precision in {', '.join(PRECISIONS)}"
            )
        return cls(backend, precision, cuda_graphs)


def split_item_id(nodeid: str) -> tuple[str, Optional[EngineSpec]]:
    """An item's node id without its engine id, and that engine's spec.

    ``t.py::test_a[8-inductor-fp16-cudagraph]`` -> (``t.py::test_a[8]``, inductor-fp16-cudagraph): the
    test's own parameters (a model repo's batch sizes) stay, on either side of the engine id, so that
    tables, reports and schedulers tell one parameter set from another. A node id with no engine id
    in it comes back whole, with None."""
    head, bracket, rest = nodeid.partition("[")
    if not bracket or not rest.endswith("]"):
        return nodeid, None
    parts = rest[:-1].split("-")
    for start in range(len(parts)):
        for end in range(len(parts), start, -1):  # longest first: "-cudagraph" belongs to the engine id
            try:
                spec = EngineSpec.from_id("-".join(parts[start:end]))
            except ValueError:
                continue
            others = "-".join(parts[:start] + parts[end:])
            return f"{head}[{others}]" if others else head, spec
    return nodeid, None


def expand_specs(
    backends: Iterable[str], precisions: Iterable[str], cuda_graphs: Iterable[bool]
) -> list[EngineSpec]:
    """The cartesian product, in the order the user listed things, without duplicates."""
    seen: dict[EngineSpec, None] = {}
    for backend, precision, graphs in product(backends, precisions, cuda_graphs):
        seen.setdefault(EngineSpec(backend, precision, graphs), None)
    return list(seen)
