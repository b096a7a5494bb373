"""The CPU timer's sampling rule and the statistics, with a clock we control through sleeps."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pytest_infercheck.measure.timing import CpuTimer, TimingPlan, summarize


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


# -- adaptive sampling: the plan's stopping rule ------------------------------------------------------

from pytest_infercheck.config.options import parse_budget  # noqa: E402
from pytest_infercheck.measure.timing import StoppingRule, plan_from_settings  # noqa: E402


def busy_wait(ms: float):
    def run() -> None:
        until = time.perf_counter_ns() + int(ms * 1e6)
        while time.perf_counter_ns() < until:
            pass
    return run


def test_rule_met_by_a_tight_distribution_stops_at_the_floor() -> None:
    plan = TimingPlan(warmup=0, min_iters=50, max_iters=5000, min_time=0.0, rule=StoppingRule(ci_width=0.01))
    constant = [2.0] * 50
    stop = plan.stop(50, 0.1, constant)
    assert stop is not None and stop.reason == "precision"
    assert plan.stop(49, 0.1, [2.0] * 49) is None  # the floor first


def test_rule_unmet_by_a_wide_distribution_runs_to_a_cap() -> None:
    wide = list(np.random.default_rng(0).lognormal(0.0, 1.0, size=200))
    rule = StoppingRule(ci_width=0.01)
    assert rule.unmet(wide) is not None and "p50 known to +-" in rule.unmet(wide)
    plan = TimingPlan(warmup=0, min_iters=50, max_iters=5000, min_time=0.0, max_time=2.0, rule=rule)
    assert plan.stop(200, 1.0, wide) is None
    assert plan.stop(200, 2.0, wide).reason == "max_time"
    assert plan.stop(5000, 1.0, wide).reason == "max_iters"
    # max_time caps a slow engine before min_iters (50 here), once it has a few samples
    assert plan.stop(10, 5.0, wide[:10]).reason == "max_time"
    assert plan.stop(4, 5.0, wide[:4]) is None


def test_an_undecided_budget_keeps_sampling() -> None:
    samples = list(np.random.default_rng(1).normal(10.0, 0.01, size=400))  # p50 known to well within 1%
    undecided = StoppingRule(ci_width=0.01, budget=parse_budget(f"p50:{np.percentile(samples, 50):.6f}ms"))
    assert undecided.unmet(samples).startswith("budget p50:")
    assert StoppingRule(ci_width=0.01, budget=parse_budget("p50:20ms")).unmet(samples) is None
    assert StoppingRule(ci_width=0.01, budget=parse_budget("p50:5ms")).unmet(samples) is None  # decided: fail


def test_rule_watches_the_budget_statistic_too() -> None:
    rule = StoppingRule(budget=parse_budget("p99:30ms"))
    assert rule.watched() == ("p50", "p99")
    assert StoppingRule(budget=parse_budget("p50:30ms")).watched() == ("p50",)


def test_cpu_timer_stops_once_the_figures_are_known() -> None:
    plan = TimingPlan(warmup=2, min_iters=20, max_iters=100_000, min_time=0.0, max_time=60.0,
                      rule=StoppingRule(ci_width=0.05, budget=parse_budget("p90:1s")))
    timer = CpuTimer()
    stats = timer.measure(busy_wait(0.2), plan, batch_size=1)
    assert timer.last_stop.reason == "precision" and timer.last_stop.count == stats.count
    assert plan.rule.unmet(stats.samples_ms) is None  # what it claims holds on what it returns
    assert stats.count < 100_000


def test_cpu_timer_at_a_cap_says_what_was_missing() -> None:
    plan = TimingPlan(warmup=0, min_iters=5, max_iters=30, min_time=0.0, rule=StoppingRule(ci_width=1e-9))
    timer = CpuTimer()
    stats = timer.measure(busy_wait(0.05), plan, batch_size=1)
    assert stats.count == 30 and timer.last_stop.reason == "max_iters"
    assert "p50 known to +-" in timer.last_stop.unmet


def test_plan_from_settings() -> None:
    class Settings:
        warmup, min_iters, max_iters, min_time, max_time = 3, 40, 900, 0.1, 2.0
        ci_width, confidence, budget = 0.02, 0.99, parse_budget("p99:5ms")

    plan = plan_from_settings(Settings())
    assert (plan.warmup, plan.min_iters, plan.max_iters, plan.min_time, plan.max_time) == (3, 40, 900, 0.1, 2.0)
    assert plan.rule == StoppingRule(ci_width=0.02, confidence=0.99, budget=parse_budget("p99:5ms"))
    Settings.ci_width = 0.0
    assert plan_from_settings(Settings()).rule is None  # fixed floors, as before


class _FakeDevice:
    """Stands in for the CUDA events of CudaEventTimer's warm-up (no GPU here): each round "takes"
    ``iterations x ms`` on a clock this test owns, and reports the next round median of ``medians``."""

    def __init__(self, medians: "list[float]") -> None:
        self.medians = medians
        self.now = 0.0
        self.rounds: list[tuple[float, int]] = []  # (clock at the round's end, iterations)

    def timed_round(self, run: object, stream: object, iterations: int) -> list[float]:
        ms = self.medians[min(len(self.rounds), len(self.medians) - 1)]
        self.now += iterations * ms / 1000.0
        self.rounds.append((self.now, iterations))
        return [ms] * iterations


def settle_with(monkeypatch: pytest.MonkeyPatch, device: _FakeDevice, plan: TimingPlan, settle_s: float) -> None:
    from pytest_infercheck.measure import timing

    monkeypatch.setattr(timing.time, "perf_counter", lambda: device.now)
    timer = timing.CudaEventTimer(settle_s=settle_s)
    monkeypatch.setattr(timer, "_timed_round", device.timed_round)
    timer._settle(lambda: None, plan, None)


def test_cuda_warm_up_runs_for_its_settle_time_then_until_two_rounds_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    # Steady 0.1 ms calls: before, the rule was met by the second round of 10 (2 ms in); now the engine runs
    # 0.5 s first, in rounds of about 10 ms, and stops at the first round after it.
    device = _FakeDevice([0.1])
    settle_with(monkeypatch, device, TimingPlan(warmup=10), settle_s=0.5)
    assert 0.5 <= device.now < 0.5 + 0.02
    assert [n for _, n in device.rounds[:2]] == [10, 100]  # then ~SETTLE_ROUND_S per round


def test_cuda_warm_up_rule_counts_its_cap_after_the_settle_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rounds that never agree within 2% (alternating 0.10 / 0.12 ms): the rule's cap (4 x warmup rounds)
    # counts from the end of the settle time, where 50 rounds of 10 ms had used it up before it.
    device = _FakeDevice([0.10, 0.12] * 200)
    settle_with(monkeypatch, device, TimingPlan(warmup=10), settle_s=0.5)
    assert sum(end >= 0.5 for end, _ in device.rounds) == 40
    assert device.now > 0.5 + 0.3


def test_cuda_warm_up_with_warmup_0_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    device = _FakeDevice([0.1])
    settle_with(monkeypatch, device, TimingPlan(warmup=0), settle_s=0.5)
    assert device.rounds == [] and device.now == 0.0
