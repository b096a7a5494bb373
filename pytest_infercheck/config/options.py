"""The one option table: every setting with its command-line flag and ini twin (if any), parser,
default, help and scope.

settings.Settings is generated from this table, docs/options.md is generated from it
(scripts/gen_options_doc.py), and the marker and call keys are read off the scopes.  The parsers
are parsers.py's.  Nothing here imports torch.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..core import defaults
from .parsers import (
    Budget,
    COMPILE_MODES,
    CUDA_GRAPH_MODES,
    DEFAULT_STATISTIC,
    MAX_SEED,
    OptionError,
    STATISTICS,
    parse_backends,
    parse_bool,
    parse_budget,
    parse_compile_mode,
    parse_confidence,
    parse_cosine,
    parse_count,
    parse_cuda_graphs,
    parse_device,
    parse_duration_ms,
    parse_engines,
    parse_factor,
    parse_float,
    parse_fp8_granularity,
    parse_fraction,
    parse_gpus,
    parse_int8_ops,
    parse_keep_fp32,
    parse_max_regression,
    parse_name_list,
    parse_percent,
    parse_positive_int,
    parse_precisions,
    parse_seconds,
    parse_seed,
    parse_timeout,
    parse_threads,
    parse_trt_target,
    parse_xdist_groups,
)
from ..core.spec import PRECISIONS, TextEnum

# The field's default INT8 recipe for transformers and CNNs alike: the matrix products and
# convolutions gain from INT8; masks, LayerNorm's adds and index arithmetic lose (issue 24).
INT8_DEFAULT_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")

# The parsers are part of this module's face: tests, docs and callers import them from here too.
__all__ = ['Budget', 'COMPILE_MODES', 'CUDA_GRAPH_MODES', 'DEFAULT_STATISTIC', 'MAX_SEED', 'OptionError', 'STATISTICS', 'parse_backends', 'parse_bool', 'parse_budget', 'parse_compile_mode', 'parse_confidence', 'parse_cosine', 'parse_count', 'parse_cuda_graphs', 'parse_device', 'parse_duration_ms', 'parse_engines', 'parse_factor', 'parse_float', 'parse_fp8_granularity', 'parse_fraction', 'parse_gpus', 'parse_int8_ops', 'parse_keep_fp32', 'parse_max_regression', 'parse_name_list', 'parse_percent', 'parse_positive_int', 'parse_precisions', 'parse_seconds', 'parse_seed', 'parse_timeout', 'parse_trt_target', "Option", "OPTIONS", "Scope", "add_options", "parse_value", "ini_name", "INT8_DEFAULT_OPS"]


class Scope(TextEnum):
    """Where a setting may be given: every source has the run's; a test's marker and call add theirs."""

    RUN = "run"  # command line and ini only: it describes the whole run (reports, cache, baseline file)
    MATRIX = "matrix"  # also the marker: which engines a test expands into (read at collection)
    TEST = "test"  # also the marker and the infercheck() call


@dataclass(frozen=True)
class Option:
    """One setting: its command-line flag and ini key (if any), parser, default, help and scope."""

    name: str  # the settings key, also the marker / fixture keyword
    flag: Optional[str]  # None: a per-test setting given only in a marker or the infercheck() call
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = "VALUE"
    is_flag: bool = False  # a store_true switch on the command line
    scope: Scope = Scope.RUN


OPTIONS: tuple[Option, ...] = (
    Option("budget", "--infer-budget", parse_budget, None,
           "latency budget per engine, e.g. 30ms, p99:30ms, mean:2.5ms (default statistic: p90)", "BUDGET",
           scope=Scope.TEST),
    Option("backends", "--infer-backends", parse_backends, ("eager", "onnxruntime"),
           "comma-separated backends to test when a marker names none (see docs/backends.md)", "LIST",
           scope=Scope.MATRIX),
    Option("precisions", "--infer-precisions", parse_precisions, ("fp32",),
           f"comma-separated precisions to test when a marker names none ({', '.join(PRECISIONS)})", "LIST",
           scope=Scope.MATRIX),
    Option("cuda_graphs", "--infer-cuda-graphs", parse_cuda_graphs, (False,),
           "CUDA Graph modes to test when a marker names none: off, on or both", "MODE", scope=Scope.MATRIX),
    # Exact engines instead of the product above (a marker's engines=[...] or --infer-engines).
    Option("engines", "--infer-engines", parse_engines, None,
           "comma-separated engine ids to test instead of backends x precisions x CUDA Graph modes, "
           "e.g. onnxruntime-int8,eager-fp16", "LIST", scope=Scope.MATRIX),
    Option("device", "--infer-device", parse_device, "auto",
           "where engines run: auto (cuda when available), cpu or cuda", "DEVICE", scope=Scope.TEST),
    Option("warmup", "--infer-warmup", parse_count, defaults.WARMUP,
           f"untimed iterations before sampling, 0 for none (on the GPU, the engine runs for at least "
           f"{defaults.CUDA_SETTLE_S:g} s and until timings settle)", "N", scope=Scope.TEST),
    Option("min_iters", "--infer-min-iters", parse_positive_int, defaults.MIN_ITERS, "fewest timed iterations", "N",
           scope=Scope.TEST),
    Option("max_iters", "--infer-max-iters", parse_positive_int, defaults.MAX_ITERS, "most timed iterations", "N",
           scope=Scope.TEST),
    # 0.1s, not 1s: the stopping rule (--infer-ci-width) decides when there is enough; this is a floor.
    Option("min_time", "--infer-min-time", parse_seconds, defaults.MIN_TIME_S,
           "sample for at least this much measured time (1s, 500ms)", "DURATION", scope=Scope.TEST),
    Option("report", "--infer-report", str, None, "write every figure and raw sample as JSON to PATH", "PATH"),
    Option("cache_dir", "--infer-cache-dir", str, None,
           "engine cache directory, private to you (default: infercheck/ inside pytest's cache dir; without "
           "pytest's cache provider $XDG_CACHE_HOME/pytest-infercheck or ~/.cache/pytest-infercheck)", "PATH"),
    Option("no_cache", "--infer-no-cache", parse_bool, False,
           "neither read nor write the engine cache (builds go to temporary directories removed at the end)",
           is_flag=True),
    Option("seed", "--infer-seed", parse_seed, 0,
           "seed for torch's generator before each infercheck test, so random weights hash alike "
           "(0 to 2**64 - 1)", "N"),
    Option("tf32", "--infer-tf32", parse_bool, False,
           "allow TF32 in the CUDA reference (default off: the reference is true FP32)", is_flag=True,
           scope=Scope.TEST),
    Option("compile_mode", "--infer-compile-mode", parse_compile_mode, "default",
           f"torch.compile mode for the inductor backend ({', '.join(COMPILE_MODES)})", "MODE", scope=Scope.TEST),
    Option("build_timeout", "--infer-build-timeout", parse_timeout, 1800.0,
           "fail an engine whose build takes longer than this (seconds or 10s/500ms; off for no deadline)",
           "SECONDS", scope=Scope.TEST),
    Option("time_transfers", "--infer-time-transfers", parse_bool, False,
           "include host-to-device and device-to-host copies in GPU timings (on the CPU: none, a note says so)",
           is_flag=True, scope=Scope.TEST),
    # The CI gate (docs/gate.md): baseline file, regression thresholds, Markdown and HTML reports.
    Option("baseline", "--infer-baseline", str, None,
           "compare every item with its entry in this baseline file (JSON)", "PATH"),
    Option("baseline_update", "--infer-baseline-update", parse_bool, False,
           "write the items that ran into the baseline file (others are kept); regressions do not fail",
           is_flag=True),
    Option("baseline_strict", "--infer-baseline-strict", parse_bool, False,
           "fail items that have no baseline entry for this machine, and every undecided figure (a comparison "
           "or a budget that cannot tell pass from fail)",
           is_flag=True),
    # An upgrade's pull request: the entries of the old library versions, on this same machine, are the
    # figures to hold the new versions to (docs/gate.md, "Across library versions").
    Option("baseline_across_versions", "--infer-baseline-across-versions", parse_bool, False,
           "compare with entries recorded under other versions of the engine's libraries (torch, onnxruntime, "
           "triton, ...) when this machine has none for these versions: an upgrade gated like any change",
           is_flag=True),
    # 3%, not 5%: a slowdown equal to the allowance is caught half the time, and the H100's run-to-run
    # spread (~1.6%) leaves room to catch +5% reliably at 3% (docs/gate.md, docs/benchmarks.md).
    Option("max_regression", "--infer-max-regression", parse_max_regression, defaults.MAX_REGRESSION,
           "largest median-latency slowdown allowed against the baseline, e.g. 3% (a larger one fails "
           "when it is also statistically significant)", "PERCENT", scope=Scope.TEST),
    # A launch-bound GPU engine (kernel_time.py) is judged on its kernel time: its own allowance, since its
    # wall time is the host's launch speed (docs/gate.md, "Launch-bound engines").
    Option("kernel_tolerance", "--infer-kernel-tolerance", parse_max_regression, defaults.KERNEL_TOLERANCE,
           "largest median GPU kernel-time slowdown allowed against the baseline for a launch-bound engine (its "
           "kernels busy the GPU under half its wall time), e.g. 5%; its wall time is then reported, not judged",
           "PERCENT", scope=Scope.TEST),
    Option("accuracy_factor", "--infer-accuracy-factor", parse_factor, 2.0,
           "fail when an error figure grew by more than this factor over the baseline's", "FACTOR",
           scope=Scope.TEST),
    Option("accuracy_floor", "--infer-accuracy-floor", parse_float, 1e-5,
           "error figures at or below this absolute value never count as an accuracy regression", "VALUE",
           scope=Scope.TEST),
    Option("markdown", "--infer-markdown", str, None,
           "write the summary as Markdown to PATH (also appended to $GITHUB_STEP_SUMMARY when set)", "PATH"),
    Option("html", "--infer-html", str, None,
           "write a self-contained HTML report (matrix, latency distributions, baseline) to PATH", "PATH"),
    # CPU timing that holds on a busy runner (pytest_infercheck/core/cpu_threads.py says why).
    Option("threads", "--infer-threads", parse_threads, "auto",
           "intra-op threads for torch and ONNX Runtime while a check runs on the CPU: a number, or auto "
           "(usable physical cores / xdist workers, less one; at least 1); more than the usable CPUs: a note",
           "N", scope=Scope.TEST),
    Option("trt_target", "--infer-trt-target", parse_trt_target, "auto",
           "compute capability TensorRT-RTX engines are built for (sm_89, 8.9...); auto: the running GPU's "
           "when TensorRT-RTX supports it, else sm_89", "CAPABILITY",
           scope=Scope.TEST),
    # Adaptive sampling, budgets with confidence, profiles, batch search (docs/latency.md).
    Option("max_time", "--infer-max-time", parse_seconds, defaults.MAX_TIME_S,
           "stop sampling an engine after this much measured time even if its figures are not yet known to "
           "--infer-ci-width or its budget is undecided, and before --infer-min-iters (never below 5 samples)", "DURATION",
           scope=Scope.TEST),
    Option("ci_width", "--infer-ci-width", parse_percent, defaults.CI_WIDTH,
           "stop sampling once p50 and the budget's statistic are known to +-this (95% interval) and the "
           "budget is decided; 0 samples to --infer-min-iters and --infer-min-time only", "PERCENT",
           scope=Scope.TEST),
    Option("confidence", "--infer-confidence", parse_confidence, defaults.CONFIDENCE,
           "confidence of budget decisions: pass when the statistic's upper bound is within the budget", "PERCENT",
           scope=Scope.TEST),
    Option("profile", "--infer-profile", parse_bool, False,
           "attach a per-operator time profile to every item (items failing their budget always get one)",
           is_flag=True, scope=Scope.TEST),
    Option("max_batch_search", "--infer-max-batch-search", parse_count, 0,
           "search the largest batch up to N whose budget holds, per engine (0: off; needs a budget and a batch axis)",
           "N", scope=Scope.TEST),
    Option("allow_nondeterministic", "--infer-allow-nondeterministic", parse_bool, False,
           "run the eager reference once, not twice: a forward whose outputs differ between runs on the same "
           "inputs (dropout, random ops) is then compared as it is instead of failing at stage reference",
           is_flag=True, scope=Scope.TEST),
    # One xdist worker per GPU (docs/multi-gpu.md): read in each worker before anything touches CUDA.
    Option("gpus", "--infer-gpus", parse_gpus, None,
           "with pytest-xdist (-n N): the GPUs to share the workers among, round robin, as indices into the "
           "visible GPUs, e.g. 0,1 (default: all visible; each worker is pinned to one through "
           "CUDA_VISIBLE_DEVICES); without xdist: the process runs on the first GPU listed", "LIST", scope=Scope.RUN),
    Option("xdist_groups", "--infer-xdist-groups", parse_xdist_groups, "auto",
           "with pytest-xdist's --dist load: keep a test's engines that share one build (an engine with and "
           "without a CUDA graph) on one worker. auto: when the workers are spread over several GPUs; on: always; "
           "off: xdist's own scheduling", "MODE", scope=Scope.RUN),
    # Per-test settings a marker or the infercheck() call gives (no flag): None means the precision's default.
    Option("atol", None, parse_float, None, "absolute tolerance of the elementwise rule", scope=Scope.TEST),
    Option("rtol", None, parse_float, None, "relative tolerance of the elementwise rule", scope=Scope.TEST),
    Option("max_mismatch", None, parse_fraction, None, "share of elements allowed outside atol + rtol*|ref|",
           scope=Scope.TEST),
    Option("min_cosine", None, parse_cosine, None, "lowest cosine similarity to the reference", scope=Scope.TEST),
    Option("max_rel_l2", None, parse_float, None, "largest relative error ||out - ref|| / ||ref||", scope=Scope.TEST),
    Option("dynamic_batch", None, parse_bool, False, "export with a dynamic batch axis and verify it at twice "
           "the batch", scope=Scope.TEST),
    Option("allow_ops", None, parse_name_list, (), "audit: operators that are known, accepted gaps", scope=Scope.TEST),
    Option("allow_nodes", None, parse_name_list, (), "audit: ONNX node names that are known, accepted gaps",
           scope=Scope.TEST),
    # Reduced precision (docs/precision.md): what an INT8 model quantizes, which modules stay in FP32.
    Option("int8_ops", "--infer-int8-ops", parse_int8_ops, INT8_DEFAULT_OPS,
           "ONNX operator types the INT8 recipe quantizes (all: every type the quantizer handles); masks, "
           "normalisation and index arithmetic stay in float", "LIST", scope=Scope.TEST),
    Option("keep_fp32", None, parse_keep_fp32, (), "PyTorch module names (model.named_modules()) that run in FP32 "
           "in FP16/BF16/INT8/FP8 engines", scope=Scope.TEST),
    Option("fp8_granularity", "--infer-fp8-granularity", parse_fp8_granularity, "row",
           "scales of the FP8 engines (inductor-fp8, aoti-fp8; torchao): row (one per row of activations "
           "and weights) or tensor (one per tensor)", "GRANULARITY", scope=Scope.TEST),
    Option("repair_precision", "--infer-repair-precision", parse_bool, False,
           "when an FP16/BF16/INT8/FP8 engine fails accuracy, search for the PyTorch modules to keep in FP32 that make "
           "it pass: rebuilds the engine, under --infer-repair-time (docs/precision.md)", is_flag=True,
           scope=Scope.TEST),
    Option("repair_time", "--infer-repair-time", parse_seconds, 60.0,
           "time cap of the precision repair per engine (seconds or 90s/500ms); checked before each rebuild after "
           "the first", "SECONDS", scope=Scope.TEST),
    Option("allow_degenerate", None, parse_name_list, (), "outputs whose empty, all-zero, constant or underflowing "
           "reference is meant (it cannot judge an engine: the check says so otherwise)", scope=Scope.TEST),
)

OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
COMMAND_LINE_OPTIONS: tuple[Option, ...] = tuple(option for option in OPTIONS if option.flag)


def ini_name(option: Option) -> str:
    return "infer_" + option.name


def argparse_type(option: Option) -> Callable[[str], Any]:
    """Wrap a parser so argparse reports its message as a usage error naming the flag."""

    def parse(text: str) -> Any:
        try:
            return option.parse(text)
        except OptionError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = option.name
    return parse


def add_options(parser: Any) -> None:
    """Register every option in one ``infercheck`` group, each with an ini twin."""
    group = parser.getgroup("infercheck", "inference engine checks (pytest-infercheck)")
    for option in COMMAND_LINE_OPTIONS:
        help_text = option.help.replace("%", "%%")  # argparse formats help with %: "5%" must be "5%%"
        ini_help = f"{option.help} (ini twin of {option.flag})"
        if option.is_flag:
            group.addoption(option.flag, action="store_true", default=None, dest=option.name, help=help_text)
            parser.addini(ini_name(option), ini_help, type="bool", default=bool(option.default))
        else:
            group.addoption(option.flag, dest=option.name, type=argparse_type(option), default=None,
                            metavar=option.metavar, help=help_text)
            parser.addini(ini_name(option), ini_help, default=None)


def parse_value(name: str, value: Any, source: str) -> Any:
    """Parse a value for setting ``name``; an error names the source and the setting."""
    try:
        return OPTIONS_BY_NAME[name].parse(value)
    except OptionError as err:
        raise OptionError(f"{source} {name}: {err}") from None
