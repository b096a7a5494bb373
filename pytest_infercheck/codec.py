"""JSON data back into typed results, by their dataclass field types.

A result travels from an xdist worker to the controller (execnet serialises only plain types), into
the JSON report and the baseline file, and back: jsonsafe.json_safe makes it plain, ``from_data``
rebuilds the dataclass from its field annotations, so no module spells a result's fields twice.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any, TypeVar, Union

T = TypeVar("T")
_FLOAT_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def from_data(cls: type[T], data: Any) -> T:
    """The dataclass ``cls`` from ``to_data``'s output; unknown keys (a newer writer's) are ignored."""
    return _decode(cls, data)


def _decode(kind: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _decode(options[0], data) if len(options) == 1 else data
    if origin in (list, tuple, set):
        (item,) = typing.get_args(kind)[:1] or (Any,)
        return [_decode(item, value) for value in data]
    if origin is dict:
        args = typing.get_args(kind)
        value_kind = args[1] if len(args) == 2 else Any
        return {key: _decode(value_kind, value) for key, value in data.items()}
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        known = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{name: _decode(hints[name], value) for name, value in data.items() if name in known})
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(data)
    if kind is float:
        return _FLOAT_WORDS.get(data, data) if isinstance(data, str) else float(data)
    return data
