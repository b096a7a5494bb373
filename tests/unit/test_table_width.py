"""Whether the summary is fitted to a width: only for a real terminal, never for a log or a proxy."""

from __future__ import annotations

import io
import os
from types import SimpleNamespace

from pytest_infercheck.report.table import render_text
from pytest_infercheck.report.terminal import table_width
from pytest_infercheck.measure.results import CheckResult


def reporter(stream: object, width: int = 123) -> SimpleNamespace:
    return SimpleNamespace(_tw=SimpleNamespace(_file=stream, fullwidth=width), isatty=lambda: True)


def test_a_real_terminal_gives_its_width_and_a_log_or_proxy_none(tmp_path) -> None:
    leader, follower = os.openpty()
    try:
        with os.fdopen(follower, "w") as terminal:
            assert table_width(reporter(terminal)) == 123
    finally:
        os.close(leader)
    assert table_width(reporter(io.StringIO())) is None  # captured output (pytester), even if isatty() said yes
    with open(tmp_path / "log.txt", "w") as log:
        assert table_width(reporter(log)) is None


def test_without_a_width_every_column_stays() -> None:
    item = CheckResult(nodeid="t.py::test_" + "x" * 80 + "[eager-fp32]", spec_id="eager-fp32", backend="eager",
                       precision="fp32", cuda_graphs=False)
    assert render_text([item])[0].split() == ["test", "engine", "device", "outcome", "max", "abs", "err", "cosine", "p50",
                                              "ms", "p90", "ms", "p99", "ms", "speedup", "build", "s", "cache"]
    fitted = render_text([item], width=80)
    assert all(len(line) <= 80 for line in fitted) and "not shown at 80 columns" in " ".join(fitted)
