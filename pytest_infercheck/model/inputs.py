"""A model's example inputs: positional and keyword tensors, in the forms users pass them.

``infercheck(model, x)``, ``(x, y)``, ``{"input_ids": ids, "attention_mask": mask}`` (a Hugging Face
tokenizer's output works as it is) or an explicit ``(args, kwargs)`` pair all become one
``ModelInputs``: the forward is called with ``*args, **kwargs``; exporters get both; ONNX feeds are
built by input name.  As a ``Sequence`` it is the flat list of its tensors (positional first), so code
that only needs "the tensors" (hashes, shapes) treats every form alike.

An argument may itself be a list or tuple of tensors, nested to any depth: torchvision detection's
``model([image])`` is ``infercheck(model, ([image],))``.  Its tensors take part in the flat view in
order, named after the argument and their position (``images_0``, ``images_1_0``): the names the
dynamo ONNX exporter gives the graph inputs it flattens them into.  ``with_tensors`` rebuilds the
lists and tuples, so the forward always gets the structure it was given.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

ACCEPTED_FORMS = ("a tensor, a tuple of tensors (positional), a dict of tensors (keyword arguments, e.g. a "
                  "tokenizer's output), or an explicit (args, kwargs) pair; any argument may be a list or tuple of "
                  "tensors, nested (e.g. ([image],) for model([image]))")
BATCHED_FORM = "one batched tensor [N, ...] in place of the list"


class InputsError(TypeError):
    """The example inputs are not in an accepted form, or do not fit the forward's signature."""


