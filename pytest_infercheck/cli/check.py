"""`infercheck check TARGET --input-shape ... --engines ...`: the plugin's check of one model, with no test written.

TARGET is ``package.module:factory`` (a callable returning a ``torch.nn.Module``), ``torchvision:NAME``
or ``timm:NAME`` (random weights; ``--weights PATH`` loads a local state dict).  The command checks
what it was given (the target imports and builds, the inputs are well-formed, the model runs on
them, the engines and plugin options parse), then writes a one-test module that calls the
``infercheck`` fixture and runs pytest on it in this process with the plugin's own options
(``--infer-report``, ``--infer-html``, ``--infer-budget``...): the same stages, summary and reports as
a test of one's own.

Exit status: 0 every engine passed or was skipped, 1 a check failed, 2 a usage error (one line on
stderr naming the option and the accepted forms, never a traceback).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from .common import (EXIT_INTERRUPTED, EXIT_USAGE, UsageError, call_factory, describe_error, inputs_from,
    check_model_runs, make_inputs)

SHORTHANDS = ("torchvision", "timm")
TARGET_FORMS = "package.module:factory, torchvision:NAME or timm:NAME"
TEST_FILE = "test_infercheck_check.py"


def add_command(commands: Any) -> None:
    """``infercheck check`` on the CLI's subparsers, with every plugin option passed through to pytest."""
    from ..config.options import COMMAND_LINE_OPTIONS

    check = commands.add_parser(
        "check", help="check a model's engines through the plugin, with no test written",
        description=f"Run the plugin's check (export, build, accuracy against eager, latency) of TARGET "
                    f"({TARGET_FORMS}) on each engine and write the same reports a test would. "
                    "Exit 0: every engine passed or skipped; 1: a check failed; 2: a usage error.")
    check.add_argument("target", metavar="TARGET", help=TARGET_FORMS)
    check.add_argument("--input-shape", action="append", default=[], metavar="D0,D1,...",
                       help="shape of one input (repeat for several inputs), e.g. 1,3,224,224")
    check.add_argument("--input-dtype", action="append", default=[], metavar="DTYPE",
                       help="dtype of each input, in order (default float32)")
    check.add_argument("--inputs", metavar="package.module:factory",
                       help="a callable returning the example inputs, in any form infercheck() takes")
    check.add_argument("--input-list", action="store_true",
                       help="pass the inputs as one list argument, model([x, ...]) (torchvision detection)")
    check.add_argument("--engines", metavar="LIST", help="comma-separated engine ids, e.g. eager-fp32,onnxruntime-fp32 "
                       "(default: the plugin's --infer-backends x --infer-precisions)")
    check.add_argument("--weights", metavar="PATH", help="a local state dict (torch.save) to load into the model")
    check.add_argument("--junitxml", metavar="PATH", help="also write pytest's JUnit XML of the run (CI test reports)")
    plugin = check.add_argument_group("plugin options, passed to pytest as given (see docs/options.md)")
    for option in COMMAND_LINE_OPTIONS:
        if option.is_flag:
            plugin.add_argument(option.flag, dest=f"infer_{option.name}", action="store_true", help=argparse.SUPPRESS)
        else:
            plugin.add_argument(option.flag, dest=f"infer_{option.name}", metavar=option.metavar,
                                help=argparse.SUPPRESS)


# run_check's loaded and validated (model, inputs), by target, for the generated test that pytest.main runs in
# this same process: the model is built once (a torchvision or timm model with random weights is built in
# seconds, and a second build would be a different random model from the one validated).
_LOADED: dict[str, tuple[Any, Any]] = {}


