"""`infercheck audit MODEL ...`: the compatibility audit from the command line (and, through
cli_check.py, `infercheck check TARGET`, the plugin's check with no test written; through cli_saved.py,
`infercheck gate`, `infercheck baseline update`, `infercheck report` on saved reports).

Exit status: 0 when every target can run the model, 1 when one cannot, 2 when the audit could not
be made: a bad option, a model file that is not ONNX, a module or factory that cannot be imported
or raises, an output that cannot be written, ONNX Runtime missing for an ONNX Runtime target.
Each of those is one line on stderr naming the input, never a traceback: exit 1 must mean
"a target cannot run the model" and nothing else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from .common import EXIT_FAILED as EXIT_CANNOT_RUN
from .common import (DTYPES, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, call_factory, describe_error,
    inputs_from, one_line, split_list, check_model_runs, make_inputs)


def build_parser() -> argparse.ArgumentParser:
    from ..audit.runner import TARGETS

    parser = argparse.ArgumentParser(prog="infercheck", description="pytest-infercheck command line")
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser(
        "audit", help="which operators each backend cannot run, where, and why",
        description="Audit MODEL for the given targets. MODEL is an .onnx file or package.module:factory "
                    "(a callable returning a torch.nn.Module; give its inputs with --input-shape or --inputs).")
    audit.add_argument("model", metavar="MODEL", help="path/to/model.onnx or package.module:factory")
    audit.add_argument("--input-shape", action="append", default=[], metavar="D0,D1,...",
                       help="shape of one input (repeat for several inputs), e.g. 1,3,224,224")
    audit.add_argument("--input-dtype", action="append", default=[], metavar="DTYPE",
                       help=f"dtype of each input, in order ({', '.join(DTYPES)}; default: the types an .onnx "
                            "file declares, else float32)")
    audit.add_argument("--inputs", metavar="package.module:factory",
                       help="a callable returning the example inputs (a tensor, a tuple of tensors, a dict of keyword "
                            "tensors or an (args, kwargs) pair)")
    audit.add_argument("--targets", default="tensorrt,onnxruntime", metavar="LIST",
                       help=f"comma-separated targets ({', '.join(TARGETS)}); default tensorrt,onnxruntime")
    audit.add_argument("--trt-version", metavar="X.Y",
                       help="TensorRT version whose support table predicts findings when TensorRT is not installed "
                            "(10.1, 10.15; a major version picks its newest table; default: the newest)")
    audit.add_argument("--allow-ops", default="", metavar="LIST", help="operators that are known, accepted gaps")
    audit.add_argument("--allow-nodes", default="", metavar="LIST", help="node names that are known, accepted gaps")
    audit.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    audit.add_argument("--markdown", metavar="PATH", help="also write the report as Markdown")
    from .check import add_command
    from .saved import add_commands

    add_command(commands)  # check: the plugin's check of one model, with no test written (cli_check.py)
    add_commands(commands)  # gate, baseline update, report: saved reports (cli_saved.py)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)  # argparse exits with 2 on a bad option
    command = "baseline update" if args.command == "baseline" else args.command
    try:
        if args.command == "audit":
            return run_audit(args)
        if args.command == "check":
            from .check import run_check

            return run_check(args)
        from .saved import run_saved

        return run_saved(args)
    except UsageError as err:
        print(f"infercheck {command}: error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C (or a factory raising it): the shell's code for SIGINT, no traceback
        print(f"infercheck {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse unwritable or colliding output paths before the audit runs (it may take minutes)."""
    from ..core.files import colliding_outputs, output_problem

    outputs = {"--json": args.json, "--markdown": args.markdown}
    for option, path in outputs.items():
        problem = output_problem(path) if path else None
        if problem:
            raise UsageError(f"{option} {problem}")
    collision = colliding_outputs(outputs)
    if collision:
        raise UsageError(collision)


def check_onnxruntime(targets: Sequence[str]) -> None:
    """An ONNX Runtime target without ONNX Runtime is an audit that cannot be made, not a pass."""
    from ..audit.ort_placement import onnxruntime_missing

    wanted = [target for target in targets if target.startswith("onnxruntime")]
    missing = onnxruntime_missing() if wanted else None
    if missing:
        others = [target for target in targets if target not in wanted]
        instead = f"; or audit without it: --targets {','.join(others)}" if others else ""
        raise UsageError(f"--targets {','.join(wanted)}: {missing}{instead}")


def write_outputs(report: Any, args: argparse.Namespace) -> None:
    from ..audit.render import render_json, render_markdown
    from ..core.files import write_atomic

    for option, path, render in (("--json", args.json, render_json), ("--markdown", args.markdown, render_markdown)):
        if path:
            try:
                write_atomic(Path(path), render(report))
            except OSError as err:
                raise UsageError(f"{option} {path}: cannot write it ({err.strerror or err})") from None


