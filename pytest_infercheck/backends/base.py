"""The contract between the check and the backends.

A backend turns the model's artifacts into an ``Engine`` for one ``EngineSpec``.  An engine
separates ``prepare`` (move and convert inputs once, outside timing) from ``run`` (one inference:
what the timer measures) and ``to_numpy`` (outputs for the comparison), so that every backend is
timed on the same terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .artifacts import ModelArtifacts
    from ..measure.results import PrecisionRecipe
    from ..core.spec import EngineSpec

# Libraries on every engine's path: torch runs the reference and the exporters.
TORCH = ("torch",)
# What an ONNX-based backend's figures also depend on: the exporter and the graph it writes.
ONNX_EXPORT = ("torch", "onnx", "onnxscript")


@dataclass(frozen=True)
class BackendDescriptor:
    """Everything the rest of the plugin needs to know about a backend, without importing it.

    Spec validation, the registry, the engine cache key and the machine fingerprint (``libraries``),
    the baseline's machine key, the pre-build audit (``audit_targets``), the ONNX variant a build
    asks for (``onnx_variants``) and the skip reasons all read this one object.
    """

    name: str
    implementation: str  # "module:Class" of the Backend, imported only when a test selects it
    precisions: tuple[str, ...]
    devices: tuple[str, ...]  # "cpu", "cuda": where its engines run
    libraries: tuple[str, ...]  # distributions whose versions key its cache entries and baseline entries
    install: str  # what to install when its library is missing
    supports_cuda_graphs: bool = True
    # Audit target per device kind ("cpu"/"cuda"); a backend the audit does not cover has none.
    audit_targets: Mapping[str, str] = field(default_factory=dict)
    # ONNX model per precision (onnx_variants.py): "fp32" the export, "fp16" converted, "int8-qdq"
    # calibrated Q/DQ; empty for backends that run the PyTorch module itself.
    onnx_variants: Mapping[str, str] = field(default_factory=dict)
    # Whether its audit target can be judged where the backend cannot run (a support table):
    # then a skipped item still says which nodes would not run.
    audit_without_library: bool = False
    # Which profiler explains its time (profiling.PROFILERS: "torch", "onnxruntime", "tensorrt");
    # "" when none can: a failed budget then says there is no profile.
    profiler: str = ""
    # The engine every other is compared with and whose FP32 timing the speedup divides by: one
    # backend of the registry has it (eager); another package's backend never takes it over.
    reference: bool = False
    # Why its engines cannot run keep_fp32's modules in FP32 ("" when they can, or when the backend
    # builds from a converted ONNX model, which carries them): said in the item's warnings.
    keep_fp32_gap: str = ""
    # Whether its INT8 engines run without calibration data (torchao's dynamic INT8): then no batches
    # are generated when the test gives none, and calibration= given makes the scales static.
    int8_calibration_optional: bool = False
    # What a pass of its engines does not show at a precision on a device kind ("fp16 on cpu": ONNX Runtime's CPU
    # runs many FP16 kernels in FP32): said in the item's notes (information, not a warning).
    pass_caveats: Mapping[str, str] = field(default_factory=dict)

    def pass_caveat(self, precision: str, device: str) -> str:
        return self.pass_caveats.get(f"{precision} on {'cuda' if device.startswith('cuda') else 'cpu'}", "")

    def audit_target(self, device: str) -> Optional[str]:
        return self.audit_targets.get("cuda" if device.startswith("cuda") else "cpu")

    def unavailable_reason(self, spec: "EngineSpec", device: str) -> Optional[str]:
        """The checks every backend shares: precision offered, device served, CUDA Graphs need CUDA."""
        kind = "cuda" if device.startswith("cuda") else "cpu"
        if spec.precision not in self.precisions:
            return (f"the {self.name} backend has no {spec.precision.upper()} engine "
                    f"(it offers {', '.join(self.precisions)})")
        if kind not in self.devices:
            where = " and ".join("NVIDIA GPUs" if d == "cuda" else "the CPU" for d in self.devices)
            return (f"the {self.name} backend runs on {where} only "
                    f"(this run uses the {kind.upper()}; see --infer-device)")
        if spec.cuda_graphs and kind != "cuda":
            return "CUDA Graphs need a CUDA device (this run uses the CPU; see --infer-device)"
        if spec.cuda_graphs and not self.supports_cuda_graphs:
            return f"the {self.name} backend cannot run under CUDA Graphs"
        return None


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
    calibration: Optional[list[Any]] = None  # calibration.py's batches (ModelInputs, each like the example's)
    calibration_generated: bool = False
    compile_mode: str = "default"
    trt_target: str = "auto"  # the compute capability TensorRT-RTX builds for ("auto": this GPU's, else sm_89)
    tf32: bool = False
    time_transfers: bool = False
    notes: list[str] = field(default_factory=list)  # warnings the backend wants in the result
    # docs/precision.md: the INT8 recipe's operator types, the modules kept in FP32, and how the
    # backend made the engine from them (set by the backend; precision.py).
    int8_ops: tuple[str, ...] = ()
    keep_fp32: tuple[str, ...] = ()
    fp8_granularity: str = "row"  # torchao's FP8 scales: "row" or "tensor" (torchao_quant.py)
    recipe: Optional["PrecisionRecipe"] = None

    def note(self, text: str) -> None:
        self.notes.append(text)


class Backend(Protocol):
    descriptor: BackendDescriptor

    def unavailable_reason(self, spec: "EngineSpec", device: str) -> Optional[str]:
        """Why this spec cannot run here beyond the descriptor's checks (a missing library), or None."""

    def build(self, request: BuildRequest) -> Engine:
        """Build (or load from the cache) the engine; raise on failure with the builder's reason."""

    def onnx_model(self, request: BuildRequest) -> Optional[Path]:
        """The ONNX model the engine runs (divergence localisation compares it node by node), or None."""


class BuildError(Exception):
    """The backend could not build the engine; the message is the builder's reason in a few lines."""


class BuiltButCannotRun(Exception):
    """The engine was built (and cached) for real, but this machine cannot run it (TensorRT-RTX on a
    CPU or on Hopper): the item skips, saying what was built (size, seconds) and what running needs."""

    def __init__(self, message: str, figures: Any = None) -> None:
        super().__init__(message)
        self.figures = figures


def missing_module_reason(module: str, install: str) -> Optional[str]:
    """None when ``module`` can be found, else an install hint (without importing it)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed: {install}"
    return None


