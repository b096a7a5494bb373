"""Option definitions and the parsers behind them.

Every value the user can give (command line, ini file, marker, fixture call) goes through the
parsers here, so a bad value is rejected the same way wherever it came from, with a message that
names the option and the accepted forms.  Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .spec import BACKENDS, DEVICES, PRECISIONS

STATISTICS: tuple[str, ...] = ("p50", "p90", "p99", "mean")
# MLPerf's single-stream scenario reports the 90th percentile: a budget says "p90" unless told.
DEFAULT_STATISTIC = "p90"
CUDA_GRAPH_MODES: tuple[str, ...] = ("off", "on", "both")
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

_UNIT_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>us|ms|s)\s*$")
_PERCENT = re.compile(r"^\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


class OptionError(ValueError):
    """A value the user gave that does not parse; the message names the accepted forms."""


@dataclass(frozen=True)
class Budget:
    """A latency budget: ``statistic`` of the samples must stay at or under ``limit_ms``."""

    statistic: str
    limit_ms: float

    def __str__(self) -> str:
        return f"{self.statistic}:{self.limit_ms:g}ms"


def parse_duration_ms(text: str) -> float:
    """``"30ms"``, ``"2.5ms"``, ``"1s"``, ``"250us"`` -> milliseconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise OptionError(f"{text!r} is not a duration; use a number with a unit: 250us, 2.5ms, 30ms, 1s")
    value = float(match["value"]) * _UNIT_TO_MS[match["unit"]]
    if value <= 0:
        raise OptionError(f"{text!r} must be greater than zero")
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
        raise OptionError(f"{text!r}: {err}; forms: 30ms, p99:30ms, mean:2.5ms, p50:1s") from None


def parse_percent(text: str | float) -> float:
    """``"5%"`` or ``0.05`` -> 0.05."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _PERCENT.match(text)
        if match:
            value = float(match["value"]) / 100
        else:
            try:
                value = float(text)
            except ValueError:
                raise OptionError(f"{text!r} is not a percentage; use 5% or 0.05") from None
    if value < 0:
        raise OptionError(f"{text!r} must not be negative")
    return value


def _parse_choices(text: str | Iterable[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    items = [part.strip().lower() for part in text.split(",")] if isinstance(text, str) else [str(p).lower() for p in text]
    items = [item for item in items if item]
    unknown = [item for item in items if item not in known]
    if unknown:
        raise OptionError(f"unknown {what} {', '.join(map(repr, unknown))}; known {what}s: {', '.join(known)}")
    if not items:
        raise OptionError(f"no {what} given; known {what}s: {', '.join(known)}")
    return tuple(dict.fromkeys(items))


def parse_backends(text: str | Iterable[str]) -> tuple[str, ...]:
    return _parse_choices(text, BACKENDS, "backend")


def parse_precisions(text: str | Iterable[str]) -> tuple[str, ...]:
    return _parse_choices(text, PRECISIONS, "precision")


def parse_device(text: str) -> str:
    return _parse_choices(text, DEVICES, "device")[0]


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
    modes = tuple(dict.fromkeys(bool(v) for v in value))
    if not modes:
        raise OptionError("an empty list; use off, on or both")
    return modes


def parse_compile_mode(text: str) -> str:
    return _parse_choices(text, COMPILE_MODES, "torch.compile mode")[0]


def parse_positive_int(text: str | int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise OptionError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise OptionError(f"{text!r} must not be negative")
    return value


def parse_seconds(text: str | float) -> float:
    """``"1s"``, ``"500ms"`` or a bare number of seconds -> seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        try:
            seconds = float(text)
        except ValueError:
            seconds = parse_duration_ms(text) / 1000.0
    if seconds < 0:
        raise OptionError(f"{text!r} must not be negative")
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
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise OptionError(f"{text!r} is not a number") from None
    if value < 0:
        raise OptionError(f"{text!r} must not be negative")
    return value


def parse_max_regression(text: str | float) -> float:
    """``"5%"`` or ``0.05``; a bare number above 1 (``5``) is refused rather than read as 500%."""
    value = parse_percent(text)
    if value > 1 and not str(text).strip().endswith("%"):
        raise OptionError(f"{text!r} would mean {value:.0%}; write 5% (or 0.05) for five percent")
    return value


def parse_factor(text: str | float) -> float:
    value = parse_float(text)
    if value < 1:
        raise OptionError(f"{text!r} must be at least 1 (2 means: fail when an error figure more than doubles)")
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


@dataclass(frozen=True)
class Option:
    """One setting: its command-line flag, ini key, parser, default and help."""

    name: str  # the settings key, also the marker / fixture keyword
    flag: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = "VALUE"
    is_flag: bool = False  # a store_true switch on the command line


