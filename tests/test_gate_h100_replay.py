"""The gate on real GPU reports: eight pytest processes of benchmarks/gate_aa.py on an H100 (2026-12-07
night, docs/benchmarks.md), kept in tests/reference/h100-aa-2026-12-07/ (their six CUDA-graph engines;
latency samples reduced to the 500 the gate compares, eager reference timings dropped, content hashes
remade; `benchmarks/gate_aa.py --reports` on the kept files gives the verdicts of the full ones).

No GPU is needed to judge them: this is the CPU side of a GPU job, as `infercheck gate` runs it. Runs
1-3 are blessed (`infercheck baseline update`), runs 4-8 gated (`infercheck gate`, the CLI in this process),
each as it was measured (A/A: the code did not change) and with a slowdown injected into its figures
(wall and kernel samples scaled alike, in a report rewritten with its hash), as gate_aa.py does.
What must hold on these real between-process figures: no false regression; every slowdown either
caught or said to be undecided, never passed; and the dense CUDA graphs whose wall time could not
decide caught by their kernels (baseline/comparison.corroborate), which the wall-time rule alone
caught in none of these comparisons.

A second call (2026-12-07, 21:29 UTC, another H100), after the timer's warm-up began to last 0.5 s
(defaults.CUDA_SETTLE_S): tests/reference/h100-aa-2026-12-07-settled, the same engines and reduction
(scripts/keep_aa_reports.py). There the dense graphs' wall blocks are flat within each run, so their wall
time decides a +5% slowdown on its own: the last test holds the gate to that.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import in_process
from pytest_infercheck.report.json_report import HASH_FIELD, content_hash

RUNS = Path(__file__).parent / "reference" / "h100-aa-2026-12-07"
BLESSED, GATED = (1, 2, 3), (4, 5, 6, 7, 8)
DENSE_CAUGHT_BY_KERNELS = ("test_convmixer[eager-fp16-cudagraph]", "test_convmixer[inductor-fp16-cudagraph]")


def slowed(report: Path, out: Path, factor: float) -> Path:
    """``report`` with every latency figure ``factor`` slower (wall and GPU kernel samples and blocks)."""
    data = json.loads(report.read_text())
    for result in data["results"]:
        latency = result["latency"]
        for figures in (latency, latency.get("kernel") or {}):
            for key in ("samples_ms", "block_medians_ms"):
                if key in figures:
                    figures[key] = [value * factor for value in figures[key]]
        for key in ("min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms"):
            if isinstance(latency.get(key), float):
                latency[key] *= factor
        latency["percentiles_ms"] = {name: value * factor for name, value in latency["percentiles_ms"].items()}
        if latency.get("kernel"):
            latency["kernel"]["wall_p50_ms"] *= factor
    data[HASH_FIELD] = content_hash(data)
    out.write_text(json.dumps(data))
    return out


def blessed(runs: Path, path: Path) -> Path:
    """A baseline of ``runs``' BLESSED reports, blessed in order with the CLI."""
    for run in BLESSED:
        done = in_process("baseline", "update", runs / f"run{run}.json", "--baseline", path)
        assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return blessed(RUNS, tmp_path_factory.mktemp("h100") / "baseline.json")


def gate(report: Path, baseline: Path, tmp_path: Path) -> dict:
    markdown = tmp_path / "gate.md"
    done = in_process("gate", report, "--baseline", baseline, "--junitxml", tmp_path / "junit.xml",
                      "--markdown", markdown)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr
    return {"returncode": done.returncode, "stdout": done.stdout}


@pytest.mark.parametrize("run", GATED)
def test_unchanged_code_in_another_process_raises_no_regression(run: int, baseline: Path, tmp_path: Path) -> None:
    judged = gate(RUNS / f"run{run}.json", baseline, tmp_path)
    assert judged["returncode"] == 0, judged["stdout"]
    assert "REGRESSION" not in judged["stdout"]
    # The dense graphs' noisy wall time is said to be undecided, not passed quietly.
    assert "undecided" in judged["stdout"]


ENGINES = ("test_convmixer[eager-fp16-cudagraph]", "test_convmixer[inductor-fp16-cudagraph]",
           "test_mlp[eager-fp16-cudagraph]", "test_mlp[inductor-fp16-cudagraph]",
           "test_tiny_decoder[eager-fp16-cudagraph]", "test_tiny_decoder[inductor-fp16-cudagraph]")


