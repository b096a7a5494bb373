"""Percentiles come from one table (stats.PERCENTILES) that every report iterates: adding p95 is that
one line.  The test adds it before anything else reads the table (a fresh interpreter) and checks
every place a percentile shows up."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ADD_P95 = textwrap.dedent("""
    import json
    import pytest_infercheck.measure.stats as stats
    stats.PERCENTILES.clear()
    stats.PERCENTILES.update({"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99})  # the one line, in order

    from pytest_infercheck.measure.timing import summarize
    from pytest_infercheck.measure.results import AccuracyResult, CheckResult
    from pytest_infercheck.report.table import COLUMNS, FIT_STEPS, render_text
    from pytest_infercheck.report.junit import junit_properties
    from pytest_infercheck.report.html import latency_table
    from pytest_infercheck.baseline.store import entry_from_result
    from pytest_infercheck.measure.budget import Budget, decide_budget
    from pytest_infercheck.config.parsers import parse_budget

    stats_ = summarize([float(i) for i in range(1, 101)], timer="cpu", batch_size=1, warmup=0)
    result = CheckResult(nodeid="t.py::t[eager-fp32]", spec_id="eager-fp32", backend="eager", precision="fp32",
                         cuda_graphs=False, latency=stats_, machine={"host": "x"},
                         accuracy=AccuracyResult([]))
    props = dict(junit_properties(result))
    print(json.dumps({
        "p95": stats_.p95_ms,
        "describe": stats_.describe(),
        "columns": list(COLUMNS),
        "fit": [step for step in FIT_STEPS if isinstance(step, str)],
        "table": render_text([result])[0],
        "junit": props.get("infercheck.eager-fp32.latency.p95_ms"),
        "html": "p95 ms" in latency_table(result),
        "json": result.to_dict()["latency"].get("p95_ms"),
        "baseline": (entry_from_result(result).latency or {}).get("p95_ms") if entry_from_result(result) else None,
        "budget": parse_budget("p95:80ms").statistic,
        "decided": decide_budget(stats_.samples_ms, Budget("p95", 200.0)).decision.value,
    }))
""")


def test_adding_p95_is_one_row_of_the_table() -> None:
    run = subprocess.run([sys.executable, "-c", ADD_P95], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert abs(seen["p95"] - 95.05) < 1e-9
    assert "p95 95.050 ms" in seen["describe"]
    assert seen["columns"][6:10] == ["p50 ms", "p90 ms", "p95 ms", "p99 ms"]
    assert "p95 ms" in seen["fit"] and "p50 ms" not in seen["fit"]  # a narrow terminal drops it, never p50
    assert "p95 ms" in seen["table"]
    assert seen["junit"] == seen["json"] == seen["baseline"] == 95.05
    assert seen["html"] and seen["budget"] == "p95" and seen["decided"] == "pass"