OPTIONS: tuple[Option, ...] = (
    Option("budget", "--infer-budget", parse_budget, None,
           "latency budget per engine, e.g. 30ms, p99:30ms, mean:2.5ms (default statistic: p90)", "BUDGET"),
    Option("backends", "--infer-backends", parse_backends, ("eager", "onnxruntime"),
           f"comma-separated backends to test when a marker names none ({', '.join(BACKENDS)})", "LIST"),
    Option("precisions", "--infer-precisions", parse_precisions, ("fp32",),
           f"comma-separated precisions to test when a marker names none ({', '.join(PRECISIONS)})", "LIST"),
    Option("cuda_graphs", "--infer-cuda-graphs", parse_cuda_graphs, (False,),
           "CUDA Graph modes to test when a marker names none: off, on or both", "MODE"),
    Option("device", "--infer-device", parse_device, "auto",
           "where engines run: auto (cuda when available), cpu or cuda", "DEVICE"),
    Option("warmup", "--infer-warmup", parse_positive_int, 10,
           "untimed iterations before sampling (more are run until timings settle on the GPU)", "N"),
    Option("min_iters", "--infer-min-iters", parse_positive_int, 50, "fewest timed iterations", "N"),
    Option("max_iters", "--infer-max-iters", parse_positive_int, 5000, "most timed iterations", "N"),
    Option("min_time", "--infer-min-time", parse_seconds, 1.0,
           "keep sampling until this much time was measured (1s, 500ms)", "DURATION"),
    Option("report", "--infer-report", str, None, "write every figure and raw sample as JSON to PATH", "PATH"),
    Option("cache_dir", "--infer-cache-dir", str, None,
           "engine cache directory (default: infercheck/ inside pytest's cache dir)", "PATH"),
    Option("no_cache", "--infer-no-cache", parse_bool, False, "neither read nor write the engine cache", is_flag=True),
    Option("seed", "--infer-seed", parse_positive_int, 0,
           "seed for torch's generator before each infercheck test, so random weights hash alike", "N"),
    Option("tf32", "--infer-tf32", parse_bool, False,
           "allow TF32 in the CUDA reference (default off: the reference is true FP32)", is_flag=True),
    Option("compile_mode", "--infer-compile-mode", parse_compile_mode, "default",
           f"torch.compile mode for the inductor backend ({', '.join(COMPILE_MODES)})", "MODE"),
    Option("build_timeout", "--infer-build-timeout", parse_seconds, 1800.0,
           "fail an engine whose build takes longer than this (seconds or 10s/500ms)", "SECONDS"),
    Option("time_transfers", "--infer-time-transfers", parse_bool, False,
           "include host-to-device and device-to-host copies in GPU timings", is_flag=True),
    # The CI gate (docs/gate.md): baseline file, regression thresholds, Markdown and HTML reports.
    Option("baseline", "--infer-baseline", str, None,
           "compare every item with its entry in this baseline file (JSON)", "PATH"),
    Option("baseline_update", "--infer-baseline-update", parse_bool, False,
           "write the items that ran into the baseline file (others are kept); regressions do not fail",
           is_flag=True),
    Option("baseline_strict", "--infer-baseline-strict", parse_bool, False,
           "fail items that have no baseline entry for this machine", is_flag=True),
    # 3%, not 5%: a slowdown equal to the allowance is caught half the time, and the H100's run-to-run
    # spread (~1.6%) leaves room to catch +5% reliably at 3% (docs/gate.md, docs/benchmarks.md).
    Option("max_regression", "--infer-max-regression", parse_max_regression, 0.03,
           "largest median-latency slowdown allowed against the baseline, e.g. 3% (a larger one fails "
           "when it is also statistically significant)", "PERCENT"),
    Option("accuracy_factor", "--infer-accuracy-factor", parse_factor, 2.0,
           "fail when an error figure grew by more than this factor over the baseline's", "FACTOR"),
    Option("accuracy_floor", "--infer-accuracy-floor", parse_float, 1e-5,
           "error figures at or below this absolute value never count as an accuracy regression", "VALUE"),
    Option("markdown", "--infer-markdown", str, None,
           "write the summary as Markdown to PATH (also appended to $GITHUB_STEP_SUMMARY when set)", "PATH"),
    Option("html", "--infer-html", str, None,
           "write a self-contained HTML report (matrix, latency distributions, baseline) to PATH", "PATH"),
    # CPU timing that holds on a busy runner (pytest_infercheck/cpu_threads.py says why).
    Option("threads", "--infer-threads", lambda value: parse_threads(value), "auto",
           "intra-op threads for torch and ONNX Runtime while a check runs on the CPU: a number, or auto "
           "(usable physical cores / xdist workers, less one; at least 1)", "N"),
)

OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}

# Settings a marker or the fixture call may also give; values go through the same parsers.
TEST_LEVEL_EXTRA: dict[str, Callable[[Any], Any]] = {
    "atol": parse_float,
    "rtol": parse_float,
    "max_mismatch": parse_percent,
    "min_cosine": parse_float,
    "max_rel_l2": parse_float,
    "dynamic_batch": parse_bool,
    "allow_ops": parse_name_list,  # audit: operators that are known, accepted gaps
    "allow_nodes": parse_name_list,  # audit: ONNX node names that are known, accepted gaps
}


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
    for option in OPTIONS:
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
    parser = OPTIONS_BY_NAME[name].parse if name in OPTIONS_BY_NAME else TEST_LEVEL_EXTRA[name]
    try:
        return parser(value)
    except OptionError as err:
        raise OptionError(f"{source} {name}: {err}") from None


def parse_threads(value: Any) -> Any:
    """``auto`` or a positive integer (``--infer-threads``)."""
    from .cpu_threads import ThreadsError, parse_threads as parse

    try:
        return parse(value)
    except ThreadsError as err:
        raise OptionError(str(err)) from None
