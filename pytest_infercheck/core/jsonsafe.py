"""``json_safe(value)``: anything a result may carry, as plain JSON (dicts, lists, str, int, float, bool, None).

Results travel from xdist workers on test reports (serialised by execnet) and are written as JSON
reports and baselines.  A numpy scalar left in a result used to end the session with an
INTERNALERROR; NaN and Infinity are not JSON (``json.dumps`` writes them, strict parsers refuse
the file).  So before a result leaves its test, every value is converted:

- numpy scalars -> the Python number (``np.float32(0.5)`` -> ``0.5``), numpy and torch arrays ->
  nested lists (up to :data:`MAX_ARRAY_ELEMENTS`; a larger one -> its shape and dtype, no data);
- non-finite floats -> the strings ``"nan"``, ``"inf"``, ``"-inf"`` (``float()`` reads them back);
- paths -> str; sets -> sorted lists; tuples -> lists; enums -> their value; dataclasses -> dicts;
- dict keys -> str; anything else -> its ``repr`` (a result is a record, not a pickle).

That is the typed contract of the records (measure/results.py) and the plain dicts they carry (the
machine key, the GPU's facts, the settings): nothing else is given a form of its own.  Reading back is
``core/codec.from_data``, by the records' annotations.

Nothing here imports numpy or torch: their types are recognised by duck typing.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from typing import Any

MAX_ARRAY_ELEMENTS = 100_000  # a larger array is a user's tensor left in extra, not a figure: keep its shape only
MAX_DEPTH = 64  # a self-referencing structure ends here instead of recursing forever

JsonValue = Any  # None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]


def json_float(value: float) -> float | str:
    """A finite float as itself; NaN and infinities as the strings ``float()`` reads back."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def json_safe(value: Any, _depth: int = 0) -> JsonValue:
    """``value`` converted to types ``json.dumps(..., allow_nan=False)`` and execnet both accept."""
    if _depth > MAX_DEPTH:
        return f"<nested deeper than {MAX_DEPTH} levels>"
    if isinstance(value, enum.Enum):  # before str: a str-valued enum is a str that execnet refuses
        return json_safe(value.value, _depth)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)  # a plain str, not a subclass
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        return int(value)  # an IntEnum-like subclass would not survive execnet
    if isinstance(value, float):
        return json_float(float(value))
    simple = _simple(value)
    if simple is not _NOT_SIMPLE:
        return simple
    nested = _depth + 1
    if isinstance(value, dict):
        return {_key(k): json_safe(v, nested) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [json_safe(v, nested) for v in sorted(value, key=_sort_key)]
    if _is_array(value):
        return _array(value, nested)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name), nested) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, nested) for v in value]
    return repr(value)


_NOT_SIMPLE = object()


def _simple(value: Any) -> Any:
    """Leaf values with one obvious text or number form; ``_NOT_SIMPLE`` for containers and the rest."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if _is_scalar(value):
        return json_safe(value.item())
    return _NOT_SIMPLE


def _key(key: Any) -> str:
    safe = json_safe(key)
    return safe if isinstance(safe, str) else str(safe)


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, repr(value))  # mixed types sort too, and the order is stable between runs


def _from_array_library(value: Any) -> bool:
    return (type(value).__module__ or "").split(".")[0] in ("numpy", "torch")


def _is_scalar(value: Any) -> bool:
    """A numpy scalar (``np.float32``, ``np.bool_``...) or a zero-dimensional numpy array or torch tensor."""
    return _from_array_library(value) and hasattr(value, "item") and getattr(value, "ndim", None) == 0


def _is_array(value: Any) -> bool:
    return _from_array_library(value) and hasattr(value, "tolist") and hasattr(value, "shape")


def _array(value: Any, depth: int) -> JsonValue:
    shape = [int(n) for n in value.shape]
    size = math.prod(shape)
    if size > MAX_ARRAY_ELEMENTS:
        return {"shape": shape, "dtype": str(value.dtype), "omitted": f"more than {MAX_ARRAY_ELEMENTS} elements"}
    if hasattr(value, "detach"):  # a torch tensor: on the CPU, out of autograd; bfloat16 lists as floats
        value = value.detach().cpu()
    return json_safe(value.tolist(), depth)
