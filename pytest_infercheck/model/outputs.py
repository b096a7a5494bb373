"""A model's outputs as named tensors, and the names users may give them.

Tensors, tuples, lists, dicts, dataclasses and Hugging Face ``ModelOutput`` objects (an ordered dict
of its non-None fields), nested in any way, flatten in the order ``torch.utils._pytree`` uses, which
is also the order of the exported ONNX graph's outputs.  Each leaf's canonical name is its path
(``output``, ``output[0]``, ``output['logits']``, ``output['hidden_states'][1]``); its short name
drops ``output``, the brackets and the quotes (``logits``, ``hidden_states.1``).  Either names an
output wherever a user names one (tolerances, ``result.accuracy[...]``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Iterable, Sequence

ROOT = "output"


class OutputError(TypeError):
    """The model's output cannot be compared: it holds no tensor, or an object that is not data."""


class OutputNameError(KeyError):
    """A name given for an output matches none of the model's outputs, or more than one."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def flatten_outputs(outputs: Any) -> list[tuple[str, Any]]:
    """Named tensor leaves of ``outputs``; non-tensor leaves (None, ints, strings) are left out.

    Raises OutputError when there is no tensor at all, or when a transformers cache object is part
    of the output (the exporters cannot return one, and it is state, not a result).
    """
    named: list[tuple[str, Any]] = []
    _walk(outputs, ROOT, named)
    if not named:
        raise OutputError(f"the model's forward returned {_describe(outputs)}, which holds no tensor: infercheck "
                          "compares tensor outputs (return a tensor, or a tuple/dict/dataclass of tensors)")
    return named


def _walk(value: Any, path: str, named: list[tuple[str, Any]]) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        named.append((path, value))
    elif _is_cache(value):
        raise OutputError(
            f"the model returns a {type(value).__module__}.{type(value).__name__} at {path}: a key/value cache is "
            "decoding state, not an output to compare, and the exporters cannot return it. Build the model with "
            "use_cache=False (config.use_cache = False, or from_pretrained(..., use_cache=False)), or return "
            "tensors only")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _walk(item, f"{path}[{key!r}]", named)
    elif isinstance(value, tuple) and isinstance(getattr(type(value), "_fields", None), tuple):
        # A namedtuple is named by its fields, as a dict or a dataclass is (its values stay in their order).
        for name, item in zip(getattr(type(value), "_fields"), value):
            _walk(item, f"{path}[{name!r}]", named)
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", named)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            _walk(getattr(value, item.name), f"{path}[{item.name!r}]", named)


def _is_cache(value: Any) -> bool:
    """A transformers ``Cache`` (DynamicCache, StaticCache, EncoderDecoderCache...), found by class name."""
    return any(cls.__name__ == "Cache" and cls.__module__.startswith("transformers")
               for cls in type(value).__mro__)


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, (str, bytes)):
        return f"a {type(value).__name__} ({value[:40]!r})"
    return f"a {type(value).__module__}.{type(value).__qualname__}".replace("builtins.", "")


_PART = re.compile(r"\[(?:'((?:[^'\\]|\\.)*)'|\"([^\"]*)\"|([^\]]*))\]")


def short_name(canonical: str) -> str:
    """``output['logits']`` -> ``logits``; ``output['hidden_states'][1]`` -> ``hidden_states.1``; ``output`` stays."""
    if not canonical.startswith(ROOT + "["):
        return canonical
    parts = [next(group for group in match.groups() if group is not None) for match in _PART.finditer(canonical)]
    return ".".join(parts) if parts else canonical


def output_aliases(canonical: str) -> set[str]:
    """Every name that designates ``canonical``: itself and its short name."""
    return {canonical, short_name(canonical)}


def resolve_output_name(name: str, output_names: Sequence[str]) -> str:
    """The canonical output name that ``name`` (canonical or short) designates.

    Raises OutputNameError naming the outputs when ``name`` designates none of them, or several.
    """
    if name in output_names:
        return name
    matches = [canonical for canonical in output_names if name in output_aliases(canonical)]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(describe_names(output_names))
    if not matches:
        raise OutputNameError(f"{name!r} names no output of the model; its outputs: {listing}")
    raise OutputNameError(f"{name!r} names several outputs ({', '.join(matches)}): use the full name")


def describe_names(output_names: Iterable[str]) -> list[str]:
    """``output['logits'] (logits)``: each canonical name with its short form where it differs."""
    return [name if short_name(name) == name else f"{name} ({short_name(name)})" for name in output_names]
