"""What the fixture knows about an item before the user's call: everything a check needs from pytest."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Optional

from ..measure.results import CheckResult
from ..config.settings import Layer
from ..core.spec import EngineSpec


@dataclass
class CheckContext:
    """The item's spec, the settings layers below the call, the run's state, where to record."""

    nodeid: str
    spec: EngineSpec
    layers: list[Layer]
    cache: Any  # the run's EngineCache
    run: Any  # session.RunState: backends, reference memos, failed exports
    record: Callable[[CheckResult], None]
    timing_lock: Callable[[str], ContextManager[Any]]  # one timed loop at a time per device (session.py)
    build_lock: Callable[[], ContextManager[Any]] = nullcontext  # builds overlap each other, not a CPU timing
    progress: Any = None  # a progress.ProgressReporter: long builds print "building ..." lines through it
    # Called with (engine, prepared inputs) after timing, before the engine closes: lets a benchmark
    # time the very engine the check timed with another tool.
    engine_probe: Optional[Callable[[Any, Any], None]] = None
    baseline: Optional[Callable[[], Any]] = None  # -> the BaselineStore (read lazily), or None without one