@dataclass
class CheckTarget:
    """What to build and feed: the generated test module holds one and calls ``load``."""

    target: str
    weights: Optional[str] = None
    shapes: list[str] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)
    inputs: Optional[str] = None
    input_list: bool = False
    cwd: str = ""  # where the user ran the command: factories and relative paths resolve there

    def key(self) -> str:
        return repr(asdict(self))

    def load(self) -> tuple[Any, Any]:
        """(the model, its example inputs); a UsageError says what is wrong with either.  The pair run_check
        loaded already, when it runs this in the same process."""
        loaded = _LOADED.pop(self.key(), None)
        if loaded is not None:
            return loaded
        model = load_model(self.target, self.weights, self.cwd)
        if self.inputs:
            inputs = inputs_from(self.inputs)
        elif self.shapes:
            inputs = make_inputs(self.shapes, self.dtypes)
        else:
            raise UsageError("the model needs example inputs: --input-shape 1,3,224,224 (per input) or "
                             "--inputs package.module:factory")
        if self.input_list:
            inputs = (list(inputs if isinstance(inputs, (tuple, list)) else [inputs]),)
        return model, inputs

    def source(self) -> str:
        """The generated test module."""
        return (f'"""Written by `infercheck check {self.target}`: the plugin\'s check of it, as a test would make it."""\n'
                "from pytest_infercheck.cli.check import CheckTarget\n\n"
                "__infercheck_generated__ = True  # failures name the target, not this file's lines\n"
                f"TARGET = CheckTarget(**{asdict(self)!r})\n\n\n"
                f"def test_{test_name(self.target)}(infercheck):\n"
                "    model, inputs = TARGET.load()\n"
                "    infercheck(model, inputs)\n")


def test_name(target: str) -> str:
    """``torchvision:resnet18`` -> ``torchvision_resnet18``: the test's name in the summary and reports."""
    return re.sub(r"\W+", "_", target).strip("_") or "model"


def load_model(target: str, weights: Optional[str], cwd: str = "") -> Any:
    """The module TARGET names, in eval mode, with ``weights`` loaded when given."""
    import torch

    module, _, name = target.partition(":")
    if not module or not name:
        raise UsageError(f"TARGET {target!r}: expected {TARGET_FORMS}")
    if cwd and cwd not in sys.path:
        sys.path.insert(0, cwd)
    if module in SHORTHANDS:
        model = _shorthand(module, name, target)
    else:
        model = call_factory(target, "TARGET")
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"TARGET {target}: it gave a {type(model).__name__}, not a torch.nn.Module; expected "
                         f"{TARGET_FORMS}")
    if weights:
        _load_weights(model, Path(cwd or ".") / Path(weights).expanduser(), weights)
    return model.eval()


def _shorthand(library: str, name: str, target: str) -> Any:
    import importlib

    try:
        lib = importlib.import_module(library)
    except ImportError as err:
        raise UsageError(f"TARGET {target}: {library} is not installed ({describe_error(err)}); pip install {library}") \
            from None
    except Exception as err:  # a torchvision build that does not match torch fails at import
        raise UsageError(f"TARGET {target}: importing {library} raised {describe_error(err)}; install the {library} "
                         "build made for your torch") from None
    try:
        if library == "timm":
            if not lib.is_model(name):
                raise UsageError(f"TARGET {target}: timm has no model {name!r} (timm.list_models() lists them)")
            return lib.create_model(name, pretrained=False)
        return _torchvision_model(lib, name, target)
    except UsageError:
        raise
    except Exception as err:
        raise UsageError(f"TARGET {target}: building it raised {describe_error(err)}") from None


def _torchvision_model(torchvision: Any, name: str, target: str) -> Any:
    """``torchvision.models.get_model(NAME, weights=None)``; detection and segmentation models' backbones
    too (``weights_backbone=None``): nothing is downloaded."""
    import inspect

    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        listed = sorted(torchvision.models.list_models())
        raise UsageError(f"TARGET {target}: torchvision has no model {name!r} (e.g. {', '.join(listed[:4])}; "
                         "torchvision.models.list_models() lists them)") from None
    extra = {"weights_backbone": None} if "weights_backbone" in inspect.signature(builder).parameters else {}
    return builder(weights=None, **extra)


