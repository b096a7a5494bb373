"""The CPU timer's sampling rule and the statistics, with a clock we control through sleeps."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pytest_infercheck.timing import CpuTimer, TimingPlan, summarize


def test_statistics_match_numpy() -> None:
    samples = list(np.random.default_rng(0).gamma(2.0, 1.0, size=1000))
    stats = summarize(samples, timer="t", batch_size=8, warmup=3)
    assert stats.count == 1000
    assert stats.p50_ms == pytest.approx(np.percentile(samples, 50))
    assert stats.p90_ms == pytest.approx(np.percentile(samples, 90))
    assert stats.p99_ms == pytest.approx(np.percentile(samples, 99))
    assert stats.mean_ms == pytest.approx(np.mean(samples))
    assert stats.std_ms == pytest.approx(np.std(samples, ddof=1))
    assert stats.min_ms == pytest.approx(min(samples))
    assert stats.throughput == pytest.approx(8 * 1000 / np.mean(samples))
    assert stats.statistic("p99") == stats.p99_ms


def test_sampling_stops_at_min_iters_and_min_time() -> None:
    calls = []
    plan = TimingPlan(warmup=3, min_iters=20, max_iters=10_000, min_time=0.05)
    stats = CpuTimer().measure(lambda: calls.append(time.sleep(0.001)), plan, batch_size=1)
    # at least 20 samples and ~50 ms measured; with 1 ms sleeps that is roughly 50, never thousands
    assert 20 <= stats.count < 200
    assert sum(stats.samples_ms) >= 50
    assert len(calls) == stats.count + 3  # warm-up calls are not samples
    assert stats.p50_ms >= 1.0


def test_max_iters_caps_sampling() -> None:
    stats = CpuTimer().measure(lambda: None, TimingPlan(warmup=0, min_iters=5, max_iters=7, min_time=10.0), batch_size=1)
    assert stats.count == 7


def test_samples_are_per_iteration() -> None:
    durations = iter([0.002, 0.010] * 20)
    stats = CpuTimer().measure(lambda: time.sleep(next(durations)), TimingPlan(warmup=0, min_iters=20, max_iters=20, min_time=0),
                               batch_size=1)
    assert stats.min_ms >= 2.0 and stats.min_ms < 5.0
    assert stats.p99_ms >= 10.0  # the slow half shows in the tail, not averaged away
