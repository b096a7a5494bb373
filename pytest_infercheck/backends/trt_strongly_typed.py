"""The strongly typed TensorRT path, shared by TensorRT 11.x and TensorRT-RTX.

Both libraries have the same Python API under different module names (``tensorrt`` and
``tensorrt_rtx``), no precision builder flags (the network's tensor types and its Q/DQ nodes decide
the precision) and an ONNX parser that reports each failing node.  This module is the part they
share, parameterised by a ``TrtLibrary``:

  ONNX file -> ``parse_onnx`` (network + the parser's errors: node, operator, reason)
            -> ``check_target`` (can this library build for that compute capability?)
            -> ``build_serialized`` (serialized engine for an explicit capability, with size and seconds)
            -> ``write_engine`` (model.plan + build.json in a cache directory)

TensorRT-RTX builds ahead of time for a named compute capability, with or without a GPU, so CI
runs all of it through ``tensorrt_rtx``.  TensorRT 11 has no capability setting (it builds for the
GPU it runs on): ``target=None`` there.  The library is used directly rather than through
Polygraphy, whose RTX switch is an environment variable read once per process.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

PLAN_FILE = "model.plan"
FIGURES_FILE = "build.json"


@dataclass(frozen=True)
class TrtLibrary:
    """One TensorRT-family library: its module, its name in messages, and its distributions."""

    module: str
    label: str
    distributions: tuple[str, ...]  # checked in order for the version; all key caches and fingerprints
    install: str

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> Optional[str]:
        """The installed version from package metadata (importing the module loads CUDA libraries)."""
        from importlib import metadata

        for dist in self.distributions:
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        return None

    def short_version(self) -> str:
        return ".".join((self.version() or "?").split(".")[:2])

    def load(self) -> Any:
        """The imported module; an ImportError that says what to install when it is missing."""
        if not self.available():
            raise ImportError(f"{self.module} is not installed: {self.install}")
        return importlib.import_module(self.module)


TENSORRT = TrtLibrary(
    "tensorrt", "TensorRT",
    ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-libs", "tensorrt-cu12-libs"),
    "pip install tensorrt on a Linux machine with an NVIDIA GPU (its libraries come from NVIDIA's index)")
TENSORRT_RTX = TrtLibrary(
    "tensorrt_rtx", "TensorRT-RTX",
    ("tensorrt-rtx", "tensorrt-rtx-cu13", "tensorrt-rtx-cu13-libs", "tensorrt-rtx-cu13-bindings"),
    "pip install 'pytest-infercheck[tensorrt-rtx]' (or pip install tensorrt-rtx)")


@dataclass(frozen=True)
class ParserError:
    """One error of the ONNX parser, in its own words."""

    node: str  # the node's name ("" when the error is not about a node)
    operator: str
    reason: str
    node_index: int  # position in the parsed graph, -1 when unknown
    code: str = ""  # the parser's ErrorCode name, e.g. UNSUPPORTED_NODE
    function: str = ""  # the parser function that refused it, e.g. checkDet

    def describe(self) -> str:
        """"UNSUPPORTED_NODE in checkDet: false": code and function say what a bare "false" means."""
        where = " in ".join(part for part in (self.code, self.function) if part)
        return f"{where}: {self.reason}" if where else self.reason


@dataclass
class ParsedNetwork:
    """The builder, network and parser of one parse (the parser owns the weights: keep them together)."""

    library: TrtLibrary
    trt: Any
    builder: Any
    network: Any
    parser: Any
    logger: Any
    parsed: bool
    errors: list[ParserError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.parsed and not self.errors


class TargetUnsupported(ValueError):
    """The library cannot build for this compute capability; the message names those it can."""


class NetworkBuildError(RuntimeError):
    """The network parsed but the builder produced no engine; the message is the builder's log."""


@dataclass(frozen=True)
class BuiltEngine:
    data: bytes
    seconds: float
    target: Optional[str]  # "sm_89"; None: the GPU the build ran on (TensorRT 11)
    library: str  # "TensorRT-RTX 1.7.1.116"

    @property
    def size(self) -> int:
        return len(self.data)


