"""The summary table: one row per check, shared by the terminal summary and the Markdown report."""

from __future__ import annotations

from typing import AbstractSet

import math
import textwrap
from typing import Optional, Sequence, Union

from ..measure.results import CheckResult, check_label, several_checks
from ..measure.stats import PERCENTILES
from ..backends import split_item_id

COLUMNS = ("test", "engine", "device", "outcome", "max abs err", "cosine", *(f"{name} ms" for name in PERCENTILES),
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
    """``failed (accuracy)``; ``passed, undecided`` when a figure could not decide; a check whose failure
    the test handled itself says so."""
    text = str(result.outcome) + (f" ({result.stage})" if result.outcome != "passed" and result.stage else "")
    text += ", undecided" if result.undecided else ""
    return text + (", not raised" if result.not_raised else "")


def undecided_lines(results: Sequence[CheckResult]) -> list[str]:
    """One line per figure that could not tell pass from fail, for every report's "undecided" section."""
    return [f"{item_name(r.nodeid, r.spec_id)}: {note}" for r in results for note in r.undecided]


def engine_cell(result: CheckResult) -> str:
    """The engine id, the method in a few words when its recipe has one (``inductor-fp8 (dynamic, per-row)``),
    and ``launch-bound`` for a GPU engine whose kernels keep the GPU busy under half its wall time."""
    labels = [result.recipe.label if result.recipe is not None else ""]
    kernel = result.latency.kernel if result.latency is not None else None
    labels.append("launch-bound" if kernel is not None and kernel.launch_bound else "")
    label = ", ".join(text for text in labels if text)
    return f"{result.spec_id} ({label})" if label else result.spec_id


KERNEL_HEADING = ("GPU kernel time (device-busy time per run beside the wall p50; against a baseline a launch-bound "
                  "engine is judged on its kernel time, and a dense one's wall time is read with it):")


def kernel_lines(results: Sequence[CheckResult]) -> list[str]:
    """One line per GPU engine whose kernel time was measured, for the terminal and Markdown reports:
    ``test_x.py::test_y[eager-fp32]: launch-bound: kernels 0.41 ms of 3.2 ms wall, 13% busy``."""
    return [f"{item_name(r.nodeid, r.spec_id)}: {r.latency.kernel.describe()}" for r in ordered(results)
            if r.latency is not None and r.latency.kernel is not None]


NOTES_HEADING = "notes (information, not warnings):"


def note_lines(results: Sequence[CheckResult]) -> list[str]:
    """Each distinct note once, with the item it is about, or how many items it is about (a run-wide setting
    gives every item the same note)."""
    by_note: dict[str, list[str]] = {}
    for result in ordered(results):
        for note in result.notes:
            by_note.setdefault(note, []).append(item_name(result.nodeid, result.spec_id))
    return [f"{items[0]}: {note}" if len(items) == 1 else f"{note} ({len(items)} items, e.g. {items[0]})"
            for note, items in by_note.items()]


BATCH_HEADING = "largest batch within the budget (--infer-max-batch-search):"


def max_batch_lines(results: Sequence[CheckResult]) -> list[str]:
    """One line per item whose largest-batch search ran: ``test_x.py::test_y[onnxruntime-fp32]: largest batch
    within p90:1ms: 32, 41210 items/s (tried 1, 2, 4, ...)``."""
    return [f"{item_name(r.nodeid, r.spec_id)}: {r.max_batch.describe()}" for r in ordered(results)
            if r.max_batch is not None]


def row(result: CheckResult, several: AbstractSet[str] = frozenset()) -> list[str]:
    """One result's cells; ``several``: the items that ran several checks, whose rows name the check."""
    worst = result.accuracy.worst() if result.accuracy is not None else None
    latency = result.latency
    # The result's own speedup, the figure JSON, JUnit and HTML carry too: eager timed in the process
    # that timed the engine, on its device (under xdist the eager row may be another worker's timing).
    speedup = result.speedup
    return [
        test_name(result.nodeid) + check_label(result, several),
        engine_cell(result),
        result.device or "-",
        outcome_cell(result),
        _fmt(worst.max_abs if worst else None, ".2e"),
        _fmt(worst.cosine if worst else None, ".6f"),
        *(_fmt(latency.statistic(name) if latency else None, ".3f") for name in PERCENTILES),
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


# How a table wider than the terminal is made to fit, step by step until it does: a long test name is
# cut in the middle (file and parameters stay) before a figure is left out, and the least read figures
# go first. The reports (JSON, Markdown, HTML) keep every column.
# Percentiles from the one table: the middle ones go early, the tail one late; p50 always stays.
_MIDDLE = tuple(f"{name} ms" for name in list(PERCENTILES)[1:-1])
_TAIL = tuple(f"{name} ms" for name in list(PERCENTILES)[-1:]) if len(PERCENTILES) > 1 else ()
FIT_STEPS: tuple[Union[str, int], ...] = (48, *_MIDDLE, "cache", "device", "build s", 32, *_TAIL, "cosine", 24,
                                          "speedup")


def render_text(results: Sequence[CheckResult], width: Optional[int] = None) -> list[str]:
    """Aligned plain-text lines: header, rule, one line per result; within ``width`` characters when
    given (FIT_STEPS), and then a last line says which columns were left out."""
    body = rows(results)
    columns = list(COLUMNS)
    dropped: list[str] = []
    for step in FIT_STEPS:
        if width is None or _table_width(columns, body) <= width:
            break
        if isinstance(step, int):
            body = [[_middle_cut(cells[0], step), *cells[1:]] for cells in body]
            continue
        index = columns.index(step)
        columns.pop(index)
        body = [cells[:index] + cells[index + 1:] for cells in body]
        dropped.append(step)
    widths = _widths(columns, body)
    numeric = {i for i, name in enumerate(columns) if name not in ("test", "engine", "device", "outcome", "cache")}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [line(columns), line(["-" * w for w in widths])] + [line(cells) for cells in body]
    if dropped:
        lines += textwrap.wrap(f"(not shown at {width} columns: {', '.join(dropped)}; the reports have them)",
                               width=max(width or 0, 24))
    return lines


def _widths(columns: Sequence[str], body: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(cell) for cell in column) for column in zip(columns, *body)]


def _table_width(columns: Sequence[str], body: Sequence[Sequence[str]]) -> int:
    widths = _widths(columns, body)
    return sum(widths) + 2 * (len(widths) - 1)


def _middle_cut(text: str, room: int) -> str:
    """``test_models.py::test_…[batch-8]``: the file and the parameters stay readable."""
    if len(text) <= room:
        return text
    keep = room - 1
    return text[: keep - keep // 2] + "…" + text[len(text) - keep // 2:]


def reasons(results: Sequence[CheckResult]) -> list[str]:
    """One line per skipped item: the reasons say what to install, which the table has no room for."""
    return [f"{item_name(r.nodeid, r.spec_id)}: {r.message}" for r in results if r.outcome == "skipped" and r.message]
