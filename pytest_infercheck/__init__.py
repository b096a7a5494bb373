"""pytest-infercheck: check a PyTorch model's inference engines from pytest.

Importing this package imports neither torch nor any inference engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["CheckResult", "AccuracyResult", "LatencyStats", "Tolerance", "EngineSpec", "Budget", "__version__"]

if TYPE_CHECKING:
    from .config.options import Budget
    from .measure.results import AccuracyResult, CheckResult, LatencyStats, Tolerance
    from .core.spec import EngineSpec

_LAZY = {"CheckResult": "measure.results", "AccuracyResult": "measure.results", "LatencyStats": "measure.results",
         "Tolerance": "measure.results",
         "EngineSpec": "core.spec", "Budget": "config.options"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
