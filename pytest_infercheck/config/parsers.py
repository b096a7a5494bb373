"""The parsers behind every setting: each turns a user's value into the setting's value or raises
OptionError naming the accepted forms (the caller adds the option's name).

Every value the user can give (command line, ini file, marker, fixture call) goes through these, so
a bad value is rejected the same way wherever it came from; NaN, infinities and out-of-range values
are refused rather than allowed to switch a check off.  Nothing here imports torch.
"""


from __future__ import annotations

import math
import re
from typing import Any, Iterable, Optional, Sequence

from ..measure.budget import Budget
from ..core.spec import DEVICES, PRECISIONS, EngineSpec
from ..measure.stats import PERCENTILES

STATISTICS: tuple[str, ...] = (*PERCENTILES, "mean")
# MLPerf's single-stream scenario reports the 90th percentile: a budget says "p90" unless told.
DEFAULT_STATISTIC = "p90"
CUDA_GRAPH_MODES: tuple[str, ...] = ("off", "on", "both")
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

_UNIT_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>us|ms|s)\s*$")
_PERCENT = re.compile(r"^\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


class OptionError(ValueError):
    """A value the user gave that does not parse; the message names the accepted forms."""


# torch.manual_seed takes any value that fits an unsigned 64-bit integer (larger ones overflow in C++).
MAX_SEED = 2**64 - 1


def _shown(text: Any) -> str:
    """The value as the user gave it, cut short: a 400-digit number should not fill the terminal."""
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:30] + "..." + shown[-6:]


def _number(text: Any, forms: str) -> float:
    """``text`` as a finite float: NaN compares false with every limit and inf disables it, so neither is a value."""
    if isinstance(text, bool):
        raise OptionError(f"{_shown(text)} is not a number; use {forms}")
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise OptionError(f"{_shown(text)} is not a number; use {forms}") from None
    if not math.isfinite(value):
        raise OptionError(f"{_shown(text)} is not a finite number; use {forms}")
    return value


def parse_duration_ms(text: str) -> float:
    """``"30ms"``, ``"2.5ms"``, ``"1s"``, ``"250us"`` -> milliseconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise OptionError(f"{text!r} is not a duration; use a number with a unit: 250us, 2.5ms, 30ms, 1s")
    value = float(match["value"]) * _UNIT_TO_MS[match["unit"]]
    if not math.isfinite(value):  # 400 digits overflow float() to inf
        raise OptionError(f"{_shown(text)} is too large; use a number with a unit: 250us, 2.5ms, 30ms, 1s")
    if value <= 0:
        raise OptionError(f"{text!r} must be greater than zero; use a number with a unit: 250us, 2.5ms, 30ms, 1s")
    return value


def parse_budget(text: str | Budget) -> Budget:
    """``"30ms"`` (p90) or ``"p99:30ms"``, ``"p50:..."``, ``"mean:..."``."""
    if isinstance(text, Budget):
        return text
    statistic, sep, duration = str(text).partition(":")
    if not sep:
        statistic, duration = DEFAULT_STATISTIC, statistic
    statistic = statistic.strip().lower()
    if statistic not in STATISTICS:
        raise OptionError(
            f"{text!r}: unknown statistic {statistic!r}; use one of {', '.join(STATISTICS)} "
            f"as a prefix (p99:30ms) or none for {DEFAULT_STATISTIC}"
        )
    try:
        return Budget(statistic, parse_duration_ms(duration))
    except OptionError as err:
        # The duration's own message quotes it: name the whole value only where it differs (p99:fast).
        given = "" if duration.strip() == str(text).strip() else f"{text!r}: "
        raise OptionError(f"{given}{err}; forms: 30ms, p99:30ms, mean:2.5ms, p50:1s") from None


def parse_percent(text: str | float) -> float:
    """``"5%"`` or ``0.05`` -> 0.05: a finite, non-negative fraction."""
    forms = "a percentage such as 5% or a fraction such as 0.05"
    match = _PERCENT.match(text) if isinstance(text, str) else None
    value = _number(match["value"], forms) / 100 if match else _number(text, forms)
    if value < 0:
        raise OptionError(f"{text!r} must not be negative; use {forms}")
    return value


def parse_fraction(text: str | float) -> float:
    """A share of elements, 0 to 1 (``"1%"``, ``0.01``): more than all of them means nothing."""
    value = parse_percent(text)
    if value > 1:
        raise OptionError(f"{text!r} is more than 100%; use a share from 0% to 100% (or 0 to 1)")
    return value


def _listed(value: Any, forms: str) -> list[Any]:
    """A comma-separated string split, or a marker's list, tuple or set as its items; anything else
    (None, a number, a bool, a dict, bytes) is refused: iterating it raised TypeError, which stopped the
    collection of the whole file instead of failing the one test."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    raise OptionError(f"{_shown(value)} is a {type(value).__name__}; use {forms}")


