"""Typed results to JSON-ready data and back, by their dataclass field types.

A result travels from an xdist worker to the controller (execnet serialises only plain types), into
the JSON report and the baseline file, and back: ``to_data`` makes anything a result may carry plain
(dataclasses, enums, numpy scalars and arrays, paths, sets, NaN and Inf, which JSON lacks, as text);
``from_data`` rebuilds the dataclass from its field annotations, so no module spells a result's
fields twice.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from pathlib import PurePath
from typing import Any, TypeVar, Union

T = TypeVar("T")
_FLOAT_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def to_data(value: Any) -> Any:
    """JSON-safe plain data: dict, list, str, int, float (finite), bool, None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return to_data(value.value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (int, str)):
        return int(value) if isinstance(value, int) else str(value)  # str() drops str subclasses
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(to_data(key)): to_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_data(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors: their Python values
        return to_data(value.tolist())
    return str(value)


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
