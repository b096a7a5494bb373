"""``--infer-report=PATH.json``: every figure, the raw samples, the environment fingerprint."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ..environment import fingerprint
from ..files import write_atomic
from ..jsonsafe import json_safe
from ..results import SCHEMA_VERSION, CheckResult
from .table import ordered


def report_data(results: Sequence[CheckResult]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for result in results:
        counts[str(result.outcome)] = counts.get(str(result.outcome), 0) + 1
    return {
        "schema": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": fingerprint(),
        "counts": counts,
        "results": [result.to_dict() for result in ordered(results)],
    }


def write_json_report(path: Path, results: Sequence[CheckResult]) -> None:
    """Strict JSON (no NaN or Infinity tokens), UTF-8: whatever a result carries is made JSON-safe first."""
    write_atomic(path, json.dumps(json_safe(report_data(results)), indent=1, allow_nan=False, ensure_ascii=False))
