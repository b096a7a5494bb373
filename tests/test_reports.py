"""Markdown, JUnit XML and HTML reports of a run with a regression in it; the HTML opened in headless Chromium."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

# Two tests: an eager model whose forward sleeps SLEEP_MS (to inject a slowdown), and the small CNN on
# ONNX Runtime and on TensorRT (which cannot run here: a skipped cell with its reason).
SOURCE = """
import pytest, torch
from fixtures.gate_models import sleepy
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["eager"])
def test_sleepy(infercheck):
    infercheck(sleepy(), torch.randn(2, 4))

# A per-test allowance (the marker beats the command line): this engine is not what these tests regress,
# and a loaded CI machine can slow a CPU engine several-fold between two runs.
@pytest.mark.infercheck(backends=["onnxruntime", "tensorrt"], max_regression="100000%")
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
"""
SAMPLES = "--infer-min-iters=20"


@pytest.fixture
def regressed_run(run_plugin, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Record a baseline at 1 ms of sleep (three blessed runs: the gate fails on latency once the history has
    measured the between-run noise), then run at 20 ms with the given report options."""
    baseline = pytester.path / "baseline.json"

    def run(*args: str) -> pytest.RunResult:
        monkeypatch.setenv("SLEEP_MS", "1")
        for _ in range(3):
            run_plugin(SOURCE, f"--infer-baseline={baseline}", "--infer-baseline-update", SAMPLES)
        monkeypatch.setenv("SLEEP_MS", "20")
        result = run_plugin(SOURCE, f"--infer-baseline={baseline}", SAMPLES, *args)
        result.assert_outcomes(passed=1, failed=1, skipped=1)
        return result

    return run


def markdown_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in text.splitlines() if line.startswith("| ")]


