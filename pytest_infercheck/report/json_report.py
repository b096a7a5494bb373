"""``--infer-report=PATH.json``: every figure, the raw samples, the environment fingerprint.

A saved report is what ``infercheck gate`` judges in a later job, often on another machine (the
GPU job writes it, a CPU-only job gates the merge).  So the report says what wrote it (the plugin
version and schema), which machines its figures are tied to (the machine keys of its results) and
a content hash: the sha256 of a canonical serialisation of everything else in the file.  A report
that was truncated in transfer or edited by hand no longer matches its hash and is refused
(report/saved.py).  The hash detects accidents; it is not a signature: anyone who edits the file
can recompute it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ..backends.environment import fingerprint
from ..core.files import write_atomic
from ..core.jsonsafe import json_safe
from ..measure.results import SCHEMA_VERSION, CheckResult, FailedBeforeCheck
from .table import ordered

FORMAT = "pytest-infercheck-report"
HASH_FIELD = "content_hash"


def plugin_version() -> str:
    from .. import __version__

    return __version__


def machine_keys(results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """The distinct machine keys of the results, in a stable order (a report may hold CPU and GPU items)."""
    keys: dict[str, dict[str, Any]] = {}
    for result in results:
        if result.machine is not None:
            keys.setdefault(json.dumps(json_safe(result.machine), sort_keys=True), result.machine)
    return [keys[text] for text in sorted(keys)]


def report_data(results: Sequence[CheckResult], failed_before_check: Sequence[FailedBeforeCheck] = ()) -> dict[str, Any]:
    """The report as JSON-ready data, its content hash included (``failed_before_check``: what failed in the
    run with no result to show it)."""
    counts: dict[str, int] = {}
    for result in results:
        counts[str(result.outcome)] = counts.get(str(result.outcome), 0) + 1
    data = json_safe({
        "format": FORMAT,
        "schema": SCHEMA_VERSION,
        "plugin_version": plugin_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": fingerprint(),
        "machines": machine_keys(results),
        "counts": counts,
        "undecided": sum(1 for result in results if result.undecided),  # passed or failed, the figures could not decide
        "results": [result.to_dict() for result in ordered(results)],
        "failed_before_check": [dataclasses.asdict(failed) for failed in failed_before_check],
    })
    data[HASH_FIELD] = content_hash(data)
    return data


def content_hash(data: dict[str, Any]) -> str:
    """``sha256:<hex>`` over the canonical JSON of ``data`` without its hash field.

    Canonical: keys sorted, no whitespace, UTF-8.  Python's JSON reads back every float it wrote
    exactly, so the reader recomputes the same text from the parsed file.
    """
    body = {name: value for name, value in data.items() if name != HASH_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def write_json_report(path: Path, results: Sequence[CheckResult],
                      failed_before_check: Sequence[FailedBeforeCheck] = ()) -> None:
    """Strict JSON (no NaN or Infinity tokens), UTF-8: whatever a result carries is made JSON-safe first."""
    write_atomic(path, json.dumps(report_data(results, failed_before_check), indent=1, allow_nan=False,
                                  ensure_ascii=False))
