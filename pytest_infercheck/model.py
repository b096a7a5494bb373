"""The model under test: its inputs, a content hash, copies at other dtypes/devices, the reference.

Nothing here modifies the user's module or tensors: whenever a different device, dtype or mode is
needed, a deep copy is made and the copy is changed.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def as_input_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    """A tensor or a tuple/list of tensors -> a tuple of tensors; anything else is a TypeError."""
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    for position, value in enumerate(inputs):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"example input {position} is a {type(value).__name__}; infercheck takes tensors "
                            "(one tensor or a tuple of tensors, passed positionally to forward)")
    return inputs


def flatten_outputs(outputs: Any) -> list[tuple[str, torch.Tensor]]:
    """Named leaves of a model's output in pytree order (the order torch.onnx.export uses)."""
    from torch.utils import _pytree

    if isinstance(outputs, torch.Tensor):
        return [("output", outputs)]
    leaves, _ = _pytree.tree_flatten_with_path(outputs)
    named = []
    for path, leaf in leaves:
        name = "output" + "".join(_key_text(key) for key in path)
        if isinstance(leaf, torch.Tensor):
            named.append((name, leaf))
    return named


def _key_text(key: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return f"[{getattr(key, attr)!r}]" if attr == "key" else f"[{getattr(key, attr)}]"
    return f"[{key}]"


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Detached CPU numpy copy; bf16/fp16 widen to float32 (numpy has no bfloat16)."""
    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.dtype != torch.float64:
        tensor = tensor.float()
    return tensor.cpu().numpy()


def batch_size_of(inputs: Sequence[torch.Tensor]) -> int:
    return int(inputs[0].shape[0]) if inputs and inputs[0].dim() > 0 else 1


def cast_inputs(inputs: Iterable[torch.Tensor], *, dtype: Optional[torch.dtype], device: str) -> tuple[torch.Tensor, ...]:
    """Floating inputs to ``dtype`` (integer ids and masks keep theirs), all to ``device``."""
    cast = []
    for tensor in inputs:
        target_dtype = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
        cast.append(tensor.detach().to(device=device, dtype=target_dtype))
    return tuple(cast)


def model_copy(model: torch.nn.Module, *, dtype: Optional[torch.dtype], device: str) -> torch.nn.Module:
    """The model itself when it is already in eval mode on ``device`` at ``dtype``; else a changed copy."""
    params = list(model.parameters()) + list(model.buffers())
    on_device = all(p.device.type == torch.device(device).type for p in params)
    right_dtype = dtype is None or all(p.dtype == dtype for p in params if p.is_floating_point())
    if on_device and right_dtype and not model.training:
        return model
    clone = copy.deepcopy(model).eval()
    clone.to(device=device)
    if dtype is not None:
        clone.to(dtype=dtype)
    return clone


def content_hash(model: torch.nn.Module, inputs: Sequence[torch.Tensor], *, dynamic_batch: bool) -> str:
    """Hash of what determines every artifact built from this model.

    The module tree (``repr``), every module's plain Python attributes, the source of every module
    class's ``forward``, every parameter and buffer's bytes, and the inputs' shapes and dtypes.  Code the forward reaches outside those
    classes (a helper function in another module) is not covered: docs/usage.md says so.
    """
    digest = hashlib.sha256()
    cls = type(model)
    digest.update(f"{cls.__module__}.{cls.__qualname__}\n{model!r}\n".encode())
    for module_cls in sorted({type(m) for m in model.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        digest.update(_source_of(module_cls).encode())
    for path, module in model.named_modules():
        digest.update(f"{path}:{_plain_attributes(module)}".encode())
    for name, tensor in list(model.state_dict(keep_vars=False).items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(_tensor_bytes(tensor))
    for tensor in inputs:
        digest.update(f"in:{tensor.dtype}:{tuple(tensor.shape)}".encode())
    digest.update(f"dynamic_batch={dynamic_batch}".encode())
    return digest.hexdigest()[:32]


_PLAIN = (bool, int, float, str, type(None))


def _plain_attributes(module: torch.nn.Module) -> str:
    """Plain Python attributes a forward may read (``self.scale = 2.0``): they shape the graph too.

    ``repr`` shows only what a module's ``extra_repr`` chooses to; parameters, buffers and
    submodules are hashed elsewhere, and private attributes (``_hooks``...) are torch's bookkeeping.
    """
    plain = {}
    for key, value in vars(module).items():
        if key.startswith("_") or key == "training":
            continue
        if isinstance(value, _PLAIN) or (isinstance(value, (tuple, list)) and all(isinstance(v, _PLAIN) for v in value)):
            plain[key] = value
    return repr(sorted(plain.items()))


def _source_of(module_cls: type) -> str:
    try:
        return inspect.getsource(module_cls.forward)
    except (OSError, TypeError):
        return f"{module_cls.__module__}.{module_cls.__qualname__}"


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    return flat.numpy().tobytes()


def inputs_hash(batches: Optional[Sequence[Sequence[torch.Tensor]]]) -> str:
    if not batches:
        return "none"
    digest = hashlib.sha256()
    for batch in batches:
        for tensor in batch:
            digest.update(f"{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()[:32]


@dataclass
class ModelUnderTest:
    """The user's model and example inputs, with the facts every stage needs."""

    module: torch.nn.Module
    inputs: tuple[torch.Tensor, ...]
    dynamic_batch: bool = False
    name: str = ""
    _hash: Optional[str] = field(default=None, repr=False)

    @classmethod
    def create(cls, module: torch.nn.Module, example_inputs: Any, *, dynamic_batch: bool = False) -> "ModelUnderTest":
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"infercheck checks a torch.nn.Module; got {type(module).__name__}")
        return cls(module, as_input_tuple(example_inputs), dynamic_batch, type(module).__name__)

    @property
    def hash(self) -> str:
        if self._hash is None:
            self._hash = content_hash(self.module, self.inputs, dynamic_batch=self.dynamic_batch)
        return self._hash

    @property
    def batch_size(self) -> int:
        return batch_size_of(self.inputs)

    def doubled(self) -> "ModelUnderTest":
        """The same model on its inputs repeated along the batch axis (the dynamic-batch re-check)."""
        return ModelUnderTest(self.module, tuple(torch.cat([t, t]) for t in self.inputs), True, self.name)

    def reference_outputs(self, device: str) -> list[tuple[str, torch.Tensor]]:
        """Eager FP32 outputs on ``device``: the reference every engine is compared with."""
        module = model_copy(self.module, dtype=None, device=device)
        with torch.inference_mode():
            outputs = module(*cast_inputs(self.inputs, dtype=None, device=device))
        return [(name, tensor.detach().clone()) for name, tensor in flatten_outputs(outputs)]
