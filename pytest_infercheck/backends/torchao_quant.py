"""INT8 and FP8 engines for the PyTorch backends (Inductor, AOTInductor) on CUDA, through torchao.

A copy of the model is cast to BF16 (the rest of the model's precision, as torchao's own recipes
run it), its ``nn.Linear`` layers are quantized with torchao's configs, and the backend compiles it:

- INT8, dynamic (the default): ``Int8DynamicActivationInt8WeightConfig``: per-token activation
  scales computed at every call, per-channel (per-row) INT8 weights; no calibration data needed.
- INT8, static (when the test gives ``calibration=``): ``Int8StaticActivationInt8WeightConfig``
  with one per-tensor activation scale per layer, the largest |input| the calibration batches
  reach divided by 127, and per-channel weights.
- FP8: ``Float8DynamicActivationFloat8WeightConfig``, E4M3 activations and weights, per-row scales
  (the default) or per-tensor ones (``fp8_granularity="tensor"``); needs compute capability 8.9+.

torchao's ``set_inductor_config`` is off: it would turn TF32 on for the whole process
(``torch.set_float32_matmul_precision("high")``) and break every later FP32 engine.  Its Inductor
settings are applied to this engine's compilation only (``compile_options``).

Nothing here imports torch or torchao at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional

from ..model.precision import outermost
from ..measure.results import PrecisionRecipe
from .base import BuildError, missing_module_reason

if TYPE_CHECKING:
    import torch

    from ..core.spec import EngineSpec
    from .base import BuildRequest

TORCHAO_PRECISIONS = ("int8", "fp8")
TORCHAO_PIN = "0.17.0"  # the `torchao` extra: the first release built for torch 2.11
INSTALL_TORCHAO = "pip install 'pytest-infercheck[torchao]'"
FP8_MIN_CAPABILITY = (8, 9)  # FP8 matrix products: Ada (8.9), Hopper (9.0), Blackwell
FP8_GRANULARITIES = ("row", "tensor")
INT8_LEVELS = 127.0  # symmetric INT8: |x| <= 127 * scale
# torchao's recommended Inductor settings for quantized models (torchao.quantization.utils
# .recommended_inductor_config_setter), without its process-wide TF32 switch.
INDUCTOR_OPTIONS = {"coordinate_descent_tuning": True, "coordinate_descent_check_all_directions": True,
                    "force_fuse_int_mm_with_mul": True}


def is_quantized(precision: str) -> bool:
    return precision in TORCHAO_PRECISIONS


def unavailable_reason(spec: "EngineSpec", device: str) -> Optional[str]:
    """Why torchao's ``spec.precision`` engine cannot run here (None for other precisions)."""
    if not is_quantized(spec.precision):
        return None
    if not device.startswith("cuda"):
        return (f"{spec.backend}-{spec.precision} needs CUDA: torchao's INT8/FP8 kernels here run on NVIDIA GPUs "
                f"(this run uses the CPU; see --infer-device)")
    missing = missing_module_reason("torchao", INSTALL_TORCHAO)
    if missing:
        return missing
    import torch

    if spec.precision == "fp8" and torch.cuda.is_available():
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        capability = torch.cuda.get_device_capability(index)
        if capability < FP8_MIN_CAPABILITY:
            return (f"{spec.id} needs a GPU of compute capability 8.9 or newer for FP8 matrix products (Ada, "
                    f"Hopper, Blackwell); {torch.cuda.get_device_name(index)} is {capability[0]}.{capability[1]} "
                    f"(sm_{capability[0]}{capability[1]})")
    return None


def static_calibration(request: "BuildRequest") -> bool:
    """INT8 activation scales are static when the test gave calibration data, else dynamic."""
    return request.spec.precision == "int8" and bool(request.calibration) and not request.calibration_generated


def method(request: "BuildRequest", granularity: str) -> str:
    """The recipe's method as the item's row and report show it."""
    if request.spec.precision == "fp8":
        return (f"torchao FP8 E4M3 dynamic activations and weights, per-{granularity} scales "
                "(Float8DynamicActivationFloat8WeightConfig), rest BF16")
    if static_calibration(request):
        return (f"torchao INT8 static activations (per-tensor scales from {len(request.calibration or [])} "
                "calibration batches), per-channel weights (Int8StaticActivationInt8WeightConfig), rest BF16")
    return ("torchao INT8 dynamic activations (per-token scales), per-channel weights "
            "(Int8DynamicActivationInt8WeightConfig), rest BF16")


def label(request: "BuildRequest", granularity: str) -> str:
    """The method in a few words, for the engine cell of the item's row."""
    if request.spec.precision == "fp8":
        return f"dynamic, per-{granularity}"
    return "static, per-tensor act" if static_calibration(request) else "dynamic, per-token act"


def cache_key(request: "BuildRequest", granularity: str) -> dict[str, Any]:
    """What an AOTInductor package of a quantized model also depends on."""
    from importlib.metadata import version

    from ..model.under_test import inputs_hash

    # The layers quantized too: which ones is the recipe's choice (keep_fp32, out_proj), and a package
    # built when the choice was another must not load under the new one (cache.cache_key hashes the list).
    key: dict[str, Any] = {"torchao": version("torchao"), "method": label(request, granularity),
                           "layers": quantized_layers(request)}
    if static_calibration(request):
        key["calibration"] = inputs_hash(request.calibration)
    return key


