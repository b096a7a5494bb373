"""The largest batch within budget: the search on a known latency curve, then on real engines (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.models import dynamic_mlp
from pytest_infercheck.core.jsonsafe import json_safe
from pytest_infercheck.measure.max_batch import engine_batch_runner, find_max_batch, inputs_at_batch
from pytest_infercheck.config.options import parse_budget
from pytest_infercheck.measure.timing import CpuTimer, TimingPlan


def curve(ms_per_item: float, fixed_ms: float, calls: list[int]):
    """Samples of a known latency curve: fixed + per-item cost, +-1% deterministic spread."""
    spread = np.linspace(0.99, 1.01, 400)

    def run_at_batch(batch: int) -> list[float]:
        calls.append(batch)
        return list((fixed_ms + ms_per_item * batch) * spread)

    return run_at_batch


def hand_search(run_at_batch, budget, limit: int) -> int:
    from pytest_infercheck.measure.budget import decide_budget

    # "holds" as the search reads it (BatchTrial.holds): decided within, or undecided with the estimate within
    verdicts = {b: decide_budget(run_at_batch(b), budget) for b in range(1, limit + 1)}
    return max((b for b, v in verdicts.items() if v.passed and v.estimate_within), default=0)


@pytest.mark.parametrize("limit,budget", [(256, "p90:30ms"), (256, "p99:7.3ms"), (40, "p50:1s"), (256, "mean:2.01ms")])
def test_search_matches_a_hand_search(limit: int, budget: str) -> None:
    calls: list[int] = []
    result = find_max_batch(curve(0.25, 1.5, calls), parse_budget(budget), limit)
    expected = hand_search(curve(0.25, 1.5, []), parse_budget(budget), limit)
    assert result.batch == expected
    assert len(calls) == len(set(calls)) and len(calls) <= 2 * limit.bit_length() + 1  # each batch timed once
    assert calls[: 3] == [1, 2, 4][: len(calls[:3])]
    assert result.throughput == pytest.approx(expected * 1000 / (1.5 + 0.25 * expected), rel=1e-3)
    assert str(expected) in result.describe()


def test_no_batch_meets_an_impossible_budget() -> None:
    result = find_max_batch(curve(0.25, 1.5, []), parse_budget("p90:1ms"), 64)
    assert result.batch is None and [t.batch for t in result.trials] == [1]
    assert result.describe().startswith("no batch meets p90:1ms")


def test_a_batch_that_raises_does_not_hold() -> None:
    def run_at_batch(batch: int) -> list[float]:
        if batch > 12:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        return [1.0] * 100

    result = find_max_batch(run_at_batch, parse_budget("p90:30ms"), 64)
    assert result.batch == 12
    failed = [t for t in result.trials if t.error]
    assert failed and failed[0].error == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert json_safe(result)["trials"][-1]["batch"] in (13, 16)


def test_limit_is_respected_and_bad_limit_refused() -> None:
    calls: list[int] = []
    assert find_max_batch(curve(0.001, 0.1, calls), parse_budget("p90:1s"), 20).batch == 20
    assert calls == [1, 2, 4, 8, 16, 20]
    with pytest.raises(ValueError, match="limit 0"):
        find_max_batch(curve(0.1, 0.1, []), parse_budget("p90:1s"), 0)


def test_inputs_at_batch() -> None:
    x = torch.arange(6.0).reshape(3, 2)
    assert inputs_at_batch([x], 5)[0].tolist() == [[0, 1], [2, 3], [4, 5], [0, 1], [2, 3]]
    assert inputs_at_batch([x], 2)[0].shape == (2, 2)


def real_engine(backend_name: str, tmp_path):
    from pytest_infercheck.backends.artifacts import ModelArtifacts
    from pytest_infercheck.backends import create_backend
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.model.under_test import ModelUnderTest
    from pytest_infercheck.core.spec import EngineSpec

    # The MLP: the search does not depend on the model, and Inductor builds it (and its batch-1 fallback) in
    # a third of the CNN's time.
    torch.manual_seed(0)
    model = ModelUnderTest.create(dynamic_mlp(), torch.randn(2, 64), dynamic_batch=True)
    engine = create_backend(backend_name).build(BuildRequest(spec=EngineSpec(backend_name, "fp32"), device="cpu",
                                                          artifacts=ModelArtifacts(model, EngineCache(tmp_path))))
    return engine, model.inputs


@pytest.mark.parametrize("backend", ["eager", "onnxruntime", "inductor"])
def test_real_engine_search(backend: str, tmp_path) -> None:
    engine, inputs = real_engine(backend, tmp_path)
    if backend == "inductor":  # precompiled, so batch 1 (specialised, refused by its guards) takes the fallback
        from torch._dynamo.utils import counters

        from pytest_infercheck.backends.precompile import PrecompiledForward

        assert isinstance(engine.fn, PrecompiledForward)
        graphs_before = counters["stats"]["unique_graphs"]
    seen: list[int] = []
    original_run = engine.run

    def run(prepared):  # records the batch the engine really ran at
        out = original_run(prepared)
        seen.append(int(engine.to_numpy(out)[0].shape[0]))
        return out

    engine.run = run
    plan = TimingPlan(warmup=1, min_iters=20, max_iters=20, min_time=0.0)
    runner = engine_batch_runner(lambda batch: engine, inputs, CpuTimer(), plan, close_each=False)
    generous = find_max_batch(runner, parse_budget("p90:10s"), 8)
    assert generous.batch == 8 and generous.throughput > 0
    assert [t.batch for t in generous.trials] == [1, 2, 4, 8] and set(seen) == {1, 2, 4, 8}
    impossible = find_max_batch(runner, parse_budget("p90:1us"), 8)
    assert impossible.batch is None and impossible.trials[0].verdict.decision.value == "fail"
    if backend == "inductor":  # batch 1 ran through the fallback torch.compile, which traced it
        assert counters["stats"]["unique_graphs"] > graphs_before
    engine.close()


def test_a_search_that_cannot_run_is_said_and_shown(run_plugin) -> None:
    """Newcomer trial 4: without a budget the search did nothing and said nothing; on an engine exported for the
    example's batch it said "no batch meets" the budget that batch 2 met; a search's answer was in no report a
    person reads (the JSON only)."""
    result = run_plugin("""