def named(out: str, marker: str) -> dict[str, str]:
    """The gate's lines that carry ``marker`` ("REGRESSION", or the undecided list's "baseline latency"), by engine."""
    return {engine: line for line in out.splitlines() if marker in line for engine in ENGINES if f"::{engine}:" in line}


@pytest.mark.parametrize("run", GATED)
def test_a_slowdown_is_caught_or_undecided_never_passed(run: int, baseline: Path, tmp_path: Path) -> None:
    for factor in (1.05, 1.10):
        judged = gate(slowed(RUNS / f"run{run}.json", tmp_path / f"slowed{factor}.json", factor), baseline, tmp_path)
        out = judged["stdout"]
        regressed, undecided = named(out, "REGRESSION"), named(out, ": baseline ")
        assert judged["returncode"] == 1, out
        # None passed quietly that was slowed beyond its allowance: 3% on the dense graphs' wall time,
        # 5% on the launch-bound (MLP) graphs' kernel time, which +5% only reaches.
        beyond = ENGINES if factor > 1.05 else tuple(engine for engine in ENGINES if not engine.startswith("test_mlp"))
        assert set(beyond) <= set(regressed) | set(undecided), out
        for engine in DENSE_CAUGHT_BY_KERNELS:
            assert engine in regressed, out
        if factor == 1.05:
            # +5% is under these graphs' wall noise margin (6-11%: their wall blocks drift within each run):
            # their kernels, steady in these runs, decide it.
            for engine in DENSE_CAUGHT_BY_KERNELS:
                assert "so its GPU kernel time decided" in regressed[engine], regressed[engine]
        else:
            # +10%: beyond the launch-bound graphs' 5% kernel allowance too, judged on their kernels.
            for engine in ("test_mlp[eager-fp16-cudagraph]", "test_mlp[inductor-fp16-cudagraph]"):
                assert "launch-bound, so judged on GPU kernel time" in regressed[engine], out


SETTLED = Path(__file__).parent / "reference" / "h100-aa-2026-12-07-settled"
DENSE = ("test_convmixer[eager-fp16-cudagraph]", "test_convmixer[inductor-fp16-cudagraph]",
         "test_tiny_decoder[eager-fp16-cudagraph]", "test_tiny_decoder[inductor-fp16-cudagraph]")


@pytest.fixture(scope="module")
def settled_baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return blessed(SETTLED, tmp_path_factory.mktemp("h100-settled") / "baseline.json")


def test_settled_runs_raise_no_regression_and_their_dense_graphs_catch_five_percent(settled_baseline: Path,
                                                                                   tmp_path: Path) -> None:
    caught = 0
    for run in GATED:
        judged = gate(SETTLED / f"run{run}.json", settled_baseline, tmp_path)
        assert judged["returncode"] == 0 and "REGRESSION" not in judged["stdout"], judged["stdout"]
        out = gate(slowed(SETTLED / f"run{run}.json", tmp_path / "slowed.json", 1.05), settled_baseline,
                   tmp_path)["stdout"]
        regressed, undecided = named(out, "REGRESSION"), named(out, ": baseline ")
        # Never passed quietly: each dense graph slowed 5% (over its 3% allowance) is caught or undecided.
        assert set(DENSE) <= set(regressed) | set(undecided), out
        caught += sum(engine in regressed for engine in DENSE)
        # The tiny decoder's graphs, whose wall blocks fell 2-4% within each run before the warm-up lasted
        # long enough (and whose kernels ran at two levels between processes), are decided by their wall time.
        for engine in ("test_tiny_decoder[eager-fp16-cudagraph]", "test_tiny_decoder[inductor-fp16-cudagraph]"):
            assert engine in regressed and "so its GPU kernel time decided" not in regressed[engine], out
    # 19 of 20 in this call (docs/benchmarks.md): the one left undecided is ConvMixer's Inductor graph in the
    # process whose kernels ran 2.2% faster than the blessed runs', leaving the +5% at +2.7% on them.
    assert caught >= 19, f"{caught} of {len(GATED) * len(DENSE)} dense-graph slowdowns caught"