def run_audit(args: argparse.Namespace) -> int:
    from ..audit.render import render_text
    from ..audit.runner import audit, parse_targets
    from ..audit.tensorrt_static import resolve_version

    try:
        targets = parse_targets(args.targets)
        if args.trt_version is not None and not args.trt_version.strip():
            raise ValueError("an empty TensorRT version; give X.Y such as 10.15, or leave the option out")
        resolve_version(args.trt_version)
    except ValueError as err:
        raise UsageError(f"{'--trt-version' if 'TensorRT' in str(err) else '--targets'}: {err}") from None
    check_outputs(args)
    check_onnxruntime(targets)
    model, inputs = load_model(args)
    report = audit(model, inputs, targets=targets, trt_version=args.trt_version,
                   allow_ops=split_list(args.allow_ops), allow_nodes=split_list(args.allow_nodes))
    print(render_text(report))
    write_outputs(report, args)
    return EXIT_OK if report.passed else EXIT_CANNOT_RUN


def load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """(an .onnx path, None) or (a torch module, its example inputs)."""
    if args.model.endswith(".onnx"):
        model = check_onnx_file(args.model)
        # Without --input-dtype, the file says its inputs' types (as many as shapes given: else the fit check says so).
        declared = declared_dtypes(model.graph)
        given = given_inputs(args, dtypes=args.input_dtype or (declared if len(declared) == len(args.input_shape)
                                                               else []))
        if given is None:
            return args.model, None
        check_inputs_fit_onnx(args.model, model.graph, *given)
        return args.model, given[0]
    given = given_inputs(args)
    if ":" not in args.model:
        raise UsageError(f"MODEL {args.model!r}: give an .onnx file or package.module:factory")
    module = call_factory(args.model, "MODEL")
    import torch

    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"MODEL {args.model}: the factory returned a {type(module).__name__}, not a torch.nn.Module")
    if given is None:
        raise UsageError("a torch model needs example inputs: --input-shape 1,3,224,224 (per input) or "
                         "--inputs package.module:factory")
    check_model_runs(module, *given)
    return module, given[0]


def given_inputs(args: argparse.Namespace, dtypes: Optional[Sequence[str]] = None) -> Optional[tuple[Any, str]]:
    """The example inputs the command line names, and how it named them; None when it names none. ``dtypes``:
    the inputs' dtypes where not --input-dtype's (an .onnx file's declared ones)."""
    if args.inputs:
        return inputs_from(args.inputs), f"--inputs {args.inputs}"
    if args.input_shape:
        return (make_inputs(args.input_shape, args.input_dtype if dtypes is None else dtypes),
                f"--input-shape {' '.join(args.input_shape)}")
    return None