def test_markdown_marks_the_regression_and_appends_to_the_github_step_summary(
        regressed_run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = pytester.path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report = pytester.path / "out" / "infercheck.md"
    result = regressed_run(f"--infer-markdown={report}")
    result.stdout.fnmatch_lines([f"infercheck Markdown report: {report}"])

    text = report.read_text()
    assert text.startswith("## infercheck: 1 failed, 1 passed, 1 skipped, **1 regressed**")
    header, *body = markdown_rows(text)
    assert header[-1] == "vs baseline" and all(len(row) == len(header) for row in body)
    by_engine = {row[1].strip("*"): row for row in body}
    assert by_engine["eager-fp32"][3] == "**failed (regression)**"
    assert re.fullmatch(r"\*\*REGRESSION latency \+\d+\.\d%\*\*", by_engine["eager-fp32"][-1])
    assert by_engine["tensorrt-fp32"][-1] == "-"  # skipped: never compared
    assert "### Failures" in text and "regression: latency p50 " in text
    assert "### Not compared with the baseline" not in text  # every item that ran had its entry

    # Each run appends (the three recording runs, then the regressed one); what was there stays.
    steps = summary.read_text()
    assert steps.startswith("earlier step\n## infercheck: 2 passed, 1 skipped\n")
    assert steps.count("## infercheck") == 4 and steps.endswith(text + "\n")


def test_junit_xml_carries_every_figure_and_the_baseline_side(regressed_run, pytester: pytest.Pytester) -> None:
    junit = pytester.path / "junit.xml"
    regressed_run(f"--junitxml={junit}")
    cases = {case.get("name"): case for case in ElementTree.parse(junit).getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_sleepy[eager-fp32]"].iter("property")}
    assert props["infercheck.eager-fp32.outcome"] == "failed"
    assert float(props["infercheck.eager-fp32.latency.p50_ms"]) >= 20.0
    assert props["infercheck.eager-fp32.baseline.status"] == "found"
    assert props["infercheck.eager-fp32.baseline.latency.verdict"] == "regression"
    # A 1 ms sleep then, 20 ms now (a loaded machine adds to both, so only the order is asserted).
    assert 1.0 <= float(props["infercheck.eager-fp32.baseline.latency.baseline_p50_ms"]) < float(
        props["infercheck.eager-fp32.baseline.latency.current_p50_ms"])
    assert float(props["infercheck.eager-fp32.baseline.latency.ratio"]) > 5
    assert props["infercheck.eager-fp32.baseline.regression"].startswith("latency p50 ")
    ort = {p.get("name"): p.get("value") for p in cases["test_cnn[onnxruntime-fp32]"].iter("property")}
    assert float(ort["infercheck.onnxruntime-fp32.baseline.output.max_abs"]) >= 0  # the baseline's error figure
    assert float(ort["infercheck.onnxruntime-fp32.output.max_abs"]) >= 0  # this run's


# -- HTML -------------------------------------------------------------------------------------------

CHROMIUM_HINT = "install Chromium to run this test: apt-get install -y chromium (Debian) -- .ci/run does"
CONSOLE_LINE = re.compile(r":CONSOLE[(:]")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(CHROMIUM_HINT)


def open_in_chromium(page: Path, screenshot: Path, profile: Path) -> tuple[list[str], str]:
    """Load ``page`` headless; return the page's console messages and its DOM after load, save a screenshot.

    Chromium prints every console message of the page (log, warning, error, uncaught exception) to
    stderr as ``...:CONSOLE(line)] "text", source: ...`` with --enable-logging=stderr; its own
    start-up noise (D-Bus, GPU probing) has no CONSOLE tag.
    """
    common = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
              f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1400,2200"]
    shot = subprocess.run([*common, f"--screenshot={screenshot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and dom.returncode == 0, shot.stderr[-2000:] + dom.stderr[-2000:]
    console = [line for line in (shot.stderr + dom.stderr).splitlines() if CONSOLE_LINE.search(line)]
    return console, dom.stdout


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_the_console_check_catches_a_broken_page(tmp_path: Path) -> None:
    """The harness below must see console errors, or "no console errors" would prove nothing."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>x</p><script>console.error('boom'); missingFunction();</script></body></html>")
    console, dom = open_in_chromium(page, tmp_path / "broken.png", tmp_path / "profile")
    assert any('"boom"' in line for line in console)
    assert any("missingFunction is not defined" in line for line in console)
    assert "<p>x</p>" in dom


def test_html_report_is_self_contained_and_renders_in_chromium(regressed_run, pytester: pytest.Pytester,
                                                               tmp_path: Path) -> None:
    chromium()  # skip before the runs when there is no browser
    pytest.importorskip("matplotlib", reason="pip install 'pytest-infercheck[html]' (matplotlib) for the report's plots")
    page = pytester.path / "report" / "infercheck.html"
    regressed_run(f"--infer-html={page}")
    text = page.read_text()

    # Self-contained: no scripts, no external stylesheets, images or fonts.
    assert "<script" not in text and "<link" not in text and not re.search(r"(src|href)=['\"]?(https?:|//)", text)
    # The matrix: one row per model, one column per engine, coloured by outcome, the regression marked.
    matrix = text[text.index("<table class='matrix'>"):]
    matrix = matrix[:matrix.index("</table>")]
    assert matrix.count("<tr>") == 3  # header + two models
    assert "class='regression'" in matrix and "class='passed'" in matrix and "class='skipped'" in matrix
    # Per engine that ran: a latency plot with the baseline beside this run, and the error figures.
    assert text.count("<svg") == 2
    assert text.count(">baseline<") >= 2 and text.count(">this run<") >= 2  # legends of both plots
    assert "baseline max abs" in text and "regression: latency p50 " in text
    assert "onnxruntime" in text[text.index("<h2>Environment</h2>"):]

    screenshot = tmp_path / "infercheck-report.png"
    console, dom = open_in_chromium(page, screenshot, tmp_path / "profile")
    assert console == [], "console messages while rendering the report:\n" + "\n".join(console)
    assert "Models x engines" in dom and dom.count("<svg") == 2
    width, height = png_size(screenshot)
    assert (width, height) == (1400, 2200) and screenshot.stat().st_size > 50_000  # a page, not a blank
    print(f"screenshot of the HTML report: {screenshot}")


def test_a_comparison_without_a_verdict_survives_the_trip_to_the_controller_and_renders() -> None:
    """Too few samples give no ratio (NaN): it must read back from JSON and render everywhere."""
    from pytest_infercheck.baseline.summary import baseline_properties, status_cell
    from pytest_infercheck.measure.regression import compare_latency
    from pytest_infercheck.report.html import render_html
    from pytest_infercheck.report.markdown import render_markdown
    from pytest_infercheck.measure.results import BaselineComparison, BaselineStatus, CheckResult
    from pytest_infercheck.measure.timing import summarize

    comparison = compare_latency([1.0, 1.1, 1.2], [1.0] * 20, max_regression=0.05)
    result = CheckResult(nodeid="test_x.py::test_x[eager-fp32]", spec_id="eager-fp32", backend="eager",
                         precision="fp32", cuda_graphs=False, model_name="Tiny",
                         latency=summarize([1.0, 1.1, 1.2], timer="cpu-perf_counter", batch_size=1, warmup=0),
                         baseline=BaselineComparison(BaselineStatus.FOUND, "b.json", latency=comparison,
                                                     baseline_samples_ms=(1.0,) * 20))
    data = result.to_dict()
    assert data["baseline"]["latency"]["ratio"] == "nan"  # JSON has no NaN: it travels as text
    received = CheckResult.from_dict(data)  # what the xdist controller gets
    assert received.baseline.latency.ratio != received.baseline.latency.ratio  # NaN again
    assert status_cell(received) == "no latency verdict"
    assert ("infercheck.eager-fp32.baseline.latency.verdict", "insufficient") in baseline_properties(received)
    assert "| no latency verdict |" in render_markdown([received], baseline="b.json")
    assert "no latency verdict (20 vs 3 samples: too few)" in render_html([received])


TWO_CHECKS = '''
import pytest, torch

def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_two_checks(infercheck):
    model = mlp()
    infercheck(model, torch.ones(2, 16), name="ones")
    infercheck(model, torch.full((2, 16), 2.0), name="twos", budget="1us", raise_on_failure=False)

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
@pytest.mark.parametrize("path", ["a/b", "a-b"])
def test_paths(infercheck, path):
    infercheck(mlp(), torch.ones(2, 16))
'''


def test_every_report_keeps_a_tests_checks_apart(run_plugin, pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Two checks in one test, the second failing without raising: JUnit named both checks' figures
    alike, the HTML matrix showed one cell (the failure hid the pass) and two cards with one title and
    one anchor; ids differing only in punctuation (``a/b``, ``a-b``) shared an anchor too."""
    junit, page, markdown = tmp_path / "junit.xml", tmp_path / "r.html", tmp_path / "r.md"
    result = run_plugin(TWO_CHECKS, "-p", "no:xdist", f"--junitxml={junit}", f"--infer-html={page}",
                        f"--infer-markdown={markdown}")
    result.assert_outcomes(passed=3)
    [case] = [c for c in ElementTree.parse(junit).getroot().iter("testcase") if c.get("name").startswith("test_two_checks")]
    props = [(p.get("name"), p.get("value")) for p in case.iter("property")]
    names = [name for name, _ in props]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert ("infercheck.eager-fp32[ones].outcome", "passed") in props
    assert ("infercheck.eager-fp32[twos].outcome", "failed") in props
    assert "infercheck.eager-fp32[twos].budget" in names and "infercheck.eager-fp32.outcome" not in names

    text = page.read_text()
    rows = re.findall(r"<tr><th>([^<]*)</th><td class='(\w+)'>", text)
    assert ("test_model.py::test_two_checks (ones)", "passed") in rows
    assert ("test_model.py::test_two_checks (twos)", "failed") in rows
    anchors = re.findall(r"<div class='card' id='([^']+)'>", text)
    assert len(anchors) == len(set(anchors)) == 4, anchors
    assert sorted(re.findall(r"href='#([^']+)'", text)) == sorted(anchors)  # every cell reaches its own card
    titles = re.findall(r"<h3>([^<]*test_two_checks[^<]*) <span", text)
    assert len(titles) == 2 and len(set(titles)) == 2 and any("(twos)" in title for title in titles)

    failures = markdown.read_text().split("### Failures", 1)[1]
    assert "(twos)" in failures and "(ones)" not in failures