def quantize(request: "BuildRequest", module: "torch.nn.Module", granularity: str = "row") -> "torch.nn.Module":
    """``module``, the engine's BF16 copy of the model on the request's device (torch_engine.module_copy:
    keep_fp32's modules back in FP32, between casts), its ``nn.Linear`` layers outside keep_fp32's
    modules quantized in place; ``request.recipe`` records how."""
    if granularity not in FP8_GRANULARITIES:
        raise BuildError(f"fp8_granularity={granularity!r}: torchao's FP8 scales are per-row or per-tensor "
                         f"({', '.join(FP8_GRANULARITIES)})")
    targets = record_recipe(request, granularity)
    if static_calibration(request):
        _quantize_static(module, targets, request)
    else:
        _quantize(module, targets, config(request.spec.precision, granularity))
    return module


def quantized_layers(request: "BuildRequest") -> list[str]:
    """The names of the model's layers the recipe quantizes: its ``nn.Linear`` layers outside keep_fp32's
    modules, but for nn.MultiheadAttention's ``out_proj``.  That one is a NonDynamicallyQuantizableLinear,
    which torchao's own default filter (quant_api._is_linear) leaves out; so does this recipe, so that
    the engine quantizes the layers a hand-written ``quantize_`` would."""
    import torch

    attention_out = torch.nn.modules.linear.NonDynamicallyQuantizableLinear
    kept = outermost(request.keep_fp32)
    return [name for name, sub in request.artifacts.model.module.named_modules()
            if isinstance(sub, torch.nn.Linear) and not isinstance(sub, attention_out)
            and not any(name == k or name.startswith(k + ".") for k in kept)]


def record_recipe(request: "BuildRequest", granularity: str) -> list[str]:
    """Set ``request.recipe`` (also for an engine loaded from the cache); the layers to quantize."""
    model = request.artifacts.model.module
    targets = quantized_layers(request)
    if not targets:
        where = " outside keep_fp32's modules" if request.keep_fp32 else ""
        raise BuildError(f"{request.spec.id}: torchao quantizes nn.Linear layers (not nn.MultiheadAttention's "
                         f"out_proj) and {type(model).__name__} has none{where}: there is nothing to run in "
                         f"{request.spec.precision.upper()} (convolutions and other layers stay BF16)")
    request.recipe = PrecisionRecipe(method(request, granularity), quantized_ops=("Linear",),
                                     keep_fp32=tuple(request.keep_fp32),
                                     label=label(request, granularity), quantized_modules=len(targets))
    return targets


def config(precision: str, granularity: str = "row") -> Any:
    """torchao's dynamic config for ``precision`` (also what the hand recipes in benchmarks use)."""
    from torchao.quantization import (Float8DynamicActivationFloat8WeightConfig,
                                      Int8DynamicActivationInt8WeightConfig, PerRow, PerTensor)

    if precision == "fp8":
        return Float8DynamicActivationFloat8WeightConfig(
            granularity=PerRow() if granularity == "row" else PerTensor(), set_inductor_config=False)
    return Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)


def _quantize(module: "torch.nn.Module", targets: list[str], chosen: Any) -> None:
    from torchao.quantization import quantize_

    wanted = set(targets)
    quantize_(module, chosen, filter_fn=lambda _, name: name in wanted)


def _quantize_static(module: "torch.nn.Module", targets: list[str], request: "BuildRequest") -> None:
    """One per-tensor activation scale per layer from the calibration batches, then each layer quantized."""
    import torch
    from torchao.quantization import Int8StaticActivationInt8WeightConfig, PerRow, PerTensor, quantize_

    seen = _input_ranges(module, targets, request)
    for name in targets:
        if name not in seen:
            raise BuildError(f"{request.spec.id}: layer {name!r} saw no input in the calibration batches (a branch "
                             "they do not take): no static scale can be made for it")
        largest, ndim = seen[name]
        scale = torch.full((1,) * ndim, max(largest, 1e-8) / INT8_LEVELS, dtype=torch.float32, device=request.device)
        layer = Int8StaticActivationInt8WeightConfig(act_quant_scale=scale, granularity=(PerTensor(), PerRow()),
                                                     set_inductor_config=False)
        quantize_(module, layer, filter_fn=lambda _, fqn, target=name: fqn == target)


def _input_ranges(module: "torch.nn.Module", targets: list[str],
                  request: "BuildRequest") -> dict[str, tuple[float, int]]:
    """Each target layer's largest |input| over the calibration batches, and its input's rank."""
    import torch

    seen: dict[str, tuple[float, int]] = {}

    def recorder(name: str) -> Any:
        def hook(_: Any, args: tuple[Any, ...]) -> None:
            value = args[0].detach()
            largest = float(value.abs().amax().float()) if value.numel() else 0.0
            seen[name] = (max(largest, seen.get(name, (0.0, 0))[0]), value.dim())
        return hook

    handles = [module.get_submodule(name).register_forward_pre_hook(recorder(name)) for name in targets]
    try:
        with torch.inference_mode():
            for batch in _batches(request):
                batch.call(module)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _batches(request: "BuildRequest") -> Iterator[Any]:
    import torch

    for batch in request.calibration or []:
        yield batch.cast(dtype=torch.bfloat16, device=request.device)


def compile_options() -> Any:
    """torchao's Inductor settings for this engine's compilation only (a context manager)."""
    import torch

    return torch._inductor.config.patch(INDUCTOR_OPTIONS)