@dataclass(frozen=True, eq=False)  # tensors have no truth value: identity equality
class ModelInputs(Sequence):
    """Positional tensors, keyword tensors, and the forward's names for the positional ones."""

    args: tuple[Any, ...] = ()  # each a tensor, or a list/tuple of them (nested to any depth)
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    arg_names: tuple[str, ...] = ()  # one per positional argument: the forward's parameter names

    def __post_init__(self) -> None:
        if len(self.arg_names) != len(self.args):
            object.__setattr__(self, "arg_names", tuple(f"input_{i}" for i in range(len(self.args))))
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    @classmethod
    def from_example(cls, value: Any, module: Any = None) -> "ModelInputs":
        """Parse the user's example inputs; with ``module``, check them against its forward."""
        if isinstance(value, ModelInputs):
            return value
        args, kwargs = _split(value)
        for where, item in [*((f"example input {i}", t) for i, t in enumerate(args)),
                            *((f"example input {k!r}", t) for k, t in kwargs.items())]:
            _require_tensors(where, item)
        names = _bind(module, args, kwargs) if module is not None else ()
        return cls(tuple(args), kwargs, names)

    # -- the flat view ------------------------------------------------------------------------------

    @property
    def tensors(self) -> tuple[Any, ...]:
        return tuple(tensor for _, tensor in self.named())

    @property
    def nested(self) -> bool:
        """Whether an argument is a list or tuple of tensors rather than one tensor."""
        return any(isinstance(value, (list, tuple)) for value in (*self.args, *self.kwargs.values()))

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, index: Any) -> Any:
        return self.tensors[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.tensors)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.named())

    def named(self) -> list[tuple[str, Any]]:
        """(name, tensor) for every tensor in flat order: an argument's own name, or ``name_i`` inside a list."""
        named: list[tuple[str, Any]] = []
        for name, value in (*zip(self.arg_names, self.args), *self.kwargs.items()):
            _leaves(value, name, named)
        return named

    @property
    def argument_names(self) -> tuple[str, ...]:
        """One name per argument, positional then keyword (``names`` has one per tensor)."""
        return (*self.arg_names, *self.kwargs)

    @property
    def keyword_names(self) -> tuple[str, ...]:
        return tuple(self.kwargs)

    def with_tensors(self, tensors: Sequence[Any]) -> "ModelInputs":
        """The same layout (positions, keywords, names) holding ``tensors`` in flat order."""
        tensors = tuple(tensors)
        if len(tensors) != len(self):
            raise ValueError(f"{len(tensors)} tensors for {len(self)} inputs ({', '.join(self.names)})")
        if not self.nested:  # the common case: one tensor per argument
            count = len(self.args)
            return ModelInputs(tensors[:count], dict(zip(self.kwargs, tensors[count:])), self.arg_names)
        leaves = iter(tensors)
        args = tuple(_rebuild(value, leaves) for value in self.args)
        return ModelInputs(args, {key: _rebuild(value, leaves) for key, value in self.kwargs.items()}, self.arg_names)

    # -- what the stages need -----------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        """Axis 0 of the first tensor; a list's length where the first argument is a list (one image each)."""
        if self.args and isinstance(self.args[0], (list, tuple)):
            return max(len(self.args[0]), 1)
        first = next((t for t in self.tensors if t.dim() > 0), None)
        return int(first.shape[0]) if first is not None else 1

    def cast(self, *, dtype: Any, device: str) -> "ModelInputs":
        """Floating tensors to ``dtype`` (integer ids and masks keep theirs), all to ``device``."""
        return self.with_tensors([_cast(t, dtype, device) for t in self.tensors])

    def widened(self, dtypes: Sequence[Any]) -> "ModelInputs":
        """A copy with the plain floating tensors of ``dtypes`` (FP16, BF16) in float32 (a tensor subclass keeps its
        own dtype rules: as it is)."""
        import torch

        return self.with_tensors([t.detach().to(dtype=torch.float32, copy=True) if t.dtype in dtypes and plain(t)
                                  else t.detach().clone() for t in self.tensors])

    def copy(self) -> "ModelInputs":
        """The same inputs in tensors of their own."""
        return self.with_tensors([t.detach().clone() for t in self.tensors])

    def doubled(self) -> "ModelInputs":
        """Every tensor twice along axis 0: the dynamic-batch re-check's inputs."""
        import torch

        if self.nested:
            raise InputsError(dynamic_batch_refusal(self))
        return self.with_tensors([torch.cat([t, t]) if t.dim() > 0 else t for t in self.tensors])

    def call(self, fn: Callable[..., Any]) -> Any:
        return fn(*self.args, **self.kwargs)

    def describe(self) -> str:
        return ", ".join(f"{name}: {str(t.dtype).replace('torch.', '')}{list(t.shape)}" for name, t in self.named())

    def ordered_for(self, input_names: Sequence[str]) -> list[Any]:
        """The tensors in the order of a graph's ``input_names``: by name, else by position.

        Exporters name graph inputs after the forward's parameters (the dynamo exporter) or after
        what they were told (the TorchScript one, told ``self.names``); a graph from elsewhere
        whose names differ is fed in flat order when the counts agree.
        """
        by_name = dict(self.named())
        if all(name in by_name for name in input_names):
            return [by_name[name] for name in input_names]
        if len(input_names) == len(self):
            return list(self.tensors)
        raise ValueError(f"the ONNX model takes {len(input_names)} input(s) ({', '.join(input_names)}); "
                         f"the example inputs are {len(self)} ({self.describe()})")


def as_model_inputs(value: Any) -> ModelInputs:
    """A ``ModelInputs`` from anything accepted, or from a plain sequence of tensors (flat, positional)."""
    if isinstance(value, ModelInputs):
        return value
    return ModelInputs.from_example(value)


def onnx_feeds(input_names: Sequence[str], inputs: Any) -> dict[str, Any]:
    """``{graph input name: contiguous numpy array}`` for ONNX Runtime, matched by name."""
    import numpy as np

    from .tensors import to_numpy

    tensors = as_model_inputs(inputs).ordered_for(list(input_names))
    return {name: np.ascontiguousarray(_feed_array(t, to_numpy)) for name, t in zip(input_names, tensors)}


def _feed_array(tensor: Any, to_numpy: Any) -> Any:
    """A feed keeps its tensor's dtype where numpy has it: to_numpy widens float16 to float32 for the
    comparison, and a float16 input fed as float32 failed the engine (``expected: (tensor(float16))``).
    Only bfloat16, which numpy lacks, is widened."""
    import torch

    if tensor.dtype == torch.float16:
        return tensor.detach().cpu().numpy()
    return to_numpy(tensor)


