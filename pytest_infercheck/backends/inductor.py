"""torch.compile with the Inductor backend, at FP32/FP16/BF16, in a chosen mode.

Compilation is lazy in torch.compile, so ``build`` makes the first call: the build time then
covers tracing and code generation, and the timer never sees a compile. With the engine cache on,
the engine is precompiled (precompile.py): a warm rerun loads the compiled function instead of
tracing the model again. Otherwise (a graph break, forward hooks, a torch without the API, the
cache off) it is a plain ``torch.compile``, whose code Inductor's own on-disk FX-graph cache
keeps; its hit/miss counters tell the summary whether this build reused it.

On the CPU, Inductor's C++ kernels are compiled with ``cpp.enable_kernel_profile``: each opens a
profiler range named after it, so a profile sees them one by one (profiling.py) rather than as
one wrapper range.  Without a profiler running, the range is one check per kernel call.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import precompile, torchao_quant
from .base import BackendDescriptor, BuildRequest
from .torch_engine import (TorchBackendBase, TorchEngine, quantized_copy, torch_descriptor_facts, torch_dtype,
                           use_inductor_cache)

if TYPE_CHECKING:
    import torch

DESCRIPTOR = BackendDescriptor(name="inductor", implementation=f"{__name__}:InductorBackend",
                               **torch_descriptor_facts(("torch", "triton"), quantized=True))


class InductorBackend(TorchBackendBase):
    descriptor = DESCRIPTOR

    def build(self, request: BuildRequest) -> TorchEngine:
        import torch

        from .torch_engine import module_copy

        use_inductor_cache(request)
        if torchao_quant.is_quantized(request.spec.precision):
            return _build_quantized(request)
        dtype = torch_dtype(request.spec.precision)
        module = module_copy(request, dtype)
        torch._dynamo.reset()  # another item's compiled frames must not be reused at a new dtype
        mode = None if request.compile_mode == "default" else request.compile_mode
        dynamic = request.artifacts.model.dynamic_batch or None

        # torch.compile compiles at its first call: made here, it costs nothing unless it runs (no
        # precompiled engine, or a call the precompiled one's guards refuse).
        plain = torch.compile(module, mode=mode, dynamic=dynamic)
        engine = TorchEngine(plain, request.device, dtype)
        # Compiled on inputs prepared as every later call's are (cast outside inference mode):
        # Dynamo's guards include a tensor's dispatch keys, and inputs cast inside inference mode
        # would make the first checked run compile the model a second time (1.5 s for resnet50).
        prepared = engine.prepare(request.artifacts.model.inputs)
        with kernel_profile(request.device):
            if request.artifacts.cache.enabled:  # (check/flow.run_check keeps torch's trace records out of the log)
                why_not = _use_precompiled(request, engine, prepared, module, plain, mode=mode, dynamic=dynamic)
                if why_not is None:
                    return engine
                request.note(f"Inductor engine not precompiled, a warm rerun traces it again: {why_not}")
            _compile_in_first_call(request, engine, prepared)
        return engine


def kernel_profile(device: str) -> Any:
    """Inductor's C++ kernels (CPU) named in the profiler: each opens a RECORD_FUNCTION range."""
    import contextlib

    import torch

    if device.startswith("cuda") or not hasattr(torch._inductor.config.cpp, "enable_kernel_profile"):
        return contextlib.nullcontext()  # Triton kernels are named by their launches already
    return torch._inductor.config.patch({"cpp.enable_kernel_profile": True})


def _build_quantized(request: BuildRequest) -> TorchEngine:
    """torchao's INT8/FP8 model, compiled in the first call under torchao's Inductor settings.  Not
    precompiled: a warm rerun quantizes and traces again (Inductor's FX-graph cache keeps its kernels)."""
    import torch

    module = quantized_copy(request)
    torch._dynamo.reset()
    mode = None if request.compile_mode == "default" else request.compile_mode
    engine = TorchEngine(torch.compile(module, mode=mode, dynamic=request.artifacts.model.dynamic_batch or None),
                         request.device, torch.bfloat16)
    with torchao_quant.compile_options():
        _compile_in_first_call(request, engine, engine.prepare(request.artifacts.model.inputs))
    return engine


