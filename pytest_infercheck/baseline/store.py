"""The baseline file: what each check measured last time it was blessed, per machine.

One JSON file (``--infer-baseline=PATH``) holds a list of entries, each found by its identity and
machine key (key.py).  An entry keeps the accuracy figures per output and up to ``MAX_SAMPLES``
latency samples, enough for the rank test in regression.py.  One file can hold entries of several
machines (the CPU CI runner and a GPU runner); a check is compared only with an entry of the same
machine key.

Nothing writes the file unless ``--infer-baseline-update`` is given; then the entries of the checks
that ran are replaced or added, every other entry is kept verbatim, and the file is replaced
atomically under a lock so that concurrent updaters (on one machine) do not lose each other's
entries.  This module is the store alone: the statistics are regression.py's, the per-item verdict
verdict.py's.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import pytest

from ..core.codec import DecodeError, load_json
from ..core.files import directory_lock, write_atomic
from ..measure.regression import HISTORY
from ..measure.results import BaselineStatus, check_label, several_checks
from .key import EntryIdentity, key_differences, machine_text

SCHEMA = "pytest-infercheck-baseline"
# 2: entries carry "check" (several checks per test); version-1 files load, their entries check "".
VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_SAMPLES = 500


def subsample(samples: Sequence[float], limit: int = MAX_SAMPLES) -> list[float]:
    """At most ``limit`` samples that keep the distribution: the sorted values at evenly spaced ranks.

    Deterministic (the same samples give the same subset), and it keeps the tails a random subset
    would often miss.  The time order is not kept; the rank test does not use it.
    """
    import numpy as np

    values = np.sort(np.asarray(samples, dtype=np.float64))
    if values.size <= limit:
        return [float(v) for v in values]
    picks = np.round(np.linspace(0, values.size - 1, limit)).astype(int)
    return [float(v) for v in values[picks]]


@dataclass
class Entry:
    """What one check measured on one machine when the baseline was last updated."""

    nodeid: str
    spec_id: str
    machine: dict[str, Any]
    accuracy: dict[str, dict[str, float]]  # output -> {max_abs, mean_abs, ...}
    # {timer, count, p50_ms, ... (stats.PERCENTILES), samples_ms, and for a GPU engine its kernel time:
    # kernel: {p50_ms, busy_fraction, launch_bound, block_medians_ms, samples_ms, device_probe_ms, ...}}
    latency: Optional[dict[str, Any]]
    model_hash: str = ""
    recorded: str = ""
    inputs_hash: str = ""  # the example inputs' values (CheckResult.inputs_hash); "" in entries before it
    state_hash: str = ""  # the model's tensor values (CheckResult.state_hash); "" in entries before it
    check: str = ""
    # The last runs blessed into this slot, oldest first ({recorded, p50_ms, probe_ms, count, kernel_ms,
    # device_probe_ms}): their spread is the gate's between-run noise (regression.RunNoise). A changed
    # model starts it again.
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identity(self) -> EntryIdentity:
        return EntryIdentity(self.nodeid, self.check, self.spec_id)

    @property
    def samples_ms(self) -> list[float]:
        return list(self.latency["samples_ms"]) if self.latency else []

    def same_slot(self, other: "Entry") -> bool:
        """The same check on the same machine: an update replaces one with the other."""
        return self.identity.matches(other.identity) and machine_text(self.machine) == machine_text(other.machine)


@dataclass
class Lookup:
    """The entry for a check on this machine (``FOUND``), or why there is none."""

    status: BaselineStatus
    entry: Optional[Entry] = None
    differences: list[str] = field(default_factory=list)
    # Not applied, and only library versions differ (the same hardware): --across-versions would compare it.
    versions_only: bool = False


class BaselineStore:
    """The entries of one baseline file, read once and validated."""

    def __init__(self, path: Path, entries: list[Entry], exists: bool) -> None:
        self.path = path
        self.entries = entries
        self.exists = exists

    @classmethod
    def load(cls, path: Path) -> "BaselineStore":
        """Read and validate ``path``; a missing file is an empty store, a broken one a usage error."""
        path = Path(path)
        if _missing(path):
            return cls(path, [], exists=False)
        return cls(path, parse_entries(path, _read(path)), exists=True)

    def lookup(self, identity: EntryIdentity, machine: dict[str, Any], *, across_versions: bool = False) -> Lookup:
        """The entry of ``identity`` recorded on ``machine``; with ``across_versions``, failing that, the one
        recorded on the same hardware under other library versions (found, with the versions that differ)."""
        candidates = [entry for entry in self.entries if entry.identity.matches(identity)]
        for entry in candidates:
            if machine_text(entry.machine) == machine_text(machine):
                return Lookup(BaselineStatus.FOUND, entry)
        if not candidates:
            return Lookup(BaselineStatus.MISSING)
        if across_versions and knows_versions(machine):
            hardware = machine_text(without_libraries(machine))
            same = [entry for entry in candidates
                    if knows_versions(entry.machine) and machine_text(without_libraries(entry.machine)) == hardware]
            if same:
                # The latest blessed (ISO times sort as text), whatever the file's order: an upgrade is held
                # to the figures it replaces, not to an older release's.
                chosen = max(same, key=lambda entry: entry.recorded)
                return Lookup(BaselineStatus.FOUND, chosen, differences=key_differences(chosen.machine, machine))
        # Said against the closest entry: the same hardware first (then only versions differ, and the way to compare
        # is named), else the fewest differences.
        hardware = machine_text(without_libraries(machine))
        closest = min(candidates, key=lambda entry: (machine_text(without_libraries(entry.machine)) != hardware,
                                                     len(key_differences(entry.machine, machine))))
        versions_only = (machine_text(without_libraries(closest.machine)) == hardware and not across_versions
                         and knows_versions(closest.machine) and knows_versions(machine))
        return Lookup(BaselineStatus.OTHER_MACHINE, differences=key_differences(closest.machine, machine),
                      versions_only=versions_only)


def knows_versions(machine: dict[str, Any]) -> bool:
    """A key that names its libraries' versions: only between two of them is "across versions" a comparison
    (a side without them would read ``torch 2.12.0 -> absent``)."""
    return isinstance(machine.get("libraries"), dict) and bool(machine["libraries"])


def without_libraries(machine: dict[str, Any]) -> dict[str, Any]:
    """A machine key's hardware and device facts: what two entries must share to be compared across versions."""
    return {name: value for name, value in machine.items() if name != "libraries"}


