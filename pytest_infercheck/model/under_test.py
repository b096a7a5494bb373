"""The model under test: its inputs, a content hash, copies at other dtypes/devices, the reference.

Nothing here modifies the user's module or tensors: whenever a different device, dtype or mode is
needed, a deep copy is made and the copy is changed.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from ..core.warning_filters import toolchain_warnings_shown
from .inputs import InputsError, ModelInputs, as_model_inputs, dynamic_batch_refusal, plain
from .tensors import to_numpy
from .model_identity import Hasher, Identity, module_identity, tensor_bytes
from .outputs import flatten_outputs

__all__ = ["ModelInputs", "ModelUnderTest", "as_input_tuple", "flatten_outputs", "model_copy", "to_numpy"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def as_input_tuple(example_inputs: Any) -> ModelInputs:
    """Any accepted form of example inputs as ``ModelInputs`` (a Sequence of its tensors); else InputsError."""
    return ModelInputs.from_example(example_inputs)


def cast_inputs(inputs: Any, *, dtype: Optional[torch.dtype], device: str) -> ModelInputs:
    """Floating inputs to ``dtype`` (integer ids and masks keep theirs), all to ``device``."""
    return as_model_inputs(inputs).cast(dtype=dtype, device=device)


LOW_PRECISION_FLOATS = (torch.float16, torch.bfloat16)


def low_precision_parts(module: torch.nn.Module, inputs: ModelInputs) -> tuple[str, ...]:
    """What of ``module`` and ``inputs`` is in FP16/BF16 (plain tensors only), described; () when nothing."""
    if isinstance(module, torch.jit.ScriptModule):  # its graph fixes its dtypes: checked as it is, inputs too
        return ()
    parts = []
    tensors = [t for t in (*module.parameters(), *module.buffers()) if plain(t)]
    for dtype in LOW_PRECISION_FLOATS:
        count = sum(1 for t in tensors if t.dtype == dtype)
        if count:
            parts.append(f"parameters and buffers in {str(dtype).removeprefix('torch.')} ({count} tensors)")
    for name, tensor in inputs.named():
        if tensor.dtype in LOW_PRECISION_FLOATS and plain(tensor):
            parts.append(f"input {name!r} in {str(tensor.dtype).removeprefix('torch.')}")
    return tuple(parts)


def fp32_form(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose FP16/BF16 parameters and buffers are float32; float64 and integer ones, and
    tensor subclasses, as they were."""
    module = model_copy(model, dtype=None, device=str(_device_of(model)))
    module._apply(lambda t: t.float() if plain(t) and t.dtype in LOW_PRECISION_FLOATS else t)
    return module