def _load_weights(model: Any, path: Path, given: str) -> None:
    import torch

    if not path.is_file():
        raise UsageError(f"--weights {given}: no such file; give a state dict saved with torch.save")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UsageError(f"--weights {given}: not a state dict torch.load can read ({describe_error(err)})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint
    if not isinstance(state, dict):
        raise UsageError(f"--weights {given}: holds a {type(state).__name__}, not a state dict (torch.save(model.state_dict()))")
    try:
        model.load_state_dict(state)
    except Exception as err:
        raise UsageError(f"--weights {given}: does not fit the model ({describe_error(err)})") from None


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    """The plugin options given, checked with the plugin's own parsers, as pytest arguments."""
    from ..config.options import COMMAND_LINE_OPTIONS, OptionError
    from ..config.parsers import parse_engines

    given: list[str] = []
    if args.engines is not None:
        if args.infer_engines is not None:
            raise UsageError("--engines and --infer-engines are the same option: give one")
        try:
            parse_engines(args.engines)
        except OptionError as err:
            raise UsageError(f"--engines {args.engines!r}: {err}") from None
        given.append(f"--infer-engines={args.engines}")
    for option in COMMAND_LINE_OPTIONS:
        value = getattr(args, f"infer_{option.name}")
        if option.is_flag:
            given.extend([option.flag] if value and option.flag else [])
            continue
        if value is None:
            continue
        try:
            option.parse(value)
        except OptionError as err:
            raise UsageError(f"{option.flag} {value!r}: {err}") from None
        given.append(f"{option.flag}={value}")
    if args.junitxml:
        from ..core.files import colliding_outputs, output_problem

        problem = output_problem(args.junitxml)
        if problem:
            raise UsageError(f"--junitxml {problem}")
        outputs: dict[str, Any] = {"--junitxml": args.junitxml}
        outputs.update({str(option.flag): getattr(args, f"infer_{option.name}") for option in COMMAND_LINE_OPTIONS
                        if option.metavar == "PATH" and getattr(args, f"infer_{option.name}", None)})
        collision = colliding_outputs(outputs)
        if collision:
            raise UsageError(collision)
        given.append(f"--junitxml={os.path.abspath(args.junitxml)}")
    return given


@contextmanager
def _forgotten(key: str) -> Iterator[None]:
    """Whatever happens in the pytest run (collection error, Ctrl-C), the loaded model is not kept."""
    try:
        yield
    finally:
        _LOADED.pop(key, None)


def run_check(args: argparse.Namespace) -> int:
    """Check the arguments, then run pytest on the generated module; pytest's outcome as 0/1/2."""
    import pytest

    options = pytest_arguments(args)
    target = CheckTarget(args.target, args.weights, list(args.input_shape), list(args.input_dtype), args.inputs,
                         args.input_list, os.getcwd())
    model, inputs = target.load()
    check_model_runs(model, inputs, f"--inputs {args.inputs}" if args.inputs else
                     f"--input-shape {' '.join(args.input_shape)}")
    _LOADED[target.key()] = (model, inputs)
    with tempfile.TemporaryDirectory(prefix="infercheck-check-") as directory, _forgotten(target.key()):
        folder = Path(directory)
        (folder / TEST_FILE).write_text(target.source(), encoding="utf-8")
        (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # the user's ini and addopts stay out
        plugin = ["-p", "pytest_infercheck.plugin"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []
        code = pytest.main([str(folder / TEST_FILE), "-c", str(folder / "pytest.ini"), "-p", "no:cacheprovider",
                            "-p", "no:randomly", "-W", "ignore::pytest.PytestAssertRewriteWarning", *plugin, *options])
    if code == pytest.ExitCode.OK:
        return 0
    if code == pytest.ExitCode.USAGE_ERROR:
        return EXIT_USAGE  # pytest printed why (a broken baseline file, an unwritable report)
    if code == pytest.ExitCode.INTERRUPTED:
        return EXIT_INTERRUPTED  # Ctrl-C: the shell's code, as `infercheck audit` gives it
    if code != pytest.ExitCode.TESTS_FAILED:
        print(f"infercheck check: pytest ended with {pytest.ExitCode(code).name}", file=sys.stderr)
    return 1