# -- reading and validating -----------------------------------------------------------------------


class _Invalid(Exception):
    pass


def _missing(path: Path) -> bool:
    """Whether ``path`` names no file yet (a baseline still to be created): ENOENT only, a dangling symlink
    included. ``Path.exists`` is False for a symlink loop or a path below a file too, and such a baseline
    was read as empty: the gate passed everything as "no entry". Those are refused as unreadable."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError as err:
        raise _usage(path, f"cannot be read ({err.strerror or err}); give a regular file") from None
    return False


def _read(path: Path) -> Any:
    """The file's JSON through the one bounded reader (codec.load_json): a regular file (a FIFO would
    block), bounded in size and nesting, no NaN/Infinity tokens; UTF-8 with or without a BOM."""
    try:
        return load_json(path)
    except DecodeError as err:
        text = str(err)
        hint = ("; save it as UTF-8" if text.startswith("not UTF-8") else
                "; give a regular file" if text.startswith(("is a", "cannot be read")) else "; fix it by hand")
        raise _usage(path, f"{err}{hint}") from None


def _usage(path: Path, problem: str) -> pytest.UsageError:
    return pytest.UsageError(f"baseline file {path}: {problem}, or delete it and run with --infer-baseline-update")


def parse_entries(path: Path, data: Any) -> list[Entry]:
    """The file's entries from its parsed JSON; any problem is a UsageError naming the file, the entry and the field."""
    try:
        return _validate_file(data)
    except _Invalid as err:
        raise _usage(path, f"{err}; fix it by hand") from None