def _split(value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch

    if isinstance(value, torch.Tensor):
        return (value,), {}
    if isinstance(value, Mapping):
        return (), _keyword_dict(value, "the example inputs")
    if isinstance(value, (tuple, list)):
        if len(value) == 2 and isinstance(value[0], (tuple, list)) and isinstance(value[1], Mapping):
            return tuple(value[0]), _keyword_dict(value[1], "the kwargs of the (args, kwargs) pair")
        return tuple(value), {}
    raise InputsError(f"the example inputs are a {type(value).__name__}; infercheck takes {ACCEPTED_FORMS}")


def _keyword_dict(value: Mapping, what: str) -> dict[str, Any]:
    bad = [key for key in value if not isinstance(key, str)]
    if bad:
        raise InputsError(f"{what} have non-string key(s) {bad[:3]!r}: keyword inputs are keyed by parameter name")
    return dict(value)


def _require_tensors(where: str, value: Any) -> None:
    """A tensor, or a non-empty list/tuple whose items are (recursively) tensors."""
    import torch

    if isinstance(value, (list, tuple)):
        if not value:
            raise InputsError(f"{where} is an empty {type(value).__name__}: there is no tensor to feed; "
                              f"give at least one ({ACCEPTED_FORMS})")
        for index, item in enumerate(value):
            _require_tensors(f"{where}[{index}]", item)
    elif not isinstance(value, torch.Tensor):
        raise InputsError(f"{where} is a {type(value).__name__}; every input must be a tensor ({ACCEPTED_FORMS})")


def _leaves(value: Any, name: str, named: list[tuple[str, Any]]) -> None:
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _leaves(item, f"{name}_{index}", named)
    else:
        named.append((name, value))


def _rebuild(template: Any, leaves: Iterator[Any]) -> Any:
    """``template``'s lists and tuples, holding the next tensors of ``leaves`` in its tensors' places."""
    if isinstance(template, (list, tuple)):
        return type(template)(_rebuild(item, leaves) for item in template)
    return next(leaves)


def dynamic_batch_refusal(inputs: ModelInputs) -> str:
    """Why a list input cannot have a dynamic batch, and the form that can."""
    listed = [name for name, value in (*zip(inputs.arg_names, inputs.args), *inputs.kwargs.items())
              if isinstance(value, (list, tuple))]
    return (f"dynamic_batch=True with the list input(s) {', '.join(map(repr, listed))}: an exported graph takes a "
            "fixed number of tensors, so a list's length cannot vary; give the batch as "
            f"{BATCHED_FORM}, or check this list length with dynamic_batch=False")


def _bind(module: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """The forward's names for the positional inputs; an InputsError when the inputs do not fit it."""
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return ()
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as err:
        wrap = ("; a forward that takes a list of tensors gets it as one argument: pass ([tensor, ...],), "
                "the list inside a tuple" if len(args) > 1 else "")
        raise InputsError(f"the example inputs do not fit {type(module).__name__}.forward{signature}: {err}; "
                          f"inputs given: {len(args)} positional, keywords {sorted(kwargs) or 'none'}"
                          f"{wrap}") from None
    names: list[str] = []
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            names.extend(f"{name}_{i}" for i in range(len(value)))
        elif kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) and name not in kwargs:
            names.append(name)
    return tuple(names[: len(args)])


def forward_parameters(module: Any) -> Optional[set[str]]:
    """Names the forward takes as keywords; None when it takes any (``**kwargs``) or has no signature."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def plain(tensor: Any) -> bool:
    """A plain tensor or parameter: a subclass (a quantized weight, a DTensor) keeps its own dtype rules."""
    import torch

    return type(tensor) in (torch.Tensor, torch.nn.Parameter)


def _cast(tensor: Any, dtype: Any, device: str) -> Any:
    """Always a copy (``to`` alone returns the tensor itself when nothing changes): a forward that
    changes its input in place (``x.mul_(2)``) changes neither the user's tensor nor another run's."""
    target = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
    return tensor.detach().to(device=device, dtype=target, copy=True)