def _use_precompiled(request: BuildRequest, engine: TorchEngine, prepared: tuple[Any, ...], module: "torch.nn.Module",
                     plain: Callable[..., Any], *, mode: Optional[str],
                     dynamic: Optional[bool]) -> Optional[str]:
    """Give ``engine`` the precompiled forward from the cache (precompiling it there on a miss);
    None when it has it, else why not. The cache entry's lock makes a second worker asking for
    the same engine (an FP16 item with and without a CUDA graph) wait and load it."""
    import torch

    from .artifacts import device_target
    from .cache import CacheWarning

    if request.compile_mode == "reduce-overhead":
        # Inductor's own CUDA graphs keep state (static buffers, the graph tree) in the compiled
        # function; saving it, and sharing it with a twin engine, has not been proven on a GPU here.
        return "reduce-overhead mode keeps Inductor's own CUDA graphs, which are not precompiled"
    reason = precompile.unsupported_reason(module)
    if reason is not None:
        return reason

    def build(directory: Any) -> None:
        try:
            # Saved and loaded back: this engine runs the loaded function, as a warm rerun's does.
            precompile.precompile_and_save(module, engine.layout, directory, mode=mode, dynamic=dynamic)
        except Exception as exc:  # a graph break, a value that does not serialise: kept, so no rerun tries again
            if precompile.transient(exc):
                raise  # this machine's state (out of memory, a full disk), not the model's: the next run tries again
            for leftover in directory.iterdir():
                leftover.unlink()
            precompile.record_reason(directory, str(exc) if isinstance(exc, precompile.NotLoadable)
                                     else precompile.short_reason(exc))

    # Keyed by what its guards check besides the inputs (TF32, torch's thread count): an entry made
    # under other settings would be refused at every call and never replaced.
    entry = request.artifacts.derived("inductor-precompiled", build, record=False, stale=precompile.stale_reason,
                                      precision=request.spec.precision, mode=request.compile_mode,
                                      device=device_target(request.device), tf32=request.tf32,
                                      threads=torch.get_num_threads(),
                                      **({} if request.device.startswith("cuda") else {"kernel_profile": True}))
    reason = precompile.recorded_reason(entry.path)
    if reason is not None:
        return reason
    try:
        compiled = precompile.load(entry.path)  # cold: the function the build loaded back (RECENT)
        forward = precompile.PrecompiledForward(compiled, module, plain)
        engine.fn = forward
        engine.no_grad = True
        engine.run(prepared)  # kernels loaded here, not in the first timed call
    except Exception as exc:  # a corrupt or foreign entry is a slower build, never a failed item
        engine.fn, engine.no_grad = plain, False
        warnings.warn(CacheWarning(f"precompiled Inductor engine at {entry.path} could not be loaded and run "
                                   f"({precompile.short_reason(exc)}); compiling it again"))
        return f"its precompiled function could not be loaded and run ({precompile.short_reason(exc)})"
    if forward.refused:
        # Its guards refused this run's own call (a global setting they check differs from the one it
        # was saved under): every timed call would quietly take the fallback's path, another engine than
        # the cold run timed.  Said, and the engine is the plain compile it would have run anyway.
        engine.fn, engine.no_grad = plain, False
        return ("its precompiled function's guards refused this run's call (a setting they check, such as "
                "a global torch flag, differs from when it was saved), so it runs torch.compile's own engine")
    request.artifacts.cache_states["inductor"] = "hit" if entry.hit else "miss"
    return None


def _compile_in_first_call(request: BuildRequest, engine: TorchEngine, prepared: tuple[Any, ...]) -> None:
    """torch.compile's first call compiles; Inductor's FX-graph cache counters say whether it reused code."""
    import torch
    from torch._dynamo.utils import counters

    from .artifacts import device_target

    # Two xdist workers given the same engine would both compile it, on the same CPUs: the second
    # waits for the first and loads its result.
    same_engine = request.artifacts.key("inductor", precision=request.spec.precision, mode=request.compile_mode,
                                        device=device_target(request.device))
    with ExitStack() as stack:
        stack.enter_context(request.artifacts.cache.compile_lock(same_engine))
        if not request.artifacts.cache.enabled:
            stack.enter_context(torch._inductor.config.patch(force_disable_caches=True))
        hits_before = counters["inductor"]["fxgraph_cache_hit"]
        misses_before = counters["inductor"]["fxgraph_cache_miss"]
        engine.run(prepared)
    hits = counters["inductor"]["fxgraph_cache_hit"] - hits_before
    misses = counters["inductor"]["fxgraph_cache_miss"] - misses_before
    if not request.artifacts.cache.enabled:
        state = "off"
    else:
        state = "hit" if hits and not misses else "miss"
    request.artifacts.cache_states["inductor"] = state
