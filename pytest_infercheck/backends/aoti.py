"""AOTInductor: torch.export, then ``aoti_compile_and_package`` into a deployable ``.pt2``.

The package is the artifact a user ships, so it lives in the engine cache (keyed by the model's
content, the precision, the compile mode, library versions and, on CUDA, the GPU's name and compute
capability) and later runs load it with ``aoti_load_package`` instead of compiling again.

Loading a package runs native code that can crash the process (it did, with SIGSEGV, on the lent
H100 with torch 2.11+cu130, for every package, even in the canonical compile-then-load sequence):
each package is first loaded once in a throwaway Python process, and only loaded here if that
worked, so a broken runtime is a failed item that says so rather than the end of the session.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..core.spec import EngineSpec
from . import torchao_quant
from .base import BackendDescriptor, BuildError, BuildRequest
from .torch_engine import TorchBackendBase, TorchEngine, torch_descriptor_facts, torch_dtype, use_inductor_cache

if TYPE_CHECKING:
    import torch

PACKAGE_FILE = "model.pt2"
LOAD_PROBE_TIMEOUT_S = 600

DESCRIPTOR = BackendDescriptor(name="aoti", implementation=f"{__name__}:AotiBackend",
                               **torch_descriptor_facts(("torch", "triton"), quantized=True))


class AotiBackend(TorchBackendBase):
    descriptor = DESCRIPTOR

    def __init__(self) -> None:
        # Packages this run has seen load safely in a probe process, and those it has seen fail: a
        # probe costs a torch import (~45 s on the H100).  Kept on the instance, which the session owns.
        self.loads_verified: set[str] = set()
        self.load_problems: dict[str, str] = {}

    def unavailable_reason(self, spec: EngineSpec, device: str) -> Optional[str]:
        reason = super().unavailable_reason(spec, device)
        if reason:
            return reason
        import torch

        if not hasattr(torch._inductor, "aoti_compile_and_package"):
            return f"torch {torch.__version__} has no torch._inductor.aoti_compile_and_package (needs torch >= 2.6)"
        return None

    def build(self, request: BuildRequest) -> TorchEngine:
        import torch

        from .artifacts import device_target
        from ..model.precision import torch_recipe

        use_inductor_cache(request)
        dtype = engine_dtype(request.spec.precision)
        # torch.export traces the kept modules' casts (forward hooks) into the package: a keep-list is its key too.
        keep: dict[str, Any] = {"keep_fp32": sorted(request.keep_fp32)} if torch_recipe(request, dtype) else {}
        if torchao_quant.is_quantized(request.spec.precision):  # torchao's version, method, calibration
            keep.update(torchao_quant.cache_key(request, request.fp8_granularity))
        entry = request.artifacts.derived(
            "aoti", lambda directory: compile_package(request, directory / PACKAGE_FILE),
            precision=request.spec.precision, target=device_target(request.device),
            mode=request.compile_mode, tf32=request.tf32, **keep)
        package = entry.file(PACKAGE_FILE)
        if torchao_quant.is_quantized(request.spec.precision):  # also when the package came from the cache
            torchao_quant.record_recipe(request, request.fp8_granularity)
        self.ensure_loads_safely(package)
        # run_single_threaded drops the package runner's own locking, which CUDA graph capture needs.
        loaded = torch._inductor.aoti_load_package(str(package), run_single_threaded=request.spec.cuda_graphs)
        return TorchEngine(loaded, request.device, dtype)

    def ensure_loads_safely(self, package: Path) -> None:
        """Load ``package`` in a child process first; a crash there is a BuildError here, not a crash."""
        key = str(package)
        if key in self.loads_verified:
            return
        if key not in self.load_problems:
            problem = load_problem(package)
            if problem is None:
                self.loads_verified.add(key)
                return
            self.load_problems[key] = problem
        raise BuildError(self.load_problems[key])


def compile_package(request: BuildRequest, package: Path) -> None:
    """torch.export of the model at the spec's dtype on the target device, compiled to ``package``."""
    import torch

    from ..model.export import export_program
    from ..model.under_test import cast_inputs
    from .torch_engine import module_copy

    dtype = engine_dtype(request.spec.precision)
    model = request.artifacts.model
    quantized = torchao_quant.is_quantized(request.spec.precision)
    module = module_copy(request, dtype)  # BF16 for torchao's INT8/FP8, quantized next
    if quantized:
        torchao_quant.quantize(request, module, request.fp8_granularity)
    inputs = cast_inputs(model.inputs, dtype=dtype, device=request.device)
    program = export_program(module, inputs, dynamic_batch=model.dynamic_batch, device=request.device)
    configs = {**inductor_configs(request.compile_mode), **(torchao_quant.INDUCTOR_OPTIONS if quantized else {})}
    # aoti_compile_and_package leaves its device metadata in torch._inductor.config.aot_inductor for the rest of
    # the process, and Inductor's FX-graph cache key includes the config: an Inductor engine compiled after it
    # would be keyed differently from the same engine in a run without AOTInductor, and never found warm.
    saved = torch._inductor.config.save_config()
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=str(package), inductor_configs=configs)
    finally:
        torch._inductor.config.load_config(saved)


def engine_dtype(precision: str) -> "torch.dtype":
    """The dtype the engine's inputs are cast to: BF16 for torchao's INT8/FP8 models."""
    import torch

    return torch.bfloat16 if torchao_quant.is_quantized(precision) else torch_dtype(precision)


def load_problem(package: Path) -> Optional[str]:
    """None when ``aoti_load_package`` loads ``package`` in a fresh interpreter; else what went wrong."""
    import torch

    code = "import sys, torch; torch._inductor.aoti_load_package(sys.argv[1])"
    try:
        child = subprocess.run([sys.executable, "-c", code, str(package)], capture_output=True, text=True,
                               timeout=LOAD_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"loading the AOTInductor package {package} took over {LOAD_PROBE_TIMEOUT_S} s in a probe process"
    if child.returncode == 0:
        return None
    lines = [line for line in child.stderr.splitlines() if line.strip()]
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        return (f"torch._inductor.aoti_load_package crashed with {name} loading the compiled package {package} "
                f"(in a probe process, so this session goes on): the AOTInductor runtime of torch "
                f"{torch.__version__} does not work on this machine")
    return f"torch._inductor.aoti_load_package failed on {package}: {lines[-1] if lines else child.returncode}"


def inductor_configs(mode: str) -> dict[str, Any]:
    """torch.compile's modes as AOTInductor options: only autotuning carries over.

    AOTInductor emits no CUDA graphs of its own ("reduce-overhead"): ask for ``-cudagraph`` in the
    engine spec instead, which captures the loaded package.
    """
    return {"max_autotune": True} if mode.startswith("max-autotune") else {}
