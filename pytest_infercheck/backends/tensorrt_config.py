"""The TensorRT backend's decisions that need no TensorRT: tested on machines without it.

- which build path a TensorRT version takes (10.x: precision flags on an FP32 network, INT8
  through an entropy calibrator; 11.x: strongly typed networks, so FP16 comes from an
  FP16-converted ONNX model and INT8 from a QDQ-quantized one),
- optimization profiles (min/opt/max) when the user declares a dynamic batch,
- calibration batches as the feed dictionaries Polygraphy's ``Calibrator`` reads,
- the engine's cache key parts, GPU included,
- TensorRT data type names as torch dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

SUPPORTED_MAJORS: tuple[int, ...] = (10, 11)
PROFILE_MAX_BATCH = 32  # the largest batch a dynamic-batch engine is built for, unless the example is larger


class UnsupportedBuild(ValueError):
    """This TensorRT version cannot build this precision; the message says why and what would."""


def major_version(version: str) -> int:
    """``"10.13.0.35"`` -> 10; a string that is not a version is a ValueError naming it."""
    head = str(version).strip().split(".", 1)[0]
    if not head.isdigit():
        raise ValueError(f"{version!r} is not a TensorRT version")
    return int(head)


@dataclass(frozen=True)
class BuildPlan:
    """How to build one engine: which ONNX model to parse and which builder settings to set."""

    trt_major: int
    precision: str
    onnx_variant: str  # "fp32" (the export), "fp16" (converted) or "int8-qdq" (quantized)
    strongly_typed: bool  # the network's types come from the ONNX model; no precision flags
    fp16: bool = False
    bf16: bool = False
    int8: bool = False
    calibrate: bool = False  # feed the user's batches to an entropy calibrator
    tf32: bool = False

    def describe(self) -> str:
        flags = [name for name in ("fp16", "bf16", "int8", "tf32") if getattr(self, name)]
        typing = "strongly typed" if self.strongly_typed else f"flags {'+'.join(flags) or 'none (fp32)'}"
        calibration = ", entropy calibrator" if self.calibrate else ""
        return f"TensorRT {self.trt_major}.x, {self.onnx_variant} ONNX, {typing}{calibration}"


def plan_build(version: str, precision: str, *, tf32: bool = False) -> BuildPlan:
    """The build path for ``precision`` on TensorRT ``version``; ``UnsupportedBuild`` when there is none."""
    major = major_version(version)
    if major not in SUPPORTED_MAJORS:
        raise UnsupportedBuild(f"TensorRT {version} is not supported (supported: "
                               f"{', '.join(f'{m}.x' for m in SUPPORTED_MAJORS)})")
    if major >= 11:
        variants = {"fp32": "fp32", "fp16": "fp16", "int8": "int8-qdq"}
        if precision not in variants:
            raise UnsupportedBuild(f"TensorRT {major}.x builds strongly typed networks only, and this plugin has no "
                                   f"{precision.upper()} ONNX conversion to feed it (fp32, fp16 and int8 are offered)")
        return BuildPlan(major, precision, variants[precision], strongly_typed=True, tf32=tf32)
    if precision == "fp32":
        return BuildPlan(major, precision, "fp32", strongly_typed=False, tf32=tf32)
    if precision == "fp16":
        return BuildPlan(major, precision, "fp32", strongly_typed=False, fp16=True, tf32=tf32)
    if precision == "bf16":
        return BuildPlan(major, precision, "fp32", strongly_typed=False, bf16=True, tf32=tf32)
    if precision == "int8":
        # FP16 too: layers TensorRT cannot run in INT8 fall back to FP16 rather than FP32.
        return BuildPlan(major, precision, "fp32", strongly_typed=False, fp16=True, int8=True, calibrate=True,
                         tf32=tf32)
    raise UnsupportedBuild(f"unknown precision {precision!r}")


Shape = tuple[int, ...]


def profile_shapes(input_shapes: dict[str, Shape], *, dynamic_batch: bool,
                   max_batch: int = PROFILE_MAX_BATCH) -> Optional[dict[str, tuple[Shape, Shape, Shape]]]:
    """min/opt/max per input when the batch axis is declared dynamic (None for static shapes).

    The example's batch is the optimum; the range runs from 1 to ``max(max_batch, example batch)``.
    Scalars and inputs without a batch axis keep their shape in all three.
    """
    if not dynamic_batch:
        return None
    profiles = {}
    for name, shape in input_shapes.items():
        if not shape:
            profiles[name] = (shape, shape, shape)
            continue
        batch, rest = int(shape[0]), tuple(int(d) for d in shape[1:])
        profiles[name] = ((1, *rest), (batch, *rest), (max(max_batch, batch), *rest))
    return profiles


def calibration_feeds(batches: Sequence[Sequence[Any]], input_names: Sequence[str]) -> list[dict[str, Any]]:
    """The user's calibration batches as ``{input name: float32/int numpy array}`` dicts, in order.

    Polygraphy's ``Calibrator`` takes any iterable of such dicts and checks them against the
    network's inputs; here a batch with the wrong number of tensors is refused with its index.
    """
    from ..model.inputs import ModelInputs
    from ..model.under_test import to_numpy

    feeds = []
    for index, batch in enumerate(batches):
        if isinstance(batch, ModelInputs):  # named: matched to the network's inputs by name
            try:
                tensors = batch.ordered_for(input_names)
            except ValueError as err:
                raise ValueError(f"calibration batch {index}: {err}") from None
        elif len(batch) != len(input_names):
            raise ValueError(f"calibration batch {index} has {len(batch)} tensor(s); the model takes "
                             f"{len(input_names)} ({', '.join(input_names)})")
        else:
            tensors = list(batch)
        feeds.append({name: to_numpy(tensor) for name, tensor in zip(input_names, tensors)})
    if not feeds:
        raise ValueError("INT8 calibration needs at least one batch")
    return feeds


def engine_key_parts(plan: BuildPlan, *, trt_version: str, target: str, profiles: Any,
                     calibration: str) -> dict[str, Any]:
    """What a serialized engine depends on besides the model: it is loaded only where all match."""
    return {
        "trt": trt_version,  # plans are not portable across TensorRT versions
        "target": target,  # nor across GPU models and compute capabilities
        "plan": plan.describe(),
        "profiles": profiles,
        "calibration": calibration if plan.calibrate else "none",
    }


_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
                 "INT32": "int32", "INT64": "int64", "BOOL": "bool"}


def torch_dtype_name(trt_dtype: Any) -> str:
    """``trt.DataType.HALF`` (or its name) -> ``"float16"``: the torch dtype of an I/O buffer."""
    name = str(trt_dtype).rsplit(".", 1)[-1].upper()
    if name not in _TORCH_DTYPES:
        raise ValueError(f"TensorRT data type {trt_dtype} has no torch buffer type here")
    return _TORCH_DTYPES[name]
