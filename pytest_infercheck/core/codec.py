"""JSON data back into typed results, by their dataclass field types; and the one bounded JSON reader.

A result travels from an xdist worker to the controller (execnet serialises only plain types), into
the JSON report and the baseline file, and back: jsonsafe.json_safe makes it plain, ``from_data``
rebuilds the dataclass from its field annotations, so no module spells a result's fields twice.

What comes back from a file may have been written by anyone (a report whose hash was recomputed, a
hand-edited baseline), so nothing here trusts it: :func:`load_json` reads a regular file of bounded
size, refuses NaN and Infinity tokens and nesting deeper than anything the plugin writes, and
``from_data`` checks every field against its annotation.  Each problem is a :class:`DecodeError`
whose message says where (``results[3].nodeid``) and what was found; the caller names the file.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import json
import math
import types
import typing
from typing import Any, TypeVar, Union

T = TypeVar("T")
_FLOAT_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
# json_safe stops at 64 levels inside a result; a report adds a few of its own around it.
MAX_JSON_DEPTH = 100
# A report keeps every latency sample (up to --infer-max-iters per engine): 256 MiB is thousands of
# results. The limit keeps a hostile file from being parsed into many times its size in memory.
MAX_JSON_BYTES = 256 * 2**20


class DecodeError(ValueError):
    """Data that is not what the typed contract says; the message names where and what was found."""


def load_json(path: Any, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in the regular file ``path`` (UTF-8, a BOM allowed), bounded and strict.

    Every way it can fail is a :class:`DecodeError` (``JsonSyntaxError`` for invalid JSON, which
    carries the parser's error for the caller's hint): never OSError, RecursionError or a hang.
    """
    from .files import NotReadable, read_regular_file

    try:
        raw = read_regular_file(path, max_bytes=max_bytes)
    except NotReadable as err:
        raise DecodeError(str(err)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DecodeError(f"not UTF-8 text (byte {err.start}: {err.reason})") from None
    return parse_json(text)


class JsonSyntaxError(DecodeError):
    """Not valid JSON: ``error`` is the parser's (line, column, position) and ``text`` what it parsed."""

    def __init__(self, message: str, error: json.JSONDecodeError, text: str) -> None:
        super().__init__(message)
        self.error = error
        self.text = text


def parse_json(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON: NaN/Infinity tokens (which Python's parser takes by default), numbers that are not
    finite floats (``1e999`` reads as inf without any token), integers too long to read, a key given
    twice in one object (Python keeps the last, other readers the first) and deep nesting refused."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int,
                          object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise JsonSyntaxError(f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})", err, text) from None
    except RecursionError:  # the parser recurses per level: thousands of [ end here, not in an INTERNALERROR
        raise DecodeError(f"nested deeper than {max_depth} levels; not a file pytest-infercheck wrote") from None
    depth = nesting_depth(data, max_depth)
    if depth > max_depth:
        raise DecodeError(f"nested deeper than {max_depth} levels; not a file pytest-infercheck wrote")
    return data


def _refuse_constant(name: str) -> Any:
    raise DecodeError(f"contains the token {name}, which is not JSON (pytest-infercheck writes "
                      "non-finite figures as the strings \"nan\", \"inf\", \"-inf\")")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise DecodeError(f"contains the number {text[:40]}, too large for a float (it would read as infinity)")
    return value


_MAX_INT_DIGITS = 100  # far past any count, size or seed the plugin writes; Python itself refuses past 4300


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise DecodeError(f"contains a whole number of {len(text.lstrip('-'))} digits (at most {_MAX_INT_DIGITS}): "
                          "not a figure pytest-infercheck writes")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise DecodeError(f"gives the key {twice[:80]!r} twice in one object; which one counts would depend on the "
                          "reader, so the file is refused")
    return data


def nesting_depth(data: Any, limit: int) -> int:
    """How deeply lists and objects nest in ``data`` (a scalar is 0), counted without recursion; stops past ``limit``."""
    deepest, stack = 0, [(data, 1)]
    while stack and deepest <= limit:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def from_data(cls: type[T], data: Any, where: str = "") -> T:
    """The dataclass ``cls`` from ``to_data``'s output; unknown keys (a newer writer's) are ignored.

    Every field is checked against its annotation (a str is a str, a float a number or one of
    ``"nan"``/``"inf"``/``"-inf"``, an enum one of its values, a list a list); ``tuple[X, ...]`` and
    ``tuple[X, Y]`` read a JSON list back as a tuple (frozen records hold tuples); a mismatch is a
    DecodeError naming the field under ``where``.
    """
    return _decode(cls, data, where or cls.__name__)


def _decode(kind: Any, data: Any, where: str) -> Any:
    if kind is Any or isinstance(kind, TypeVar):
        return data
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        return _decode_union(kind, data, where)
    if data is None:
        raise DecodeError(f"{where} is null, expected {_expected(kind)}")
    if origin is not None:
        return _decode_generic(kind, origin, data, where)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _decode_dataclass(kind, data, where)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(data)
        except ValueError:
            raise _mismatch(kind, data, where) from None
    return _decode_scalar(kind, data, where)


def _decode_union(kind: Any, data: Any, where: str) -> Any:
    args = typing.get_args(kind)
    if data is None:
        if type(None) in args:
            return None
        raise DecodeError(f"{where} is null, expected {_expected(kind)}")
    options = [arg for arg in args if arg is not type(None)]
    for option in options:
        try:
            return _decode(option, data, where)
        except DecodeError:
            if len(options) == 1:
                raise
    raise _mismatch(kind, data, where)


def _decode_generic(kind: Any, origin: Any, data: Any, where: str) -> Any:
    args = typing.get_args(kind)
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set):
        if not isinstance(data, list):
            raise _mismatch(kind, data, where)
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[X, Y]: one item per position
            if len(data) != len(args):
                raise DecodeError(f"{where} has {len(data)} items, expected {len(args)}")
            return tuple(_decode(item, value, f"{where}[{index}]")
                         for index, (item, value) in enumerate(zip(args, data)))
        item = args[0] if args else Any
        items = [_decode(item, value, f"{where}[{index}]") for index, value in enumerate(data)]
        return tuple(items) if origin is tuple else items  # tuple[X, ...]: a frozen record's sequence
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(data, dict):
            raise _mismatch(kind, data, where)
        value_kind = args[1] if len(args) == 2 else Any
        return {key: _decode(value_kind, value, f"{where}.{key}") for key, value in data.items()}
    if origin is typing.Literal:
        if data not in args:
            raise _mismatch(kind, data, where)
        return data
    return data


def _decode_dataclass(kind: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise _mismatch(kind, data, where)
    hints = _type_hints(kind)
    fields = [f for f in dataclasses.fields(kind) if f.init]
    for f in fields:
        if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise DecodeError(f"{where}.{f.name} is missing")
    values = {f.name: _decode(hints[f.name], data[f.name], f"{where}.{f.name}") for f in fields if f.name in data}
    try:
        return kind(**values)
    except (TypeError, ValueError) as err:  # a __post_init__ refusing a value
        raise DecodeError(f"{where}: {err}") from None


@functools.lru_cache(maxsize=None)
def _type_hints(kind: type) -> dict[str, Any]:
    """typing.get_type_hints, once per dataclass: it evaluates every annotation again on each call,
    which made a report of 10,000 results take minutes to read."""
    return typing.get_type_hints(kind)


def _decode_scalar(kind: Any, data: Any, where: str) -> Any:
    if kind is float:
        if isinstance(data, str) and data in _FLOAT_WORDS:
            return _FLOAT_WORDS[data]
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
    elif kind is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
    elif kind in (str, bool):
        if type(data) is kind:
            return data
    elif not isinstance(kind, type) or isinstance(data, kind):
        return data
    raise _mismatch(kind, data, where)


_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}


def _expected(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        options = [_expected(arg) for arg in typing.get_args(kind) if arg is not type(None)]
        return " or ".join(options) + (" or null" if type(None) in typing.get_args(kind) else "")
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set):
        return "a list"
    if origin in (dict, collections.abc.Mapping):
        return "an object"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(kind)))
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "one of " + ", ".join(repr(member.value) for member in kind)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return f"an object ({kind.__name__})"
    return _NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def _mismatch(kind: Any, data: Any, where: str) -> DecodeError:
    shown = repr(data) if not isinstance(data, (dict, list)) else ("an object" if isinstance(data, dict) else "a list")
    return DecodeError(f"{where} is {shown[:80]}, expected {_expected(kind)}")