def _validate_file(data: Any) -> list[Entry]:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise _Invalid(f"not a pytest-infercheck baseline (expected an object with \"schema\": \"{SCHEMA}\")")
    version = data.get("version")
    if version not in READABLE_VERSIONS:
        raise _Invalid(f"version {version!r} is not supported (this pytest-infercheck reads versions "
                       f"{', '.join(map(str, READABLE_VERSIONS))})")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list):
        raise _Invalid("\"entries\" must be a list")
    entries, seen = [], set()
    for index, raw in enumerate(raw_entries):
        where = f"entries[{index}]"
        if isinstance(raw, dict) and isinstance(raw.get("nodeid"), str):
            where += f" ({raw['nodeid']})"
        entry = _validate_entry(raw, where)
        slot = (entry.nodeid, entry.check, entry.spec_id, machine_text(entry.machine))
        if slot in seen:
            raise _Invalid(f"{where}: a second entry for the same test, check, engine and machine")
        seen.add(slot)
        entries.append(entry)
    return entries


def _validate_entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise _Invalid(f"{where}: expected an object, got {type(raw).__name__}")
    for name in ("nodeid", "spec_id"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise _Invalid(f"{where}: \"{name}\" must be a non-empty string")
    if not isinstance(raw.get("check", ""), str):
        raise _Invalid(f"{where}: \"check\" must be a string")
    if not isinstance(raw.get("machine"), dict):
        raise _Invalid(f"{where}: \"machine\" must be an object")
    accuracy = raw.get("accuracy", {})
    if not isinstance(accuracy, dict):
        raise _Invalid(f"{where}: \"accuracy\" must be an object of outputs")
    for output, figures in accuracy.items():
        if not isinstance(figures, dict):
            raise _Invalid(f"{where}: accuracy.{output} must be an object of figures")
        for metric, value in figures.items():
            _check_number(value, f"{where}: accuracy.{output}.{metric}", positive=False)
    latency = raw.get("latency")
    if latency is not None:
        _validate_latency(latency, where)
    history = raw.get("history", [])
    if not isinstance(history, list):
        raise _Invalid(f"{where}: \"history\" must be a list of runs")
    for index, run in enumerate(history):
        if not isinstance(run, dict):
            raise _Invalid(f"{where}: history[{index}] must be an object")
        _check_number(run.get("p50_ms"), f"{where}: history[{index}].p50_ms", positive=True)
        for name in ("probe_ms", "kernel_ms", "device_probe_ms"):
            if run.get(name) is not None:
                _check_number(run[name], f"{where}: history[{index}].{name}", positive=True)
    return Entry(nodeid=raw["nodeid"], spec_id=raw["spec_id"], machine=raw["machine"], accuracy=accuracy,
                 latency=latency, model_hash=str(raw.get("model_hash", "")), recorded=str(raw.get("recorded", "")),
                 check=raw.get("check", ""), history=history[-HISTORY:], inputs_hash=str(raw.get("inputs_hash", "")),
                 state_hash=str(raw.get("state_hash", "")))


def _validate_latency(latency: Any, where: str) -> None:
    if not isinstance(latency, dict):
        raise _Invalid(f"{where}: \"latency\" must be an object or null")
    _check_numbers(latency.get("samples_ms"), f"{where}: latency.samples_ms", positive=True, empty=False)
    _check_numbers(latency.get("block_medians_ms", []), f"{where}: latency.block_medians_ms", positive=True, empty=True)
    if latency.get("probe_ms") is not None:
        _check_number(latency["probe_ms"], f"{where}: latency.probe_ms", positive=True)
    if latency.get("probe_after_ms") is not None:
        _check_number(latency["probe_after_ms"], f"{where}: latency.probe_after_ms", positive=True)
    if latency.get("probe_spread") is not None:  # a NaN here would be written as the token NaN too
        _check_number(latency["probe_spread"], f"{where}: latency.probe_spread", positive=False)
    from ..measure.stats import PERCENTILES

    for name in (f"{statistic}_ms" for statistic in PERCENTILES):  # a NaN here was written as the token NaN:
        if name in latency:  # no later run read the file
            _check_number(latency[name], f"{where}: latency.{name}", positive=True)
    if latency.get("kernel") is not None:
        _validate_kernel(latency["kernel"], f"{where}: latency.kernel")


def _validate_kernel(kernel: Any, where: str) -> None:
    """A GPU engine's kernel time (kernel_entry): samples and blocks >= 0 (iterations may launch nothing),
    p50 > 0, a busy fraction, a launch-bound flag."""
    if not isinstance(kernel, dict):
        raise _Invalid(f"{where} must be an object or null")
    _check_numbers(kernel.get("samples_ms"), f"{where}.samples_ms", positive=False, empty=False)
    _check_numbers(kernel.get("block_medians_ms", []), f"{where}.block_medians_ms", positive=False, empty=True)
    _check_number(kernel.get("p50_ms"), f"{where}.p50_ms", positive=True)
    _check_number(kernel.get("busy_fraction"), f"{where}.busy_fraction", positive=False)
    if not isinstance(kernel.get("launch_bound"), bool):
        raise _Invalid(f"{where}.launch_bound is {kernel.get('launch_bound')!r}, expected true or false")
    if kernel.get("device_probe_ms") is not None:
        _check_number(kernel["device_probe_ms"], f"{where}.device_probe_ms", positive=True)
    if kernel.get("device_probe_spread") is not None:
        _check_number(kernel["device_probe_spread"], f"{where}.device_probe_spread", positive=False)


def _check_numbers(values: Any, where: str, *, positive: bool, empty: bool) -> None:
    if not isinstance(values, list) or (not values and not empty):
        raise _Invalid(f"{where} must be a {'' if empty else 'non-empty '}list of milliseconds")
    for index, value in enumerate(values):
        _check_number(value, f"{where}[{index}]", positive=positive)


def _check_number(value: Any, where: str, *, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > 0 if positive else value >= 0)
    if not ok:
        wanted = "a positive number" if positive else "a finite number >= 0"
        raise _Invalid(f"{where} is {value!r}, expected {wanted}")


# -- writing ---------------------------------------------------------------------------------------


@dataclass
class UpdateSummary:
    path: Path
    written: list[str]  # the entries added or replaced, as "nodeid (check)"
    kept: int  # entries of other checks or machines left as they were
    not_written: list[str]  # "nodeid: why"
    # Of them, passing results with fewer latency samples than a comparison needs: a blessing asked for
    # and not made, so the session and `baseline update` end as usage errors (the job must not pass).
    too_few_samples: int = 0


def entry_from_result(result: Any) -> Optional[Entry]:
    """The entry a finished CheckResult becomes, or None when it has nothing to bless."""
    if result.machine is None or result.accuracy is None:
        return None
    accuracy = {output.name: {metric: float(getattr(output, metric)) for metric in ("max_abs", "mean_abs", "rel_l2")
                              if math.isfinite(getattr(output, metric))}
                for output in result.accuracy.outputs}
    latency = None
    if result.latency is not None and result.latency.samples_ms:
        lat = result.latency
        latency = {"timer": lat.timer, "count": lat.count, **{name: _six(v) for name, v in lat.figures().items()},
                   "block_medians_ms": [_six(v) for v in lat.block_medians_ms],
                   "probe_ms": _six(lat.probe_ms) if lat.probe_ms else None,
                   "probe_spread": _six(lat.probe_spread),
                   "probe_after_ms": _six(lat.probe_after_ms) if lat.probe_after_ms else None,
                   "samples_ms": [_six(v) for v in subsample(lat.samples_ms)]}
        kernel = kernel_entry(lat.kernel)
        if kernel is not None:
            latency["kernel"] = kernel
    recorded = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return Entry(nodeid=result.nodeid, spec_id=result.spec_id, machine=result.machine, accuracy=accuracy,
                 latency=latency, model_hash=result.model_hash, inputs_hash=result.inputs_hash,
                 state_hash=result.state_hash,
                 check=result.check_name, recorded=recorded,
                 history=run_record(recorded, latency))


def kernel_entry(kernel: Any) -> Optional[dict[str, Any]]:
    """What an entry keeps of a GPU engine's kernel time (kernel_time.KernelTime): its samples, blocks and
    label; None without a positive kernel p50 to compare with."""
    if kernel is None or not kernel.samples_ms or not kernel.p50_ms > 0:
        return None
    return {"p50_ms": _six(kernel.p50_ms), "busy_fraction": _six(kernel.busy_fraction),
            "launch_bound": bool(kernel.launch_bound), "block_medians_ms": [_six(v) for v in kernel.block_medians_ms],
            "samples_ms": [_six(v) for v in subsample(kernel.samples_ms)],
            "device_probe_ms": _six(kernel.device_probe_ms) if kernel.device_probe_ms else None,
            "device_probe_spread": _six(kernel.device_probe_spread)}


def run_record(recorded: str, latency: Optional[dict[str, Any]]) -> list[dict[str, Any]]:
    """The one run an entry's latency figures are, as its history holds it ([] with no p50 to keep); a GPU
    engine's kernel p50 too (``kernel_ms``), whose spread is the kernel time's between-run noise."""
    if not latency or not (latency.get("p50_ms") or 0) > 0:
        return []
    record = {"recorded": recorded, "p50_ms": latency["p50_ms"], "probe_ms": latency.get("probe_ms"),
              "count": latency.get("count")}
    kernel = latency.get("kernel")
    if isinstance(kernel, dict) and (kernel.get("p50_ms") or 0) > 0:
        record["kernel_ms"] = kernel["p50_ms"]
        if kernel.get("device_probe_ms"):
            record["device_probe_ms"] = kernel["device_probe_ms"]
    return [record]


def with_history(entry: Entry, previous: Optional[Entry]) -> Entry:
    """``entry`` carrying the runs blessed before it into the same slot (at most HISTORY, oldest first).
    A changed model starts a history of its own: its runs say nothing about the old model's noise."""
    if previous is None or previous.model_hash != entry.model_hash:
        return entry
    older = previous.history or run_record(previous.recorded, previous.latency)  # an entry from before histories
    entry.history = (older + entry.history)[-HISTORY:]
    return entry


def _six(value: float) -> float:
    """Six significant digits: far below timer resolution, and the file stays readable."""
    return float(f"{value:.6g}")


def why_not_written(result: Any) -> Optional[str]:
    """None when the result may replace its entry; else the reason (a broken engine is never blessed)."""
    if result.outcome == "skipped":
        return "skipped"
    if result.machine is None or result.accuracy is None:
        return f"did not finish its check (stopped at {result.stage or 'an earlier stage'})"
    if result.outcome != "passed":
        return f"failed ({result.stage or 'test'}); a failing engine is not written into the baseline"
    return too_few_samples(result)


def too_few_samples(result: Any) -> Optional[str]:
    """Why a result's latency cannot be blessed (fewer samples than a comparison needs), or None.
    Blessed, it would leave every later comparison of its entry without a latency verdict."""
    from ..measure.regression import MIN_SAMPLES

    samples = len(result.latency.samples_ms) if result.latency is not None else None
    if samples is not None and samples < MIN_SAMPLES:
        return (f"only {samples} latency sample(s), and a comparison needs {MIN_SAMPLES} on each side: "
                "rerun with more iterations (--infer-max-iters, --infer-min-time) to bless it")
    return None


def update_baseline(path: Path, results: Sequence[Any]) -> UpdateSummary:
    """Replace or add the entries of ``results`` (the checks that ran); keep every other entry."""
    path = Path(path)
    fresh: list[Entry] = []
    not_written = []
    several = several_checks(results)
    too_few = 0
    for result in results:
        reason = why_not_written(result)
        too_few += reason is not None and result.outcome == "passed" and reason == too_few_samples(result)
        entry = entry_from_result(result) if reason is None else None
        if entry is None:
            not_written.append(f"{result.nodeid}{check_label(result, several)}: {reason or 'no figures to record'}")
            continue
        # One entry per check and machine: a rerun's result (pytest-rerunfailures) replaces the first.
        fresh = [old for old in fresh if not old.same_slot(entry)] + [entry]
    for entry in fresh:
        _refuse_unreadable(path, entry)
    if not fresh:  # nothing to bless: the file is not created, nor rewritten (the caller says so and fails)
        return UpdateSummary(path, [], len(BaselineStore.load(path).entries), not_written, too_few)
    try:
        with directory_lock(path.parent):
            # Re-read under the lock: another run may have written since this one started.
            current = BaselineStore.load(path).entries
            kept = [entry for entry in current if not any(entry.same_slot(new) for new in fresh)]
            fresh = [with_history(new, next((old for old in current if old.same_slot(new)), None)) for new in fresh]
            write_entries(path, kept + fresh)
    except OSError as err:  # immutable, a symlink loop, a full disk: one line, exit 2 (CLI) or 4 (session)
        raise pytest.UsageError(f"baseline file {path}: not updated: it cannot be written "
                                f"({err.strerror or err}); nothing was written") from None
    return UpdateSummary(path, [entry.identity.describe() for entry in fresh], len(kept), not_written, too_few)


def _refuse_unreadable(path: Path, entry: Entry) -> None:
    """Refuse, before anything is written, an entry that ``load`` would refuse: a NaN, negative or zero
    sample (from a report whose hash was recomputed, or a timer's fault) would make every later run
    stop at the baseline file instead of comparing with it."""
    try:
        _validate_entry(asdict(entry), entry.identity.describe())
    except _Invalid as err:
        raise pytest.UsageError(f"baseline file {path}: not updated: {err}; every later run would refuse "
                                "the file, so nothing was written") from None


def render(entries: Sequence[Entry]) -> str:
    """Indented JSON with each list of samples on one line, so a diff of the file stays readable.

    Strings (test ids above all) are written exactly as given: only the sample lists are compacted,
    through placeholders that no user string can equal.
    """
    ordered = sorted(entries, key=lambda e: (e.nodeid, e.check, e.spec_id, machine_text(e.machine)))
    token = uuid.uuid4().hex
    compact: dict[str, str] = {}
    raw_entries = []
    for index, entry in enumerate(ordered):
        raw = asdict(entry)
        if raw["latency"] is not None:
            placeholder = f"{token}-{index}"
            compact[placeholder] = json.dumps(raw["latency"]["samples_ms"], allow_nan=False)
            raw["latency"]["samples_ms"] = placeholder
        raw_entries.append(raw)
    # allow_nan=False: a NaN the validation missed stops the write instead of making a file no run can read.
    text = json.dumps({"schema": SCHEMA, "version": VERSION, "entries": raw_entries}, indent=1, ensure_ascii=False,
                      allow_nan=False)
    for placeholder, samples in compact.items():
        text = text.replace(json.dumps(placeholder), samples)
    return text + "\n"


def write_entries(path: Path, entries: Sequence[Entry]) -> None:
    write_atomic(Path(path), render(entries))