import pytest, torch
from fixtures.models import dynamic_mlp

@pytest.mark.infercheck(engines=["onnxruntime-fp32"], max_batch_search=8)
def test_no_budget(infercheck):
    assert infercheck(dynamic_mlp(), torch.randn(2, 64)).max_batch is None

@pytest.mark.infercheck(engines=["onnxruntime-fp32"], budget="p90:1000ms", max_batch_search=8)
def test_static(infercheck):
    infercheck(dynamic_mlp(), torch.randn(2, 64))

@pytest.mark.infercheck(engines=["onnxruntime-fp32"], budget="p90:1000ms", max_batch_search=4, dynamic_batch=True)
def test_dynamic(infercheck):
    assert infercheck(dynamic_mlp(), torch.randn(2, 64)).max_batch.batch == 4
""", "--infer-device=cpu")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "notes (information, not warnings):",
        "*max_batch_search=8 searched nothing: it finds the largest batch within a latency budget, and none is set*",
        "*max_batch_search stopped at batch 1, which the engine could not run (*): the engine was exported for the "
        "example's batch; give dynamic_batch=True to search other batches",
        "largest batch within the budget (--infer-max-batch-search):",
        "  test_model.py::test_dynamic[[]onnxruntime-fp32[]]: largest batch within p90:1000ms: 4 (the search limit)*",
        "  test_model.py::test_static[[]onnxruntime-fp32[]]: searched nothing within p90:1000ms: batch 1: did not run*",
    ])
