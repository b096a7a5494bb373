"""The model under test: its inputs, a content hash, copies at other dtypes/devices, the reference.

Nothing here modifies the user's module or tensors: whenever a different device, dtype or mode is
needed, a deep copy is made and the copy is changed.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .inputs import ModelInputs, as_model_inputs
from .outputs import flatten_outputs

__all__ = ["ModelInputs", "ModelUnderTest", "as_input_tuple", "flatten_outputs", "model_copy", "to_numpy"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def as_input_tuple(example_inputs: Any) -> ModelInputs:
    """Any accepted form of example inputs as ``ModelInputs`` (a Sequence of its tensors); else InputsError."""
    return ModelInputs.from_example(example_inputs)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Detached CPU numpy copy; bf16/fp16 widen to float32 (numpy has no bfloat16)."""
    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.dtype != torch.float64:
        tensor = tensor.float()
    return tensor.cpu().numpy()


def cast_inputs(inputs: Any, *, dtype: Optional[torch.dtype], device: str) -> ModelInputs:
    """Floating inputs to ``dtype`` (integer ids and masks keep theirs), all to ``device``."""
    return as_model_inputs(inputs).cast(dtype=dtype, device=device)


class ModelCopyError(TypeError):
    """The model cannot be deep-copied, and the check only ever runs copies."""


def model_copy(model: torch.nn.Module, *, dtype: Optional[torch.dtype], device: str) -> torch.nn.Module:
    """An eval-mode copy of ``model`` on ``device`` at ``dtype``: never the user's module itself.

    A forward may change its module (bump a buffer or a counter attribute), and an exporter or
    compiler may run it: every stage works on a copy, so the user's model is the same after the
    check as before it, and every stage starts from the same state.
    """
    try:
        clone = copy.deepcopy(model).eval()
    except Exception as exc:  # a lock, an open file, a C handle held by the module
        raise ModelCopyError(f"infercheck works on a deep copy of {type(model).__name__} (so the check never changes "
                             f"it), and copy.deepcopy failed: {type(exc).__name__}: {exc}; make the module "
                             "deep-copyable (drop or recreate the attribute in __deepcopy__)") from exc
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
    for name, tensor in as_model_inputs(inputs).named():
        digest.update(f"in:{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
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
    inputs: ModelInputs
    dynamic_batch: bool = False
    name: str = ""
    _hash: Optional[str] = field(default=None, repr=False)
    _reference_key: Optional[str] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.inputs = as_model_inputs(self.inputs)  # a plain tuple of tensors is positional inputs

    @classmethod
    def create(cls, module: torch.nn.Module, example_inputs: Any, *, dynamic_batch: bool = False) -> "ModelUnderTest":
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"infercheck checks a torch.nn.Module; got {type(module).__name__}")
        return cls(module, ModelInputs.from_example(example_inputs, module), dynamic_batch, type(module).__name__)

    @property
    def hash(self) -> str:
        if self._hash is None:
            self._hash = content_hash(self.module, self.inputs, dynamic_batch=self.dynamic_batch)
        return self._hash

    @property
    def reference_key(self) -> str:
        """What the eager reference's outputs depend on: the artifacts' hash plus the inputs' values.

        ``hash`` leaves input values out on purpose (an engine does not depend on them), so two checks
        of one model on equally shaped inputs share engines; their references must not be shared.
        """
        if self._reference_key is None:  # the inputs' names are in ``hash`` already; values by position
            self._reference_key = f"{self.hash}:{inputs_hash([self.inputs.tensors])}"
        return self._reference_key

    @property
    def batch_size(self) -> int:
        return self.inputs.batch_size

    def doubled(self) -> "ModelUnderTest":
        """The same model on its inputs repeated along the batch axis (the dynamic-batch re-check)."""
        return ModelUnderTest(self.module, self.inputs.doubled(), True, self.name)

    def reference_outputs(self, device: str) -> list[tuple[str, torch.Tensor]]:
        """Eager FP32 outputs on ``device``: the reference every engine is compared with."""
        module = model_copy(self.module, dtype=None, device=device)
        with torch.inference_mode():
            outputs = self.inputs.cast(dtype=None, device=device).call(module)
        return [(name, tensor.detach().clone()) for name, tensor in flatten_outputs(outputs)]