def _parse_choices(text: str | Iterable[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    items = [str(p).strip().lower() for p in _listed(text, f"a list or a comma-separated string of {what}s")]
    items = [item for item in items if item]
    unknown = [item for item in items if item not in known]
    if unknown:
        raise OptionError(f"unknown {what} {', '.join(map(repr, unknown))}; known {what}s: {', '.join(known)}")
    if not items:
        raise OptionError(f"no {what} given; known {what}s: {', '.join(known)}")
    return tuple(dict.fromkeys(items))


def _parse_one_choice(text: str, known: Sequence[str], what: str) -> str:
    """One of ``known``: a list (``cpu,cuda``) is refused rather than read as its first entry."""
    choices = _parse_choices(str(text), known, what)
    if len(choices) > 1:
        raise OptionError(f"one {what}, not {', '.join(choices)}; known {what}s: {', '.join(known)}")
    return choices[0]


def parse_backends(text: str | Iterable[str]) -> tuple[str, ...]:
    from ..backends import names

    return _parse_choices(text, names(), "backend")


def parse_engines(value: str | Iterable[str]) -> tuple[EngineSpec, ...]:
    """Exact engine ids instead of the backends x precisions x graphs product: "onnxruntime-int8,eager-fp16"."""
    items = [str(p).strip() for p in _listed(value, "a list or a comma-separated string of engine ids")]
    items = [item for item in items if item]
    if not items:
        raise OptionError("no engine given; list engine ids such as onnxruntime-fp16, eager-fp32-cudagraph")
    from ..backends import engine_spec

    specs = []
    for item in items:
        try:
            specs.append(engine_spec(item))
        except ValueError as err:
            raise OptionError(str(err)) from None
    return tuple(dict.fromkeys(specs))


def parse_precisions(text: str | Iterable[str]) -> tuple[str, ...]:
    return _parse_choices(text, PRECISIONS, "precision")


def parse_device(text: str) -> str:
    return _parse_one_choice(text, DEVICES, "device")


def parse_cuda_graphs(value: str | bool | Iterable[bool]) -> tuple[bool, ...]:
    """``off``/``on``/``both`` (or a bool, or a list of bools, in a marker) -> the graph modes to test."""
    if isinstance(value, bool):
        return (value,)
    if isinstance(value, str):
        mode = value.strip().lower()
        table = {"off": (False,), "false": (False,), "on": (True,), "true": (True,), "both": (False, True)}
        if mode not in table:
            raise OptionError(f"{value!r}: use one of {', '.join(CUDA_GRAPH_MODES)}")
        return table[mode]
    # each entry as one value: bool("off") is True, so ["off"] tested with CUDA graphs on
    modes = tuple(dict.fromkeys(mode for item in _listed(value, ", ".join(CUDA_GRAPH_MODES))
                                for mode in parse_cuda_graphs(_graph_item(item))))
    if not modes:
        raise OptionError("an empty list; use off, on or both")
    return modes


def _graph_item(item: Any) -> Any:
    if isinstance(item, (bool, str)):
        return item
    raise OptionError(f"{_shown(item)} in the list is not a CUDA Graph mode; use True, False, or {', '.join(CUDA_GRAPH_MODES)}")


def parse_compile_mode(text: str) -> str:
    return _parse_one_choice(text, COMPILE_MODES, "torch.compile mode")


FP8_GRANULARITIES: tuple[str, ...] = ("row", "tensor")


def parse_fp8_granularity(text: str) -> str:
    """``row`` or ``tensor``: the scales of torchao's FP8 engines (backends/torchao_quant.py)."""
    return _parse_one_choice(text, FP8_GRANULARITIES, "FP8 scale granularity")


XDIST_GROUPS: tuple[str, ...] = ("auto", "on", "off")


def parse_xdist_groups(text: str) -> str:
    """``auto``, ``on`` or ``off`` (xdist_groups.py says what each does)."""
    return _parse_one_choice(text, XDIST_GROUPS, "xdist grouping")


def parse_trt_target(text: str) -> str:
    """``auto`` or a compute capability (``sm_89``, ``SM89``, ``8.9``) -> ``auto`` / ``sm_89``."""
    if str(text).strip().lower() == "auto":
        return "auto"
    from ..backends.trt_strongly_typed import normalize_target

    try:
        return normalize_target(text)
    except ValueError as err:
        raise OptionError(f"{err}, or auto") from None


def _whole_number(text: Any, forms: str) -> int:
    """An int from a string or an integral number; a bool or 2.5 is not a count."""
    if isinstance(text, bool) or (isinstance(text, float) and not (math.isfinite(text) and text.is_integer())):
        raise OptionError(f"{text!r} is not a whole number; use {forms}")
    try:
        return int(text)
    except (TypeError, ValueError):
        raise OptionError(f"{text!r} is not a whole number; use {forms}") from None


def parse_positive_int(text: str | int) -> int:
    """A whole number of at least 1 (timed iterations: zero would time nothing)."""
    value = _whole_number(text, "a whole number of at least 1, e.g. 50")
    if value < 1:
        raise OptionError(f"{text!r} must be at least 1; use a whole number such as 50")
    return value


def parse_count(text: str | int) -> int:
    """A whole number of zero or more (0 is meaningful: no warm-up iterations)."""
    value = _whole_number(text, "a whole number of 0 or more, e.g. 10")
    if value < 0:
        raise OptionError(f"{text!r} must not be negative; use a whole number of 0 or more, e.g. 10")
    return value


def parse_seed(text: str | int) -> int:
    """A seed torch.manual_seed accepts: a whole number from 0 to 2**64 - 1."""
    value = _whole_number(text, f"a whole number from 0 to {MAX_SEED}")
    if not 0 <= value <= MAX_SEED:
        raise OptionError(f"{_shown(text)} is out of range; use a whole number from 0 to {MAX_SEED} (2**64 - 1)")
    return value


def parse_seconds(text: str | float) -> float:
    """``"1s"``, ``"500ms"`` or a bare number of seconds -> finite, non-negative seconds."""
    forms = "a number of seconds (2, 0.5) or a duration with a unit (500ms, 1s)"
    if isinstance(text, str) and _DURATION.match(text):
        return parse_duration_ms(text) / 1000.0
    seconds = _number(text, forms)
    if seconds < 0:
        raise OptionError(f"{text!r} must not be negative; use {forms}")
    return seconds


def parse_timeout(text: str | float) -> float:
    """A deadline in seconds (``600``, ``10s``, ``500ms``), or ``off`` for none, returned as 0.0.

    A typed 0 is refused rather than read as "no deadline" (it could as well mean "fail at once");
    "off" is stored as 0.0 because ``progress.run_build`` reads 0 as no deadline and because a
    None from the command line would read as "not given".
    """
    if isinstance(text, str) and text.strip().lower() == "off":
        return 0.0
    forms = "seconds (600), a duration (10s, 500ms) or off for no deadline"
    try:
        seconds = parse_seconds(text)
    except OptionError:
        raise OptionError(f"{_shown(text)} is not a deadline; use {forms}") from None
    if seconds <= 0:
        raise OptionError(f"{_shown(text)} must be greater than zero; use {forms}")
    return seconds


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise OptionError(f"{text!r} is not a boolean; use true or false")


def parse_float(text: str | float) -> float:
    """A finite, non-negative number (a tolerance, a floor)."""
    value = _number(text, "a finite number of 0 or more, e.g. 1e-5")
    if value < 0:
        raise OptionError(f"{text!r} must not be negative; use a finite number of 0 or more, e.g. 1e-5")
    return value


def parse_cosine(text: str | float) -> float:
    """A cosine similarity threshold, 0 to 1: above 1 nothing passes, and 0 already accepts everything."""
    value = parse_float(text)
    if value > 1:
        raise OptionError(f"{text!r} is above 1; use a cosine similarity from 0 to 1, e.g. 0.999")
    return value


def parse_max_regression(text: str | float) -> float:
    """``"5%"`` or ``0.05``; a bare number above 1 (``5``) is refused rather than read as 500%."""
    value = parse_percent(text)
    if value > 1 and not str(text).strip().endswith("%"):
        raise OptionError(f"{text!r} would mean {value:.0%}; write 5% (or 0.05) for five percent")
    return value


def parse_factor(text: str | float) -> float:
    """A finite growth factor of at least 1."""
    value = _number(text, "a finite factor of at least 1, e.g. 2")
    if value < 1:
        raise OptionError(f"{text!r} must be at least 1 (2 means: fail when an error figure more than doubles)")
    return value


def parse_confidence(text: str | float) -> float:
    """``"95%"`` or ``0.95``: strictly between 50% and 100%."""
    value = parse_percent(text)
    if not 0.5 < value < 1.0:
        raise OptionError(f"{text!r} must be above 50% and below 100%, e.g. 95% or 0.99")
    return value


def parse_name_list(value: str | Iterable[str]) -> tuple[str, ...]:
    """"Det,Unique" or ["Det", "Unique"] -> ("Det", "Unique"): operator or node names, kept as written."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, Iterable):
        items = [str(part).strip() for part in value]
    else:
        raise OptionError(f"{value!r}: expected names as a list or a comma-separated string, e.g. ['Det', 'Unique']")
    return tuple(dict.fromkeys(item for item in items if item))


def parse_keep_fp32(value: str | Iterable[str]) -> tuple[str, ...]:
    """keep_fp32: module names (a list, or "encoder.layer.3,pooler").  An empty name is refused, not dropped:
    it would mean the root module, the whole model in FP32, which is the fp32 engine, not a keep-list."""
    if not isinstance(value, str) and isinstance(value, Iterable):
        value = list(value)  # a generator or a set, read once
    names = parse_name_list(value)
    # A listed "" or " ", or a string of nothing but commas: the root, not "no list" ("" and [] are that).
    empty = any(not str(part).strip() for part in value) if isinstance(value, list) else value.strip() and not names
    if empty:
        raise OptionError(f"{_shown(value)} holds an empty module name: the root module cannot be kept in FP32 (the "
                          "whole model in FP32 is the fp32 engine); name submodules as model.named_modules() does, "
                          "e.g. ['encoder.layer.3', 'pooler']")
    return names


INT8_OPS_FORMS = "ONNX operator types such as MatMul,Gemm,Conv,ConvTranspose (the default), or all"


def parse_int8_ops(value: str | Iterable[str]) -> tuple[str, ...]:
    """int8_ops: operator types (a list or "MatMul,Gemm"), or ``all``.  None at all is refused: ONNX Runtime's
    quantizer reads an empty list as every type, so the engine would quantize everything while its recipe
    said nothing.  Where onnxruntime is installed, a type its QDQ quantizer does not handle is refused
    here too, rather than at every INT8 item's build."""
    ops = parse_name_list(value)
    if not ops:
        raise OptionError(f"{_shown(value)} names no operator type; use {INT8_OPS_FORMS}")
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is not None:
        from ..model.precision import unknown_int8_ops

        try:
            problem = unknown_int8_ops(ops)
        except Exception:  # a broken install: the build says so, item by item
            return ops
        if problem:
            raise OptionError(problem)
    return ops


def parse_gpus(value: str | int | Iterable[Any]) -> Optional[tuple[int, ...]]:
    """``"0,1"`` -> (0, 1): the GPUs xdist workers are pinned to, as indices into the visible ones; ``all``: None.

    A repeated index is refused rather than merged: "0,0" is a typo more often than a wish to weight GPU 0.
    """
    forms = "comma-separated GPU indices such as 0,1 (counted among the GPUs CUDA_VISIBLE_DEVICES shows), or all"
    if isinstance(value, str) and value.strip().lower() == "all":
        return None
    parts = [value] if isinstance(value, int) and not isinstance(value, bool) else _listed(value, forms)
    if not parts:
        raise OptionError(f"no GPU given; use {forms}")
    if any(str(part).strip() == "" for part in parts):
        raise OptionError(f"{_shown(value)} has an empty entry; use {forms}")
    indices = []
    for part in parts:
        if not re.fullmatch(r"\d{1,9}", str(part).strip()):  # 9 digits: int() refuses past 4300 with ValueError
            raise OptionError(f"{_shown(part)} is not a GPU index; use {forms}")
        if int(part) in indices:
            raise OptionError(f"GPU {int(part)} is listed twice in {_shown(value)}; list each GPU once ({forms})")
        indices.append(int(part))
    return tuple(indices)


def parse_threads(value: Any) -> Any:
    """``auto`` or a positive integer (``--infer-threads``)."""
    from ..core.cpu_threads import ThreadsError, parse_threads as parse

    try:
        return parse(value)
    except ThreadsError as err:
        raise OptionError(str(err)) from None