def collecting_logger(trt: Any) -> Any:
    """A logger that keeps the library's warnings and errors (for messages) instead of printing them."""

    class Collecting(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(str(msg))
            elif severity == trt.ILogger.Severity.WARNING:
                self.warnings.append(str(msg))

    return Collecting()


def parse_onnx(library: TrtLibrary, onnx_path: Path | str) -> ParsedNetwork:
    """Parse an ONNX file into a strongly typed network; every parser error is kept, none raised."""
    trt = library.load()
    logger = collecting_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:  # TensorRT 11 and RTX are strongly typed either way; 10.x needs the flag
        flags = 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    parsed = bool(parser.parse_from_file(str(onnx_path)))
    return ParsedNetwork(library, trt, builder, network, parser, logger, parsed, parser_errors(parser))


def parser_errors(parser: Any) -> list[ParserError]:
    errors = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        code = str(error.code()).rsplit(".", 1)[-1]
        found = ParserError(str(error.node_name()), str(error.node_operator()), clean_reason(str(error.desc())),
                            int(error.node()), code, str(error.func()))
        if found not in errors:  # the parser can report one node's check twice (MaxPool with dilations)
            errors.append(found)
    return errors


def clean_reason(text: str) -> str:
    """The parser's description without the C++ assertion wrapping: ``creator && "Plugin not found"`` -> the quote.

    Lines the library appends from a CUDA call that fails without a GPU (``cudaError 35: CUDA driver
    version is insufficient``) are dropped: they are about this machine, not the node.
    """
    lines = [line for line in str(text).strip().splitlines() if "catchCudaError" not in line]
    text = " ".join(line.strip() for line in lines).strip()
    if '&& "' in text and text.endswith('"'):
        text = text.split('&& "', 1)[1][:-1]
    return text.removeprefix("Assertion failed: ").strip()


def normalize_target(text: str) -> str:
    """"sm_89", "SM89", "sm89", "8.9" or "89" -> "sm_89"; a ValueError names the accepted forms."""
    raw = str(text).strip().lower().replace("sm_", "").replace("sm", "")
    digits = raw.replace(".", "") if raw.count(".") == 1 else raw
    if not digits.isdigit() or len(digits) not in (2, 3):
        raise ValueError(f"{text!r} is not a compute capability; write it as sm_89, SM89 or 8.9")
    return f"sm_{digits}"


def buildable_targets(trt: Any) -> tuple[str, ...]:
    """Compute capabilities the library builds for by name ("sm_75", ...); () where it has no such choice."""
    capability = getattr(trt, "ComputeCapability", None)
    if capability is None:
        return ()
    return tuple(normalize_target(name) for name in capability.__members__ if name.startswith("SM"))


def check_target(library: TrtLibrary, trt: Any, target: Optional[str]) -> Optional[str]:
    """None when ``library`` can build for ``target``; else why not, naming what it can build for."""
    choices = buildable_targets(trt)
    if target is None:
        return None
    if not choices:
        return (f"{library.label} {library.version()} builds for the GPU it runs on only; "
                f"it cannot build ahead of time for {target}")
    if normalize_target(target) not in choices:
        return (f"{library.label} {library.version()} cannot build for {target} "
                f"(it builds for {', '.join(choices)})")
    return None


def build_serialized(parsed: ParsedNetwork, *, target: Optional[str],
                     profiles: Optional[dict[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]] = None,
                     tf32: bool = False) -> BuiltEngine:
    """Build a serialized engine for ``target`` (None: the GPU present); raises with the builder's reason."""
    if not parsed.ok:
        raise NetworkBuildError("the network did not parse: " + "; ".join(
            f"{e.node or '(model)'} ({e.operator}): {e.describe()}" for e in parsed.errors))
    trt, library = parsed.trt, parsed.library
    reason = check_target(library, trt, target)
    if reason:
        raise TargetUnsupported(reason)
    config = parsed.builder.create_builder_config()
    profiles = profiles or network_profiles(parsed.network)
    if target is not None:
        config.num_compute_capabilities = 1
        config.set_compute_capability(getattr(trt.ComputeCapability, normalize_target(target).replace("sm_", "SM")), 0)
    if tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.set_flag(trt.BuilderFlag.TF32)
    if profiles:
        profile = parsed.builder.create_optimization_profile()
        for name, (low, opt, high) in profiles.items():
            profile.set_shape(name, tuple(low), tuple(opt), tuple(high))
        config.add_optimization_profile(profile)
    start = time.perf_counter()
    serialized = parsed.builder.build_serialized_network(parsed.network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        log = "; ".join(parsed.logger.errors[-3:]) or "no error was logged"
        raise NetworkBuildError(f"{library.label} {library.version()} built no engine for "
                                f"{target or 'this GPU'}: {log}")
    return BuiltEngine(bytes(serialized), seconds, target, f"{library.label} {library.version()}")


def network_profiles(network: Any, max_extent: int = 32) -> Optional[dict[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]]:
    """A profile for the network's dynamic axes when none was given: 1 to ``max_extent`` each.

    Without one the builder refuses any network with a dynamic axis ("Network has dynamic or shape
    inputs, but no optimization profile has been defined"): an ONNX file audited on its own has no
    example inputs to take the optimum from, so the smallest extent is the optimum.
    """
    profiles: dict[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] = {}
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = tuple(int(d) for d in tensor.shape)
        if any(d < 0 for d in shape):
            low = tuple(1 if d < 0 else d for d in shape)
            profiles[tensor.name] = (low, low, tuple(max_extent if d < 0 else d for d in shape))
    return profiles or None


@dataclass(frozen=True)
class BuildFigures:
    """What a build left beside its plan: read back on a cache hit, so a skip can still quote them."""

    size: int
    seconds: float
    target: Optional[str]
    library: str

    def describe(self) -> str:
        where = self.target or "this GPU"
        return f"{self.library} engine for {where}: {self.size / 1024:.0f} kB, built in {self.seconds:.2f} s"


def write_engine(library: TrtLibrary, onnx_path: Path, directory: Path, *, target: Optional[str],
                 profiles: Any = None, tf32: bool = False) -> BuildFigures:
    """Parse, build and save ``model.plan`` and ``build.json`` into ``directory`` (a cache entry)."""
    parsed = parse_onnx(library, onnx_path)
    built = build_serialized(parsed, target=target, profiles=profiles, tf32=tf32)
    (directory / PLAN_FILE).write_bytes(built.data)
    figures = BuildFigures(built.size, round(built.seconds, 3), built.target, built.library)
    (directory / FIGURES_FILE).write_text(json.dumps(asdict(figures)))
    return figures


def read_figures(directory: Path) -> BuildFigures:
    from ..core.codec import from_data, load_json

    return from_data(BuildFigures, load_json(Path(directory) / FIGURES_FILE), FIGURES_FILE)


def deserialize(library: TrtLibrary, data: bytes) -> Any:
    """An ICudaEngine from a plan (needs a GPU the plan was built for)."""
    trt = library.load()
    logger = collecting_logger(trt)
    engine = trt.Runtime(logger).deserialize_cuda_engine(data)
    if engine is None:
        raise RuntimeError(f"{library.label} could not load the engine: {'; '.join(logger.errors[-3:])}")
    return engine
