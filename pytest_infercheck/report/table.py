"""The summary table: one row per check, shared by the terminal summary and the Markdown report."""

from __future__ import annotations

import math
from typing import Optional, Sequence

from ..results import CheckResult, check_label, several_checks
from ..spec import split_item_id

COLUMNS = ("test", "engine", "device", "outcome", "max abs err", "cosine", "p50 ms", "p90 ms", "p99 ms",
           "speedup", "build s", "cache")


def test_name(nodeid: str) -> str:
    """``tests/test_x.py::test_y[onnxruntime-fp16-8]`` -> ``test_x.py::test_y[8]``: the engine has its own
    column; the test's own parameters stay, or two batch sizes' rows would read alike."""
    return _short(split_item_id(nodeid)[0])


def item_name(nodeid: str, spec_id: str) -> str:
    """One item, as pytest names it but without the directories: ``test_x.py::test_y[onnxruntime-fp16-8]``."""
    if split_item_id(nodeid)[1] is None:  # a result whose node id does not carry its engine
        return f"{_short(nodeid)}[{spec_id}]"
    return _short(nodeid)


def _short(nodeid: str) -> str:
    path, sep, rest = nodeid.partition("::")  # not rsplit on the whole id: a parameter may hold a "/"
    return path.rsplit("/", 1)[-1] + sep + rest


def _fmt(value: Optional[float], spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def outcome_cell(result: CheckResult) -> str:
    """``failed (accuracy)``; a check whose failure the test handled itself says so."""
    text = str(result.outcome) + (f" ({result.stage})" if result.outcome != "passed" and result.stage else "")
    return text + (", not raised" if result.not_raised else "")


def row(result: CheckResult, several: set[str] = frozenset()) -> list[str]:
    """One result's cells; ``several``: the items that ran several checks, whose rows name the check."""
    worst = result.accuracy.worst() if result.accuracy is not None else None
    latency = result.latency
    # The result's own speedup, the figure JSON, JUnit and HTML carry too: eager timed in the process
    # that timed the engine, on its device (under xdist the eager row may be another worker's timing).
    speedup = result.speedup
    return [
        test_name(result.nodeid) + check_label(result, several),
        result.spec_id,
        result.device or "-",
        outcome_cell(result),
        _fmt(worst.max_abs if worst else None, ".2e"),
        _fmt(worst.cosine if worst else None, ".6f"),
        _fmt(latency.p50_ms if latency else None, ".3f"),
        _fmt(latency.p90_ms if latency else None, ".3f"),
        _fmt(latency.p99_ms if latency else None, ".3f"),
        _fmt(speedup, ".2f") + ("x" if speedup else ""),
        _fmt(result.build_seconds, ".1f"),
        result.cache_summary,
    ]


def ordered(results: Sequence[CheckResult]) -> list[CheckResult]:
    """Test (with its own parameters: one parameter set's engines together), engine, then the order the
    checks ran in (the same order for every report)."""
    position = {id(result): index for index, result in enumerate(results)}
    return sorted(results, key=lambda r: (split_item_id(r.nodeid)[0], r.spec_id, r.nodeid, position[id(r)]))


def rows(results: Sequence[CheckResult]) -> list[list[str]]:
    """The table's cells; a test that checks several models shows which check each row is."""
    several = several_checks(results)
    return [row(result, several) for result in ordered(results)]


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
    return [f"{item_name(r.nodeid, r.spec_id)}: {r.message}" for r in results if r.outcome == "skipped" and r.message]
