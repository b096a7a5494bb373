"""The contract between the check and the backends.

A backend turns the model's artifacts into an ``Engine`` for one ``EngineSpec``.  An engine
separates ``prepare`` (move and convert inputs once, outside timing) from ``run`` (one inference:
what the timer measures) and ``to_numpy`` (outputs for the comparison), so that every backend is
timed on the same terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..artifacts import ModelArtifacts
    from ..spec import EngineSpec


@runtime_checkable
class Engine(Protocol):
    device: str
    stream: Any  # the CUDA stream the engine runs on (None on the CPU): the GPU timer records there

    def prepare(self, inputs: Sequence["torch.Tensor"]) -> Any:
        """Inputs in the engine's own form, on its device: done once, outside the timed loop."""

    def run(self, prepared: Any) -> Any:
        """One inference on prepared inputs; returns the raw outputs."""

    def to_numpy(self, raw_outputs: Any) -> list["np.ndarray"]:
        """Raw outputs as numpy arrays in the reference's order."""

    def close(self) -> None:
        """Release sessions, graphs and device memory."""


@dataclass
class BuildRequest:
    """Everything a backend needs to build one engine."""

    spec: "EngineSpec"
    artifacts: "ModelArtifacts"
    device: str
    calibration: Optional[list[tuple["torch.Tensor", ...]]] = None
    calibration_generated: bool = False
    compile_mode: str = "default"
    tf32: bool = False
    time_transfers: bool = False
    notes: list[str] = field(default_factory=list)  # warnings the backend wants in the result

    def note(self, text: str) -> None:
        self.notes.append(text)


class Backend(Protocol):
    name: str
    precisions: tuple[str, ...]  # precisions this backend can build at all
    supports_cuda_graphs: bool

    def unavailable_reason(self, spec: "EngineSpec", device: str) -> Optional[str]:
        """Why this spec cannot run here (missing library, device, precision), with the fix; None if it can."""

    def build(self, request: BuildRequest) -> Engine:
        """Build (or load from the cache) the engine; raise on failure with the builder's reason."""


class BuildError(Exception):
    """The backend could not build the engine; the message is the builder's reason in a few lines."""


def missing_module_reason(module: str, install: str) -> Optional[str]:
    """None when ``module`` can be found, else an install hint (without importing it)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed: {install}"
    return None


def common_unavailable_reason(backend: "Backend", spec: "EngineSpec", device: str) -> Optional[str]:
    """The checks every backend shares: precision offered, CUDA Graphs need CUDA and support."""
    if spec.precision not in backend.precisions:
        return (f"the {backend.name} backend has no {spec.precision.upper()} engine "
                f"(it offers {', '.join(backend.precisions)})")
    if spec.cuda_graphs and not device.startswith("cuda"):
        return "CUDA Graphs need a CUDA device (this run uses the CPU; see --infer-device)"
    if spec.cuda_graphs and not backend.supports_cuda_graphs:
        return f"the {backend.name} backend cannot run under CUDA Graphs"
    return None