def _device_of(model: torch.nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


class ModelCopyError(TypeError):
    """The model cannot be deep-copied, and the check only ever runs copies."""


def model_copy(model: torch.nn.Module, *, dtype: Optional[torch.dtype], device: str) -> torch.nn.Module:
    """An eval-mode copy of ``model`` on ``device`` at ``dtype``: never the user's module itself.

    A forward may change its module (bump a buffer or a counter attribute), and an exporter or
    compiler may run it: every stage works on a copy, so the user's model is the same after the
    check as before it, and every stage starts from the same state.
    """
    try:
        # torch's own warnings while copying (a FutureWarning from its pytree code for an exported module) are
        # shown, not raised by a strict filter: the copy is the plugin's doing, not the model's.
        with toolchain_warnings_shown():
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
    """Hash of what determines every artifact built from this model (``model_identity``'s digest)."""
    return model_identity(model, inputs, dynamic_batch=dynamic_batch).digest


def model_identity(model: torch.nn.Module, inputs: Sequence[torch.Tensor], *, dynamic_batch: bool) -> Identity:
    """The model's code and state (model_identity.py says what that covers), its ``repr``, the inputs'
    shapes and dtypes, and ``dynamic_batch``; with what could not be hashed."""
    hasher = Hasher({})
    cls = type(model)
    hasher.write(f"{cls.__module__}.{cls.__qualname__}\n{model!r}")
    try:
        module_identity(model, hasher)
    except RecursionError:  # an object graph nested deeper than Python's stack
        hasher.problem(cls.__name__, "state nested too deeply to hash", strict=True)
    for name, tensor in as_model_inputs(inputs).named():
        hasher.write(f"in:{name}:{tensor.dtype}:{tuple(tensor.shape)}")
    hasher.write(f"dynamic_batch={dynamic_batch}")
    return Identity(hasher.digest.hexdigest()[:32], hasher.unhashable, hasher.state.hexdigest()[:32])


def _same_values(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Equal, NaN where NaN: an input holding NaN is not 'changed' by being read."""
    if first.shape != second.shape or first.dtype != second.dtype:
        return False
    if first.is_floating_point() or first.is_complex():
        return bool(torch.isclose(first, second, rtol=0, atol=0, equal_nan=True).all())
    return torch.equal(first, second)


def inputs_hash(batches: Optional[Sequence[Sequence[torch.Tensor]]]) -> str:
    if not batches:
        return "none"
    digest = hashlib.sha256()
    for batch in batches:
        for tensor in batch:
            digest.update(f"{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor_bytes(tensor))
    return digest.hexdigest()[:32]


UNHASHABLE_NAMED = 3  # attributes an identity note names before a count


@dataclass
class ModelUnderTest:
    """The user's model and example inputs, with the facts every stage needs."""

    module: torch.nn.Module
    inputs: ModelInputs
    dynamic_batch: bool = False
    name: str = ""
    _identity: Optional[Identity] = field(default=None, repr=False)
    _engine_key: Optional[str] = field(default=None, repr=False)
    _reference_key: Optional[str] = field(default=None, repr=False)
    _inputs_hash: Optional[str] = field(default=None, repr=False)
    # What create() widened to FP32 ("parameters and buffers in float16 (4 tensors)", "input 'x' in float16").
    widened: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.inputs = as_model_inputs(self.inputs)  # a plain tuple of tensors is positional inputs

    @classmethod
    def create(cls, module: torch.nn.Module, example_inputs: Any, *, dynamic_batch: bool = False,
               widen: bool = True) -> "ModelUnderTest":
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"infercheck checks a torch.nn.Module; got {type(module).__name__}")
        inputs = ModelInputs.from_example(example_inputs, module)
        if dynamic_batch and inputs.nested:
            raise InputsError(dynamic_batch_refusal(inputs))
        # A model or inputs in FP16/BF16 are checked from their FP32 form: the reference is the eager model in
        # FP32, and an FP32 engine is FP32 (was: the reference ran in the model's FP16, so eager-fp16 was
        # compared with itself and passed with no error, and the FP32 engines failed for FP16's rounding).
        widened = low_precision_parts(module, inputs) if widen else ()
        if widened:
            module = fp32_form(module)
        # A copy of the user's tensors: no stage, exporter or engine is ever handed the user's own.
        return cls(module, inputs.widened(LOW_PRECISION_FLOATS) if widened else inputs.copy(), dynamic_batch,
                   type(module).__name__, widened=widened)

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            self._identity = model_identity(self.module, self.inputs, dynamic_batch=self.dynamic_batch)
        return self._identity

    @property
    def hash(self) -> str:
        """The content hash, as reported (a baseline notes a model that changed by it)."""
        return self.identity.digest

    @property
    def shared(self) -> bool:
        """Whether the hash covers the whole model, so that an equal hash means the same engines."""
        return not self.identity.unhashable

    @property
    def engine_key(self) -> str:
        """What keys this model's artifacts and reference: the hash, made unique when it is partial."""
        if self._engine_key is None:
            self._engine_key = self.hash if self.shared else f"{self.hash}-unshared-{uuid.uuid4().hex}"
        return self._engine_key

    def identity_note(self) -> Optional[str]:
        """Why this model's engines are neither cached nor shared (None when they are): what cannot be hashed,
        the first few named (a scripted model lists a dozen compiled internals), and what follows from it."""
        if self.shared:
            return None
        why = "so its engines are built afresh in every run (a cached engine could belong to another model)"
        if isinstance(self.module, torch.jit.ScriptModule):
            return (f"not cached and not shared with other checks: a TorchScript module "
                    f"({type(self.module).__name__}, from torch.jit.script or trace) cannot be hashed by content, {why}")
        unhashable = self.identity.unhashable
        named = "; ".join(unhashable[:UNHASHABLE_NAMED])
        more = f" and {len(unhashable) - UNHASHABLE_NAMED} more" if len(unhashable) > UNHASHABLE_NAMED else ""
        return f"not cached and not shared with other checks: {named}{more} cannot be hashed, {why}"

    @property
    def reference_key(self) -> str:
        """What the eager reference's outputs depend on: the artifacts' hash plus the inputs' values.

        ``hash`` leaves input values out on purpose (an engine does not depend on them), so two checks
        of one model on equally shaped inputs share engines; their references must not be shared.
        """
        if self._reference_key is None:  # the inputs' names are in ``hash`` already; values by position
            self._reference_key = f"{self.engine_key}:{self.inputs_hash}"
        return self._reference_key

    @property
    def inputs_hash(self) -> str:
        """The example inputs' values, by position (their names, shapes and dtypes are in ``hash``)."""
        if self._inputs_hash is None:
            self._inputs_hash = inputs_hash([self.inputs.tensors])
        return self._inputs_hash

    @property
    def batch_size(self) -> int:
        return self.inputs.batch_size

    def doubled(self) -> "ModelUnderTest":
        """The same model on its inputs repeated along the batch axis (the dynamic-batch re-check)."""
        return ModelUnderTest(self.module, self.inputs.doubled(), True, self.name)

    def reference_outputs(self, device: str) -> list[tuple[str, torch.Tensor]]:
        """Eager FP32 outputs on ``device``: the reference every engine is compared with."""
        return self.eager_run(device)[0]

    def eager_run(self, device: str) -> tuple[list[tuple[str, torch.Tensor]], list[str]]:
        """Eager FP32 outputs on fresh copies of the module and the inputs, and the names of the inputs
        the forward changed in place."""
        module = model_copy(self.module, dtype=None, device=device)
        inputs = self.inputs.cast(dtype=None, device=device)
        with torch.inference_mode():
            outputs = inputs.call(module)
        changed = [name for (name, given), used in zip(self.inputs.named(), inputs.tensors)
                   if not _same_values(given, used.to(given.device))]
        return [(name, tensor.detach().clone()) for name, tensor in flatten_outputs(outputs)], changed
