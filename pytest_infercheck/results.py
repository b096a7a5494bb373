"""The result objects that flow out of a check, and their JSON form.

These are plain dataclasses with no numpy or torch inside, so a result can travel from an xdist
worker to the controller, into the JSON report and the baseline file, and back, unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional


@dataclass(frozen=True)
class Tolerance:
    """When an engine's output counts as matching the reference.

    An element mismatches when ``|engine - ref| > atol + rtol * |ref|`` (numpy.allclose's rule);
    the output passes when at most ``max_mismatch`` of its elements mismatch, its relative error
    ``||engine - ref|| / ||ref||`` is at most ``max_rel_l2``, its cosine similarity to the reference
    is at least ``min_cosine``, and no element is NaN or Inf where the reference is finite.
    """

    atol: float
    rtol: float
    max_mismatch: float = 0.0
    min_cosine: float = 0.0
    min_top1: Optional[float] = None
    max_rel_l2: float = float("inf")

    def describe(self) -> str:
        text = (f"atol={self.atol:g} rtol={self.rtol:g} max_mismatch={self.max_mismatch:.2%} "
                f"max_rel_l2={self.max_rel_l2:g} min_cosine={self.min_cosine:g}")
        return text + (f" min_top1={self.min_top1:.2%}" if self.min_top1 is not None else "")


@dataclass
class OutputAccuracy:
    """How far one output of the engine is from the eager reference."""

    name: str
    shape: list[int]
    max_abs: float
    max_rel: float
    mean_abs: float
    rel_l2: float
    cosine: float
    mismatched: int
    total: int
    worst_index: list[int]
    worst_value: float
    worst_reference: float
    nonfinite: int
    tolerance: Tolerance
    top1_agreement: Optional[float] = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def mismatch_ratio(self) -> float:
        return self.mismatched / self.total if self.total else 0.0


@dataclass
class AccuracyResult:
    """Every output's figures; ``structure_error`` when outputs could not even be paired."""

    outputs: list[OutputAccuracy] = field(default_factory=list)
    structure_error: Optional[str] = None

    @property
    def passed(self) -> bool:
        return self.structure_error is None and all(output.passed for output in self.outputs)

    def __bool__(self) -> bool:  # Polygraphy's convention: the truth value is "passed"
        return self.passed

    def worst(self) -> Optional[OutputAccuracy]:
        """The output furthest from its tolerance (failed first, then the largest relative error)."""
        if not self.outputs:
            return None
        return max(self.outputs, key=lambda o: (not o.passed, _finite(o.rel_l2)))

    def __getitem__(self, name: str) -> OutputAccuracy:
        for output in self.outputs:
            if output.name == name:
                return output
        raise KeyError(f"no output named {name!r}; outputs: {', '.join(o.name for o in self.outputs)}")


@dataclass
class LatencyStats:
    """Per-iteration latency samples (milliseconds) and their statistics."""

    samples_ms: list[float]
    timer: str
    batch_size: int = 1
    warmup_iterations: int = 0
    peak_memory_bytes: Optional[int] = None
    includes_transfers: bool = False
    count: int = 0
    min_ms: float = math.nan
    mean_ms: float = math.nan
    std_ms: float = math.nan
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan

    @property
    def throughput(self) -> float:
        """Items per second at the mean latency."""
        return self.batch_size * 1000.0 / self.mean_ms if self.mean_ms > 0 else math.nan

    def statistic(self, name: str) -> float:
        return {"p50": self.p50_ms, "p90": self.p90_ms, "p99": self.p99_ms, "mean": self.mean_ms}[name]

    def describe(self) -> str:
        return (f"p50 {self.p50_ms:.3f} ms, p90 {self.p90_ms:.3f} ms, p99 {self.p99_ms:.3f} ms "
                f"over {self.count} samples ({self.timer})")


@dataclass
class CheckResult:
    """Everything one test item found: what ran, how it went, every figure."""

    nodeid: str
    spec_id: str
    backend: str
    precision: str
    cuda_graphs: bool
    device: str = "cpu"
    model_name: str = ""
    model_hash: str = ""
    outcome: str = "passed"  # passed | failed | skipped
    stage: Optional[str] = None  # where it stopped: export, build, run, accuracy, latency, ...
    message: str = ""
    failures: list[str] = field(default_factory=list)
    accuracy: Optional[AccuracyResult] = None
    latency: Optional[LatencyStats] = None
    reference_latency: Optional[LatencyStats] = None
    budget: Optional[str] = None
    build_seconds: Optional[float] = None
    cache: dict[str, str] = field(default_factory=dict)  # artifact -> hit | miss | off
    traceback: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # setting -> {value, source}
    extra: dict[str, Any] = field(default_factory=dict)  # room for later stages (baseline, audit)

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def speedup(self) -> Optional[float]:
        """Eager FP32 reference p50 over this engine's p50."""
        if not self.latency or not self.reference_latency or not self.latency.p50_ms > 0:
            return None
        return self.reference_latency.p50_ms / self.latency.p50_ms

    @property
    def cache_summary(self) -> str:
        """``hit`` when every cached artifact came from disk, ``miss``/``off``/``partial`` otherwise."""
        states = set(self.cache.values())
        if not states:
            return "-"
        return states.pop() if len(states) == 1 else "partial"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.latency:
            data["latency"]["throughput"] = _json_float(self.latency.throughput)
        data["speedup"] = self.speedup
        return _sanitize(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckResult":
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("accuracy") is not None:
            values["accuracy"] = _accuracy_from_dict(values["accuracy"])
        for key in ("latency", "reference_latency"):
            if values.get(key) is not None:
                values[key] = _latency_from_dict(values[key])
        return cls(**values)


def _accuracy_from_dict(data: dict[str, Any]) -> AccuracyResult:
    outputs = []
    for raw in data.get("outputs", []):
        raw = dict(raw)
        raw["tolerance"] = Tolerance(**{k: _unjson_float(v) for k, v in raw["tolerance"].items()})
        known = {f.name for f in fields(OutputAccuracy)}
        outputs.append(OutputAccuracy(**{k: _unjson_float(v) for k, v in raw.items() if k in known}))
    return AccuracyResult(outputs=outputs, structure_error=data.get("structure_error"))


def _latency_from_dict(data: dict[str, Any]) -> LatencyStats:
    known = {f.name for f in fields(LatencyStats)}
    return LatencyStats(**{k: _unjson_float(v) for k, v in data.items() if k in known})


def round_figure(value: Any) -> Any:
    """Six significant digits for report properties; non-floats (and NaN/Inf) pass through."""
    return float(f"{value:.6g}") if isinstance(value, float) and math.isfinite(value) else value


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _json_float(value: float) -> Any:
    """JSON has no NaN or Inf: write them as strings that read back."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _unjson_float(value: Any) -> Any:
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def _sanitize(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sanitize(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(item) for item in value]
    return _json_float(value)
