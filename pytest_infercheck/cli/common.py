"""What every ``infercheck`` command shares: the usage error, the exit codes, and reading a model and
its example inputs from the command line (a factory ``package.module:function``, shapes, dtypes).

Below cli.py (the parser and ``audit``), cli_check.py (``check``) and cli_saved.py (``gate``,
``baseline update``, ``report``), so none imports another to raise an error or load a model.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # EXIT_FAILED: cannot run (audit), regressed (gate), failed (check)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
# --input-dtype's choices (torch's names): an .onnx file's declared types, where no --input-dtype is given, too.
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")


class UsageError(Exception):
    """Something the user gave cannot be used; the message says what and the accepted forms."""


def one_line(text: str) -> str:
    return " ".join(text.split())


def describe_error(err: BaseException) -> str:
    """``ValueError: factory boom``: the exception as one short line (an import error's text can be long)."""
    text = one_line(str(err))
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def check_model_runs(model: Any, inputs: Any, source: str) -> None:
    """The model's own forward on the example inputs, before any exporter: when eager PyTorch fails on
    them (a wrong shape), no target is to blame, so it is exit 2 with torch's reason, not exit 1."""
    import torch

    from ..model.inputs import as_model_inputs
    from ..model.under_test import model_copy

    try:
        with torch.no_grad():
            as_model_inputs(inputs).call(model_copy(model, dtype=None, device="cpu"))  # a copy: the audit's model unchanged
    except Exception as err:  # whatever the model raises: its reason, in one line
        raise UsageError(f"{source}: the model itself fails on these example inputs ({describe_error(err)}); "
                         "give inputs its forward accepts") from None


def make_inputs(shapes: Sequence[str], dtypes: Sequence[str]) -> tuple[Any, ...]:
    """Random floats (standard normal) or zeros for integer/bool inputs, seeded so runs agree."""
    import torch

    if dtypes and len(dtypes) not in (1, len(shapes)):
        raise UsageError(f"--input-dtype given {len(dtypes)} times for {len(shapes)} inputs: give one, or one per input")
    generator = torch.Generator().manual_seed(0)
    specs = [(text, _parse_shape(text), getattr(torch, _dtype_name(dtypes, position)))
             for position, text in enumerate(shapes)]
    _check_input_memory(specs)
    inputs = []
    for text, shape, dtype in specs:
        try:
            inputs.append(torch.randn(shape, generator=generator).to(dtype) if dtype.is_floating_point
                          else torch.zeros(shape, dtype=dtype))
        except (RuntimeError, MemoryError) as err:  # what the memory check could not foresee (a cgroup limit)
            raise UsageError(f"--input-shape {text!r}: cannot allocate it ({describe_error(err)})") from None
    return tuple(inputs)


def _parse_shape(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    if "" in parts and any(parts):  # 8,,8 was read as 8,8 and 2,8, as 2,8: a typo audited as another shape
        raise UsageError(f"--input-shape {text!r}: an empty dimension; expected comma-separated integers, e.g. 1,3,224,224")
    try:
        shape = [int(part) for part in parts if part]
    except ValueError:
        raise UsageError(f"--input-shape {text!r}: expected comma-separated integers, e.g. 1,3,224,224") from None
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"--input-shape {text!r}: expected positive comma-separated integers, e.g. 1,3,224,224")
    return shape


def _dtype_name(dtypes: Sequence[str], position: int) -> str:
    name = (dtypes[position] if len(dtypes) > 1 else dtypes[0]) if dtypes else "float32"
    if name not in DTYPES:
        raise UsageError(f"--input-dtype {name!r}: use one of {', '.join(DTYPES)}")
    return name


def _check_input_memory(specs: Sequence[tuple[str, list[int], Any]]) -> None:
    """Refuse, before allocating, example inputs larger than this machine's memory (a typo such as
    100000000000,8 was an allocation traceback, exit 1): the audit would have to hold them and more."""
    import math

    memory = _physical_memory()
    total = 0
    for text, shape, dtype in specs:
        size = math.prod(shape) * dtype.itemsize
        total += size
        if memory and total > memory:
            raise UsageError(f"--input-shape {text!r}: {math.prod(shape)} elements ({size / 2**30:.3g} GiB as "
                             f"{str(dtype).removeprefix('torch.')}) do not fit this machine's {memory / 2**30:.3g} GiB "
                             "of memory; give the shape of one example batch, e.g. 1,3,224,224")


def _physical_memory() -> int:
    """Bytes of physical memory (0 where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return 0


# What an --inputs factory may return: the forms the plugin's infercheck() takes (model/inputs.py).
INPUT_FORMS = "a tensor, a tuple of tensors, a dict of keyword tensors (a tokenizer's output) or an (args, kwargs) pair"


def inputs_from(spec: str) -> Any:
    inputs = call_factory(spec, "--inputs")
    from ..model.under_test import as_input_tuple

    try:
        as_input_tuple(inputs)
    except TypeError as err:
        detail = str(err) if isinstance(inputs, (tuple, list)) else f"the factory returned a {type(inputs).__name__}"
        raise UsageError(f"--inputs {spec}: {detail}; expected {INPUT_FORMS}") from None
    return inputs


def call_factory(spec: str, what: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"{what} {spec!r}: expected package.module:callable")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like pytest's rootdir: factories in the project are importable
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(f"{what} {spec}: cannot import it ({describe_error(err)}); "
                         "expected package.module:callable") from None
    except BaseException as err:  # the user's module itself fails: their error, in one line
        _reraise_interrupt(err)
        raise UsageError(f"{what} {spec}: importing {module_name} raised {describe_error(err)}") from None
    if not hasattr(module, attribute):
        raise UsageError(f"{what} {spec}: cannot import it ({module_name} has no attribute {attribute!r}); "
                         "expected package.module:callable")
    factory = getattr(module, attribute)
    if not callable(factory):
        return factory
    try:
        return factory()
    except BaseException as err:  # GeneratorExit, SystemExit, a BaseException of their own: one line, not a traceback
        _reraise_interrupt(err)
        raise UsageError(f"{what} {spec}: the factory raised {describe_error(err)}") from None


def _reraise_interrupt(err: BaseException) -> None:
    """Ctrl-C goes on to main(), which ends with exit 130; everything else the user's code raises is theirs."""
    if isinstance(err, KeyboardInterrupt):
        raise err


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]

