"""How a comparison reads the machine probe on the CPU (baseline/comparison.machine_noise); pure logic.

The figures are a 2-core CPU A/A beside a bursty neighbour (docs/gate.md, "The machine itself")."""

from __future__ import annotations

import math

from pytest_infercheck.baseline.comparison import blessed_probe, machine_noise, steadier
from pytest_infercheck.baseline.store import Entry
from pytest_infercheck.measure.timing import summarize


def entry(probes: list[float], probe: float, spread: float) -> Entry:
    return Entry(nodeid="t.py::test[onnxruntime-fp16]", spec_id="onnxruntime-fp16", machine={"device": "cpu"},
                 accuracy={}, latency={"samples_ms": [0.0072] * 30, "probe_ms": probe, "probe_spread": spread},
                 history=[{"p50_ms": 0.0072, "probe_ms": p} for p in probes])


def test_one_blessing_under_load_does_not_set_the_blessed_probe() -> None:
    """The last blessing read 0.454 ms with the others at 0.354: the median of the history is the machine's."""
    assert blessed_probe(entry([0.3532, 0.3567, 0.4542], 0.4542, 0.13)) == 0.3567
    assert blessed_probe(entry([], 0.36, 0.01)) == 0.36


def test_a_probe_spread_by_the_load_it_measures_does_not_hide_its_own_move() -> None:
    assert steadier(0.076, 0.004) == 0.004 and steadier(0.02, None) == 0.02 and steadier(0.0, 0.0) == 0.0


def test_on_the_cpu_both_probes_and_the_amplification_are_read_on_cuda_neither() -> None:
    stats = summarize([0.0113] * 30, timer="cpu-perf_counter", batch_size=2, warmup=2)
    from dataclasses import replace

    stats = replace(stats, probe_ms=0.462, probe_spread=0.068, probe_after_ms=0.4657)
    blessed = entry([0.3532, 0.3567, 0.4542], 0.4542, 0.13)
    cpu = machine_noise(stats, blessed, on_cpu=True)
    assert cpu.probe_change == math.log(0.4657 / 0.3567) and cpu.probe_spread == 0.068 and cpu.amplification == 3.0
    gpu = machine_noise(stats, blessed, on_cpu=False)  # as the H100 A/As ran it
    assert gpu.probe_change == math.log(0.462 / 0.4542) and gpu.probe_spread == 0.13 and gpu.amplification == 1.0
