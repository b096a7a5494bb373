"""A saved JSON report read back: checked whole, then its results rebuilt as typed ``CheckResult``.

``infercheck gate``, ``infercheck baseline update`` and ``infercheck report`` read what
``--infer-report`` wrote, usually in another CI job.  Before a figure is used the file must be a
pytest-infercheck report of the schema this version reads, and its content hash must match
(json_report.py): a truncated download or a hand-edited figure is refused with one line saying
what is wrong and what to do, never judged.  The hash catches accidents, not forgery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..core.codec import DecodeError, JsonSyntaxError, from_data, load_json
from ..measure.results import SCHEMA_VERSION, CheckResult, FailedBeforeCheck
from ..measure.stats import PERCENTILES
from .json_report import FORMAT, HASH_FIELD, content_hash, plugin_version

RERUN = "re-run the tests with --infer-report=PATH to write a fresh report"


class ReportError(Exception):
    """A report that cannot be used; the message names the file and what to do."""


@dataclass
class SavedReport:
    path: Path
    plugin_version: str
    created: str
    environment: dict[str, Any]
    machines: list[dict[str, Any]]
    results: list[CheckResult] = field(default_factory=list)
    failed_before_check: list[FailedBeforeCheck] = field(default_factory=list)


@dataclass
class _Contents:
    """The typed contract of a report's fields, checked by codec.from_data (``results[3].nodeid is 123 ...``)."""

    results: list[CheckResult]
    plugin_version: Optional[str] = ""
    created: Optional[str] = ""
    environment: Optional[dict[str, Any]] = None
    machines: Optional[list[dict[str, Any]]] = None
    failed_before_check: Optional[list[FailedBeforeCheck]] = None  # reports written before it: none recorded


def load_report(path: Path, *, check_figures: bool = True) -> SavedReport:
    """The report at ``path``, verified; a ReportError for anything that is not an intact schema-2 report.

    ``check_figures=False`` leaves latency figures to the caller: ``baseline update`` refuses them per
    entry, by the baseline's own rules, naming the check."""
    path = Path(path)
    data = _read_json(path)
    _check_kind(path, data)
    if data.get(HASH_FIELD) is None:
        raise ReportError(f"report {path}: has no content hash, so it cannot be checked for damage "
                          f"(written by a pytest-infercheck before {plugin_version()}?); {RERUN}")
    if data[HASH_FIELD] != content_hash(data):
        raise ReportError(f"report {path}: its content does not match its content hash: the file was changed after "
                          f"pytest wrote it (edited by hand, or altered in transfer); {RERUN}")
    try:
        contents = from_data(_Contents, data, "report")
        for index, result in enumerate(contents.results if check_figures else ()):
            check_latency(result.latency, f"results[{index}].latency")
    except DecodeError as err:  # a hash recomputed over wrong types: refused, never judged (or a traceback)
        raise ReportError(f"report {path}: {str(err).removeprefix('report.')}; not a report that --infer-report "
                          f"wrote; {RERUN}") from None
    return SavedReport(path, contents.plugin_version or "", contents.created or "", contents.environment or {},
                       list(contents.machines or []), contents.results, list(contents.failed_before_check or []))


_STATISTICS = ("min_ms", "mean_ms", "std_ms", *(f"{name}_ms" for name in PERCENTILES))


def check_latency(latency: Any, where: str) -> None:
    """Figures no timer measures are refused (DecodeError naming the field): a negative, NaN or infinite
    sample or statistic passed the gate as "faster" and crashed the HTML report's histogram. A statistic
    is NaN only where there are no samples to compute it from (the spread also with one sample)."""
    if latency is None:
        return
    for index, value in enumerate(latency.samples_ms):
        if not math.isfinite(value) or value < 0:
            raise DecodeError(f"{where}.samples_ms[{index}] is {value!r}, expected a finite number of milliseconds >= 0")
    for index, value in enumerate(latency.block_medians_ms):
        if not math.isfinite(value) or value <= 0:
            raise DecodeError(f"{where}.block_medians_ms[{index}] is {value!r}, expected a positive number of milliseconds")
    for name, value in (("probe_ms", latency.probe_ms), ("probe_spread", latency.probe_spread),
                        ("probe_after_ms", latency.probe_after_ms)):
        if value is not None and (not math.isfinite(value) or value < 0):  # the gate's noise reads them
            raise DecodeError(f"{where}.{name} is {value!r}, expected a finite number >= 0")
    if latency.kernel is not None:
        check_kernel(latency.kernel, f"{where}.kernel")
    for name in _STATISTICS:
        value = getattr(latency, name)
        if math.isnan(value) and (not latency.samples_ms or (name == "std_ms" and len(latency.samples_ms) < 2)):
            continue
        if not math.isfinite(value) or value < 0:
            raise DecodeError(f"{where}.{name} is {value!r}, expected a finite number of milliseconds >= 0")