def _declared_dims(value: Any) -> list[Any]:
    """A graph input's or output's dims: a number, or the symbol ("?" for an unnamed unknown)."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]


def declared_dtypes(graph: Any) -> list[str]:
    """The element types an .onnx file declares for its inputs, as --input-dtype names them (float32 where it
    declares one --input-dtype cannot give: the fit check then names it)."""
    stored = {tensor.name for tensor in graph.initializer}
    named = [_onnx_element_type(value.type.tensor_type.elem_type) for value in graph.input if value.name not in stored]
    return [name if name in DTYPES else "float32" for name in named]


def check_inputs_fit_onnx(path: str, graph: Any, inputs: Any, source: str) -> None:
    """Example inputs the .onnx file cannot take are a usage error naming the input and its declared shape
    (they were run anyway: the FP16 range check could not run and the audit passed with a note)."""
    from ..model.inputs import as_model_inputs

    stored = {tensor.name for tensor in graph.initializer}
    declared = [value for value in graph.input if value.name not in stored]
    tensors = as_model_inputs(inputs).tensors
    if len(tensors) != len(declared):
        raise UsageError(f"{source}: {len(tensors)} input(s) given, but {path} takes {len(declared)} "
                         f"({', '.join(value.name for value in declared)})")
    for value, tensor in zip(declared, tensors):
        dims = _declared_dims(value)
        shape = list(tensor.shape)
        fits = len(dims) == len(shape) and all(not isinstance(d, int) or d == 0 or d == s for d, s in zip(dims, shape))
        if not fits:
            raise UsageError(f"{source}: input {value.name!r} of {path} is declared {dims}; a tensor of shape "
                             f"{shape} does not fit it")
        declared_type = _onnx_element_type(value.type.tensor_type.elem_type)
        given_type = str(tensor.dtype).removeprefix("torch.")
        if declared_type is not None and declared_type != given_type:
            how = (f"--input-dtype {declared_type}, in the inputs' order" if declared_type in DTYPES else
                   "--input-dtype cannot give it: give the inputs with --inputs package.module:factory")
            raise UsageError(f"{source}: input {value.name!r} of {path} is declared {declared_type}; the input given "
                             f"is {given_type} ({how})")


def _onnx_element_type(elem_type: int) -> Optional[str]:
    """An ONNX element type as torch names it (float32, int64, ...); None for one torch has no name for."""
    import onnx

    if elem_type == onnx.TensorProto.BFLOAT16:  # numpy has no bfloat16
        return "bfloat16"
    try:
        import numpy as np

        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name)  # float32, int64, bool: torch's too
    except Exception:  # undefined, float8 (no numpy dtype), a type newer than this code
        return None


def check_onnx_file(path: str) -> Any:
    """A file ONNX can parse as a model with a graph (returned, its ModelProto); external weights are not
    read here (the audit does)."""
    if not Path(path).exists():
        raise UsageError(f"MODEL {path}: no such file")
    if not Path(path).is_file():
        raise UsageError(f"MODEL {path}: not a file")
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as err:  # protobuf's DecodeError, OSError, onnx's own: all mean "cannot read it"
        raise UsageError(f"MODEL {path}: not a readable ONNX model ({describe_error(err)}); "
                         "is it truncated, or another format?") from None
    if model.ir_version == 0 or not model.graph.node:
        raise UsageError(f"MODEL {path}: not an ONNX model (no IR version or no graph nodes: "
                         f"{Path(path).stat().st_size} bytes)")
    for value in (*model.graph.input, *model.graph.output):  # -5 rows: accepted as "can run the model"
        dims = _declared_dims(value)
        if any(isinstance(d, int) and d < 0 for d in dims):
            raise UsageError(f"MODEL {path}: {value.name!r} declares a negative dimension ({dims}): the model file "
                             "is damaged; export it again")
    if not model.graph.output:  # every target "can run" a graph that computes nothing: a vacuous pass
        raise UsageError(f"MODEL {path}: the graph has no outputs, so no engine computes anything; export it again")
    problem = external_data_problem(model, Path(path).parent) or stored_size_problem(model)
    if problem:
        raise UsageError(f"MODEL {path}: {problem}")
    return model


def external_data_problem(model: Any, base: Path) -> Optional[str]:
    """Why the weights stored beside the model cannot be read (outside the model's folder, missing or
    short file), without reading them."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    for tensor in _tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        info = ExternalDataInfo(tensor)
        data = base / info.location
        if not data.resolve().is_relative_to(base.resolve()):  # ONNX refuses it too, with a ValidationError
            return (f"weights of {tensor.name!r} are stored at {info.location!r}, outside the model's folder "
                    f"{base}; ONNX reads external data only from that folder (move the file there)")
        if not data.is_file():
            return f"weights of {tensor.name!r} are stored in {data}, which is missing (copy it beside the model)"
        needed = (info.offset or 0) + (info.length or 0)
        if data.stat().st_size < needed:
            return f"weights of {tensor.name!r} need {needed} bytes of {data}, which has {data.stat().st_size}: truncated"
    return None


def stored_size_problem(model: Any) -> Optional[str]:
    """A tensor whose stored data (inline bytes, typed values or the external length) does not hold
    the elements its dims declare: every stage would fail reading it (numpy's "cannot reshape array"
    traceback), so the file is damaged."""
    for tensor in _tensors(model.graph):
        if any(d < 0 for d in tensor.dims):  # a stored tensor has no unknown dims: was "CANNOT run", exit 1
            return (f"tensor {tensor.name!r} declares negative dims {list(tensor.dims)}: the model file is damaged; "
                    "export it again")
        sizes = _declared_and_stored(tensor)
        if sizes is not None and sizes[0] != sizes[1]:
            unit = "values" if sizes[2] == "values" else "bytes"
            return (f"tensor {tensor.name!r} declares dims {list(tensor.dims)} ({sizes[0]} {unit}) but stores "
                    f"{sizes[1]} {unit}: the model file is damaged; export it again")
    return None


_PACKED_TYPES = ("INT4", "UINT4", "FLOAT4E2M1")  # two elements to a byte
_PAIRED_TYPES = ("COMPLEX64", "COMPLEX128")  # two typed values per element


def _declared_and_stored(tensor: Any) -> Optional[tuple[int, int, str]]:
    """(declared, stored, "bytes" or "values") of a tensor, or None where there is nothing to compare."""
    import math

    from onnx import TensorProto, helper
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    kind = TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in TensorProto.DataType.values() else ""
    if kind in ("", "UNDEFINED", "STRING") or any(d < 0 for d in tensor.dims):
        return None
    count = int(math.prod(tensor.dims))
    if uses_external_data(tensor) or tensor.HasField("raw_data"):
        stored = int(ExternalDataInfo(tensor).length or 0) if uses_external_data(tensor) else len(tensor.raw_data)
        if not stored and uses_external_data(tensor):
            return None  # no length given: the file's size is checked against the offset instead
        if kind in _PACKED_TYPES:
            return (count + 1) // 2, stored, "bytes"
        return count * int(helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize), stored, "bytes"
    if kind in _PACKED_TYPES:
        return None
    values = len(getattr(tensor, helper.tensor_dtype_to_field(tensor.data_type)))
    return count * (2 if kind in _PAIRED_TYPES else 1), values, "values"


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of a graph: initializers and node attributes, subgraphs (If, Loop, Scan) included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _tensors(subgraph)


