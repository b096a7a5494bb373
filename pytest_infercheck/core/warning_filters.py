"""The run's warning filters while the plugin exports, builds and times an engine: shown, not raised.

A model repo with ``filterwarnings = error`` (or ``pytest -W error``) turns every warning issued during
a test into an exception.  The check's later stages run the toolchain (torch.export, the ONNX
exporters, Inductor, ONNX Runtime's quantizer), which issue warnings about their own internals: torch
2.13 issues a DeprecationWarning while importing Inductor (``torch.jit.script_method`` in
torch/utils/mkldnn.py), and torch.export a FutureWarning from its pytree code.  Raised, they fail every
inductor and aoti engine at build for nothing the model did, and the list changes with every torch
release.  So inside those stages an ``error`` filter acts as ``default``: the warning is recorded
and shown in pytest's warnings summary, not raised.  Every other filter (``ignore`` above all) keeps
its place and its effect.

The model's own forward, run for the eager reference before these stages, keeps the run's filters:
a warning it issues under ``-W error`` still stops the check (the failure says it was a warning,
core/failure_location.warning_raised_as_error), and so does the plugin's own InfercheckWarning,
issued after the check.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any, Iterator


@contextlib.contextmanager
def toolchain_warnings_shown() -> Iterator[None]:
    """Within the block, the run's filters with each ``error`` action made ``default``; restored after."""
    with warnings.catch_warnings():
        # (action, message, category, module, lineno).  Python 3.14's context-aware warnings keep the active list
        # per context, read by warnings._get_filters (resetwarnings and filterwarnings act on it); before 3.14 it is
        # warnings.filters.  3.14 itself has not run here (the project's machines have 3.11 and 3.12).
        active = getattr(warnings, "_get_filters", None)
        current: list[Any] = list(active() if callable(active) else warnings.filters)
        if any(entry[0] == "error" for entry in current):
            try:
                demoted = [("default" if action == "error" else action, _pattern(message), category,
                            _pattern(module), lineno) for action, message, category, module, lineno in current]
            except (TypeError, ValueError):  # an entry of a shape this code does not know: the run's filters stay
                demoted = []
            if demoted:
                warnings.resetwarnings()
                # Re-added last to first: filterwarnings inserts at the front, so the order is the run's.
                for action, message, category, module, lineno in reversed(demoted):
                    warnings.filterwarnings(action, message=message, category=category, module=module, lineno=lineno)
        yield


def _pattern(field: Any) -> str:
    """A filter's message or module as filterwarnings takes it: a compiled pattern's source (filterwarnings'
    own entries); a plain string, which the warnings machinery compares whole (the interpreter's default
    entries, e.g. ``__main__``), as a pattern of that whole string; None (any) as ""."""
    if field is None:
        return ""
    if isinstance(field, str):
        return re.escape(field) + r"\Z"
    pattern = field.pattern
    if not isinstance(pattern, str):
        raise TypeError(f"a warnings filter field {field!r}")
    return pattern
