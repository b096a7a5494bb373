"""`infercheck audit MODEL ...`: the compatibility audit from the command line.

Exit status: 0 when every target can run the model, 1 when one cannot, 2 on usage errors
(a bad option, a model or inputs factory that cannot be loaded).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

EXIT_OK, EXIT_CANNOT_RUN, EXIT_USAGE = 0, 1, 2
DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "bool")


class UsageError(Exception):
    """Something the user gave cannot be used; the message says what and the accepted forms."""


def build_parser() -> argparse.ArgumentParser:
    from .audit.findings import TARGETS

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
                       help=f"dtype of each input, in order ({', '.join(DTYPES)}; default float32)")
    audit.add_argument("--inputs", metavar="package.module:factory",
                       help="a callable returning the example inputs (a tensor or a tuple of tensors)")
    audit.add_argument("--targets", default="tensorrt,onnxruntime", metavar="LIST",
                       help=f"comma-separated targets ({', '.join(TARGETS)}); default tensorrt,onnxruntime")
    audit.add_argument("--trt-version", metavar="X.Y",
                       help="TensorRT version whose support table predicts findings when TensorRT is not installed "
                            "(10.1, 10.15; a major version picks its newest table; default: the newest)")
    audit.add_argument("--allow-ops", default="", metavar="LIST", help="operators that are known, accepted gaps")
    audit.add_argument("--allow-nodes", default="", metavar="LIST", help="node names that are known, accepted gaps")
    audit.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    audit.add_argument("--markdown", metavar="PATH", help="also write the report as Markdown")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)  # argparse exits with 2 on a bad option
    try:
        return run_audit(args)
    except UsageError as err:
        print(f"infercheck audit: error: {err}", file=sys.stderr)
        return EXIT_USAGE


def run_audit(args: argparse.Namespace) -> int:
    from .audit.render import render_json, render_markdown, render_text
    from .audit.runner import audit, parse_targets
    from .audit.tensorrt_static import resolve_version

    try:
        targets = parse_targets(args.targets)
        resolve_version(args.trt_version)
    except ValueError as err:
        raise UsageError(f"{'--trt-version' if 'TensorRT' in str(err) else '--targets'}: {err}") from None
    model, inputs = load_model(args)
    report = audit(model, inputs, targets=targets, trt_version=args.trt_version,
                   allow_ops=_split(args.allow_ops), allow_nodes=_split(args.allow_nodes))
    print(render_text(report))
    for path, render in ((args.json, render_json), (args.markdown, render_markdown)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(render(report))
    return EXIT_OK if report.passed else EXIT_CANNOT_RUN


def load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """(an .onnx path, None) or (a torch module, its example inputs)."""
    if args.model.endswith(".onnx"):
        if not Path(args.model).is_file():
            raise UsageError(f"MODEL {args.model}: no such file")
        if args.inputs:
            return args.model, _call_factory(args.inputs, "--inputs")
        return args.model, make_inputs(args.input_shape, args.input_dtype) if args.input_shape else None
    if ":" not in args.model:
        raise UsageError(f"MODEL {args.model!r}: give an .onnx file or package.module:factory")
    model = _call_factory(args.model, "MODEL")
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"MODEL {args.model}: the factory returned a {type(model).__name__}, not a torch.nn.Module")
    if args.inputs:
        return model, _call_factory(args.inputs, "--inputs")
    if not args.input_shape:
        raise UsageError("a torch model needs example inputs: --input-shape 1,3,224,224 (per input) or "
                         "--inputs package.module:factory")
    return model, make_inputs(args.input_shape, args.input_dtype)


def make_inputs(shapes: Sequence[str], dtypes: Sequence[str]) -> tuple[Any, ...]:
    """Random floats (standard normal) or zeros for integer/bool inputs, seeded so runs agree."""
    import torch

    if dtypes and len(dtypes) not in (1, len(shapes)):
        raise UsageError(f"--input-dtype given {len(dtypes)} times for {len(shapes)} inputs: give one, or one per input")
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for position, text in enumerate(shapes):
        try:
            shape = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"--input-shape {text!r}: expected comma-separated integers, e.g. 1,3,224,224") from None
        if not shape or any(d <= 0 for d in shape):
            raise UsageError(f"--input-shape {text!r}: expected positive comma-separated integers, e.g. 1,3,224,224")
        name = (dtypes[position] if len(dtypes) > 1 else dtypes[0]) if dtypes else "float32"
        if name not in DTYPES:
            raise UsageError(f"--input-dtype {name!r}: use one of {', '.join(DTYPES)}")
        dtype = getattr(torch, name)
        inputs.append(torch.randn(shape, generator=generator).to(dtype) if dtype.is_floating_point
                      else torch.zeros(shape, dtype=dtype))
    return tuple(inputs)


def _call_factory(spec: str, what: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like pytest's rootdir: factories in the project are importable
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise UsageError(f"{what} {spec}: cannot import it ({err}); expected package.module:callable") from None
    return factory() if callable(factory) else factory


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    sys.exit(main())
