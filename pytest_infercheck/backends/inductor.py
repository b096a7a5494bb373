"""torch.compile with the Inductor backend, at FP32/FP16/BF16, in a chosen mode.

Compilation is lazy in torch.compile, so ``build`` makes the first call: the build time then
covers tracing and code generation, and the timer never sees a compile.  Inductor keeps its own
on-disk FX-graph cache; its hit/miss counters tell the summary whether this build reused it.
"""

from __future__ import annotations

from contextlib import ExitStack

from .base import BackendDescriptor, BuildRequest
from .torch_engine import TorchBackendBase, TorchEngine, torch_descriptor_facts, torch_dtype, use_inductor_cache

DESCRIPTOR = BackendDescriptor(name="inductor", implementation=f"{__name__}:InductorBackend",
                               **torch_descriptor_facts(("torch", "triton")))


class InductorBackend(TorchBackendBase):
    descriptor = DESCRIPTOR

    def build(self, request: BuildRequest) -> TorchEngine:
        import torch
        from torch._dynamo.utils import counters

        from ..artifacts import device_target
        from ..export import quiet_torch_logs
        from ..model import model_copy

        use_inductor_cache(request)
        dtype = torch_dtype(request.spec.precision)
        module = model_copy(request.artifacts.model.module, dtype=dtype, device=request.device)
        torch._dynamo.reset()  # another item's compiled frames must not be reused at a new dtype
        compiled = torch.compile(module, mode=None if request.compile_mode == "default" else request.compile_mode,
                                 dynamic=request.artifacts.model.dynamic_batch or None)
        engine = TorchEngine(compiled, request.device, dtype)
        # Two xdist workers given the same engine (an FP16 item with and without a CUDA graph) would
        # both compile it, on the same CPUs: the second waits for the first and loads its result.
        same_engine = request.artifacts.key("inductor", precision=request.spec.precision, mode=request.compile_mode,
                                            device=device_target(request.device))
        with ExitStack() as stack:
            stack.enter_context(request.artifacts.cache.compile_lock(same_engine))
            stack.enter_context(quiet_torch_logs())  # dynamo/Inductor's structured-trace records stay out of pytest's log
            if not request.artifacts.cache.enabled:
                stack.enter_context(torch._inductor.config.patch(force_disable_caches=True))
            hits_before = counters["inductor"]["fxgraph_cache_hit"]
            misses_before = counters["inductor"]["fxgraph_cache_miss"]
            # Compiled on inputs prepared as every later call's are (cast outside inference mode):
            # Dynamo's guards include a tensor's dispatch keys, and inputs cast inside inference mode
            # would make the first checked run compile the model a second time (1.5 s for resnet50).
            engine.run(engine.prepare(request.artifacts.model.inputs))
        hits = counters["inductor"]["fxgraph_cache_hit"] - hits_before
        misses = counters["inductor"]["fxgraph_cache_miss"] - misses_before
        if not request.artifacts.cache.enabled:
            state = "off"
        else:
            state = "hit" if hits and not misses else "miss"
        request.artifacts.cache_states["inductor"] = state
        return engine

