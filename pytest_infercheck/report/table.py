"""The summary table: one row per check, shared by the terminal summary and the Markdown report."""

from __future__ import annotations

import math
from typing import Optional, Sequence

from ..results import CheckResult

COLUMNS = ("test", "engine", "device", "outcome", "max abs err", "cosine", "p50 ms", "p90 ms", "p99 ms",
           "speedup", "build s", "cache")


def test_name(nodeid: str) -> str:
    """``tests/test_x.py::test_y[onnxruntime-fp16]`` -> ``test_x.py::test_y`` (the engine has its own column)."""
    name = nodeid.split("[", 1)[0]
    return name.rsplit("/", 1)[-1]


def _fmt(value: Optional[float], spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def row(result: CheckResult) -> list[str]:
    worst = result.accuracy.worst() if result.accuracy is not None else None
    latency = result.latency
    return [
        test_name(result.nodeid),
        result.spec_id,
        result.device or "-",
        result.outcome + (f" ({result.stage})" if result.outcome != "passed" and result.stage else ""),
        _fmt(worst.max_abs if worst else None, ".2e"),
        _fmt(worst.cosine if worst else None, ".6f"),
        _fmt(latency.p50_ms if latency else None, ".3f"),
        _fmt(latency.p90_ms if latency else None, ".3f"),
        _fmt(latency.p99_ms if latency else None, ".3f"),
        _fmt(result.speedup, ".2f") + ("x" if result.speedup else ""),
        _fmt(result.build_seconds, ".1f"),
        result.cache_summary,
    ]


def rows(results: Sequence[CheckResult]) -> list[list[str]]:
    return [row(result) for result in sorted(results, key=lambda r: (r.nodeid, r.spec_id))]


def render_text(results: Sequence[CheckResult]) -> list[str]:
    """Aligned plain-text lines: header, rule, one line per result."""
    body = rows(results)
    widths = [max(len(cell) for cell in column) for column in zip(COLUMNS, *body)]
    numeric = set(range(4, len(COLUMNS) - 1))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(COLUMNS), line(["-" * w for w in widths])] + [line(cells) for cells in body]


def reasons(results: Sequence[CheckResult]) -> list[str]:
    """One line per skipped item: the reasons say what to install, which the table has no room for."""
    return [f"{test_name(r.nodeid)}[{r.spec_id}]: {r.message}" for r in results if r.outcome == "skipped" and r.message]
