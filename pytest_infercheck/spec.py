"""What one test item checks: an engine specification and its readable id."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Iterable

BACKENDS: tuple[str, ...] = ("eager", "inductor", "aoti", "onnxruntime", "tensorrt")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
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
        parts = spec_id.split("-")
        cuda_graphs = parts[-1] == "cudagraph"
        if cuda_graphs:
            parts = parts[:-1]
        if len(parts) != 2 or parts[0] not in BACKENDS or parts[1] not in PRECISIONS:
            raise ValueError(
                f"{spec_id!r} is not an engine id; expected <backend>-<precision>[-cudagraph] "
                f"with backend in {', '.join(BACKENDS)} and precision in {', '.join(PRECISIONS)}"
            )
        return cls(parts[0], parts[1], cuda_graphs)


def expand_specs(
    backends: Iterable[str], precisions: Iterable[str], cuda_graphs: Iterable[bool]
) -> list[EngineSpec]:
    """The cartesian product, in the order the user listed things, without duplicates."""
    seen: dict[EngineSpec, None] = {}
    for backend, precision, graphs in product(backends, precisions, cuda_graphs):
        seen.setdefault(EngineSpec(backend, precision, graphs), None)
    return list(seen)
