"""pytest-infercheck: check a PyTorch model's inference engines from pytest.

Importing this package imports neither torch nor any inference engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["CheckResult", "AccuracyResult", "LatencyStats", "Tolerance", "EngineSpec", "Budget", "__version__"]

if TYPE_CHECKING:
    from .options import Budget
    from .results import AccuracyResult, CheckResult, LatencyStats, Tolerance
    from .spec import EngineSpec

_LAZY = {"CheckResult": "results", "AccuracyResult": "results", "LatencyStats": "results", "Tolerance": "results",
         "EngineSpec": "spec", "Budget": "options"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