def check_kernel(kernel: Any, where: str) -> None:
    """A GPU engine's kernel time (kernel_time.KernelTime): samples >= 0 (an iteration may launch nothing),
    a positive wall p50, blocks >= 0, a threshold in (0, 1]; the gate judges a launch-bound engine on it."""
    for index, value in enumerate(kernel.samples_ms):
        if not math.isfinite(value) or value < 0:
            raise DecodeError(f"{where}.samples_ms[{index}] is {value!r}, expected a finite number of milliseconds >= 0")
    if not kernel.samples_ms:
        raise DecodeError(f"{where}.samples_ms is empty, expected the kernel time of each profiled iteration")
    if not (math.isfinite(kernel.wall_p50_ms) and kernel.wall_p50_ms > 0):
        raise DecodeError(f"{where}.wall_p50_ms is {kernel.wall_p50_ms!r}, expected positive milliseconds")
    # A block's median may be 0, like a sample: iterations in a row may launch no device work.
    if not all(math.isfinite(value) and value >= 0 for value in kernel.block_medians_ms):
        raise DecodeError(f"{where}.block_medians_ms is {list(kernel.block_medians_ms)!r}, expected milliseconds >= 0")
    if kernel.device_probe_ms is not None and not (math.isfinite(kernel.device_probe_ms) and kernel.device_probe_ms > 0):
        raise DecodeError(f"{where}.device_probe_ms is {kernel.device_probe_ms!r}, expected positive milliseconds")
    if not (math.isfinite(kernel.device_probe_spread) and kernel.device_probe_spread >= 0):
        raise DecodeError(f"{where}.device_probe_spread is {kernel.device_probe_spread!r}, expected a finite number >= 0")
    if not 0 < kernel.launch_bound_below <= 1:
        raise DecodeError(f"{where}.launch_bound_below is {kernel.launch_bound_below!r}, expected a fraction in (0, 1]")


def _read_json(path: Path) -> Any:
    """The file's JSON through the one bounded reader (codec.load_json): regular file, size, depth, no NaN."""
    if not path.exists():
        raise ReportError(f"report {path}: no such file")
    try:
        return load_json(path)
    except JsonSyntaxError as err:
        ending = " (it ends early: truncated?)" if ends_early(err.text, err.error) else ""
        raise ReportError(f"report {path}: not valid JSON{ending} (line {err.error.lineno}, column {err.error.colno}: "
                          f"{err.error.msg}); {RERUN}") from None
    except DecodeError as err:
        raise ReportError(f"report {path}: {err}; {RERUN}") from None


def ends_early(text: str, err: Any) -> bool:
    """Whether the JSON error is the file ending mid-value: at the end itself, in a string that runs
    to the end, or in a last token cut short (``tr`` of ``true``, ``1.5e`` of ``1.5e-3``: the parser
    stops at the token's start, before the end)."""
    rest = text[err.pos:].rstrip()
    if err.msg.startswith("Extra data"):  # a whole value, then more: not a cut
        return False
    return (not rest or err.msg.startswith("Unterminated string")
            or not any(char.isspace() or char in ',:[]{}"' for char in rest))


def _check_kind(path: Path, data: Any) -> None:
    """A pytest-infercheck report of the schema this version reads; older and newer ones say which version wrote them."""
    if not isinstance(data, dict) or "schema" not in data or not isinstance(data.get("results"), list):
        raise ReportError(f"report {path}: not a pytest-infercheck report (expected the JSON file that "
                          "pytest --infer-report=PATH writes, with \"schema\" and \"results\")")
    schema = data["schema"]
    writer = data.get("plugin_version") or (data.get("environment") or {}).get("libraries", {}).get("pytest-infercheck")
    by = f"pytest-infercheck {writer}" if writer else "another pytest-infercheck"
    if schema != SCHEMA_VERSION:
        if isinstance(schema, int) and not isinstance(schema, bool) and schema < SCHEMA_VERSION:
            raise ReportError(f"report {path}: schema {schema}, written by {by}; this pytest-infercheck "
                              f"({plugin_version()}) reads schema {SCHEMA_VERSION} only: {RERUN} under "
                              f"pytest-infercheck {plugin_version()}")
        if isinstance(schema, int) and not isinstance(schema, bool):
            raise ReportError(f"report {path}: schema {schema}, written by {by}, is newer than this pytest-infercheck "
                              f"({plugin_version()}, schema {SCHEMA_VERSION}): upgrade pytest-infercheck where "
                              "the gate runs to the version that wrote the report")
        raise ReportError(f"report {path}: schema {schema!r} is not a report schema (expected {SCHEMA_VERSION})")
    if data.get("format", FORMAT) != FORMAT:  # absent: an older writer, refused below for its missing hash
        raise ReportError(f"report {path}: \"format\" is {data.get('format')!r}, expected {FORMAT!r}; {RERUN}")
