"""Per-run state kept on the pytest config: settings layers, the engine cache, collected results.

Results travel on the test reports (``report.infercheck``), which pytest-xdist serialises from
worker to controller, so the controller sees every item exactly once whether or not xdist runs,
and the summary, reports and baseline are written only there.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from .files import file_lock
from .results import CheckResult, round_figure
from .settings import Layer, resolve

RESULTS_ON_ITEM = pytest.StashKey[list]()


class InfercheckSession:
    def __init__(self, config: pytest.Config, layers: list[Layer]) -> None:
        self.config = config
        self.layers = layers
        self.run_settings = resolve(layers)
        self.results: list[CheckResult] = []
        self._cache: Any = None
        self._baseline: Any = None  # BaselineStore, read on first use in each process
        self.baseline_update: Any = None  # UpdateSummary once the controller has written the file

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def cache_dir(self) -> Optional[Path]:
        given = self.run_settings.cache_dir
        if given:
            return Path(given).expanduser().resolve()
        if getattr(self.config, "cache", None) is not None:
            return Path(self.config.cache.mkdir("infercheck"))
        return Path(tempfile.gettempdir()) / "pytest-infercheck-cache"

    @property
    def cache(self) -> Any:
        """The engine cache, made on first use (importing it costs nothing, but keep it lazy anyway)."""
        if self._cache is None:
            from .cache import EngineCache

            self._cache = EngineCache(self.cache_dir, enabled=not self.run_settings.no_cache)
            if self._cache.enabled and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
                # Inductor's compiled kernels live beside our artifacts unless the user chose a place.
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(self.cache_dir / "inductor")
        return self._cache

    @property
    def baseline(self) -> Any:
        """The baseline store of ``--infer-baseline``, read and validated once per process; None without it."""
        path = self.run_settings.baseline
        if path and self._baseline is None:
            from .baseline import BaselineStore

            self._baseline = BaselineStore.load(Path(path).expanduser())
        return self._baseline

    def finish_gate(self) -> None:
        """On the controller: write the baseline update and the Markdown and HTML reports from every result."""
        settings = self.run_settings
        if settings.baseline and settings.baseline_update:
            from .baseline import update_baseline

            self.baseline_update = update_baseline(Path(settings.baseline).expanduser(), self.results)
        if settings.markdown or os.environ.get("GITHUB_STEP_SUMMARY"):
            from .report.markdown import write_markdown

            write_markdown(self.results, settings.markdown, os.environ.get("GITHUB_STEP_SUMMARY"),
                           baseline=settings.baseline)
        if settings.html:
            from .report.html import write_html

            write_html(Path(settings.html), self.results)

    # -- recording ------------------------------------------------------------------------------

    def record(self, item: pytest.Item, result: CheckResult) -> None:
        """Keep the result on the item (it goes out on the report) and its figures as JUnit properties."""
        item.stash.setdefault(RESULTS_ON_ITEM, []).append(result)
        item.user_properties.extend(junit_properties(result))

    def attach(self, item: pytest.Item, report: pytest.TestReport) -> None:
        results = item.stash.get(RESULTS_ON_ITEM, [])
        if results and report.when == "call":
            report.infercheck = [result.to_dict() for result in results]  # type: ignore[attr-defined]

    def collect(self, report: pytest.TestReport) -> None:
        for data in getattr(report, "infercheck", None) or []:
            result = CheckResult.from_dict(data)
            # The item's final outcome decides (an assertion after the check may still fail it).
            if report.failed and result.outcome == "passed":
                result.outcome = "failed"
                result.stage = result.stage or "test"
                result.message = result.message or _first_line(report.longreprtext)
            if hasattr(report, "wasxfail"):  # an expected failure reads as one in the summary
                result.outcome = "xfailed" if report.skipped else "xpassed"
            self.results.append(result)

    # -- GPU timing lock ------------------------------------------------------------------------

    @contextmanager
    def gpu_lock(self) -> Iterator[None]:
        """One timing at a time per GPU across xdist workers (and across concurrent pytest runs).

        An flock on a file named after the visible device: other workers keep exporting and
        building in parallel, and only the timed loops take turns.
        """
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_") or "none"
        with file_lock(Path(tempfile.gettempdir()) / f"pytest-infercheck-gpu-{visible}.lock"):
            yield


def junit_properties(result: CheckResult) -> list[tuple[str, Any]]:
    """Every scalar figure, prefixed by the engine id, for JUnit XML's <properties>."""
    prefix = f"infercheck.{result.spec_id}"
    props: list[tuple[str, Any]] = [(f"{prefix}.outcome", result.outcome), (f"{prefix}.device", result.device)]
    if result.stage:
        props.append((f"{prefix}.stage", result.stage))
    if result.accuracy is not None:
        for output in result.accuracy.outputs:
            for metric in ("max_abs", "max_rel", "mean_abs", "rel_l2", "cosine", "mismatch_ratio", "top1_agreement"):
                value = getattr(output, metric)
                if value is not None:
                    props.append((f"{prefix}.{output.name}.{metric}", round_figure(value)))
    if result.latency:
        lat = result.latency
        for metric in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "count", "throughput"):
            props.append((f"{prefix}.latency.{metric}", round_figure(getattr(lat, metric))))
        if lat.peak_memory_bytes is not None:
            props.append((f"{prefix}.latency.peak_memory_bytes", lat.peak_memory_bytes))
    if result.speedup is not None:
        props.append((f"{prefix}.speedup_vs_eager", round_figure(result.speedup)))
    if result.build_seconds is not None:
        props.append((f"{prefix}.build_seconds", round_figure(result.build_seconds)))
    if result.budget:
        props.append((f"{prefix}.budget", result.budget))
    props.append((f"{prefix}.cache", result.cache_summary))
    from .gate import baseline_properties

    props.extend(baseline_properties(result))
    return props


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
