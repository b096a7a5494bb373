"""core/warning_filters.py: inside the toolchain's stages an `error` filter shows a warning instead of raising it;
every other filter keeps its effect, and the run's filters are back afterwards."""

from __future__ import annotations

import re
import warnings

import pytest

from pytest_infercheck.core.warning_filters import toolchain_warnings_shown


def test_an_error_filter_shows_the_warning_inside_and_raises_it_again_after() -> None:
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("error")
        before = list(warnings.filters)
        with toolchain_warnings_shown():
            warnings.warn("from inside torch", DeprecationWarning)
        assert [str(w.message) for w in shown] == ["from inside torch"]
        assert warnings.filters == before
        with pytest.raises(DeprecationWarning):
            warnings.warn("from the model's own forward", DeprecationWarning)


def test_ignore_and_order_keep_their_effect() -> None:
    """pytest's order: `error` first, then the user's ignores win over it for what they name."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="noisy", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=re.escape(__name__))
        with toolchain_warnings_shown():
            warnings.warn("noisy library line", UserWarning)
            warnings.warn("a future change", FutureWarning)  # issued in this module
            warnings.warn("kept", UserWarning)
        assert [str(w.message) for w in shown] == ["kept"]


def test_a_plain_string_entry_still_matches_its_whole_module_only() -> None:
    """The interpreter's own default entries hold plain strings (e.g. ``__main__``), compared whole."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.resetwarnings()
        warnings.filters.insert(0, ("error", None, UserWarning, None, 0))
        # Consulted first: a plain string that begins this module's name, so no match (as a pattern, it would).
        warnings.filters.insert(0, ("ignore", None, UserWarning, __name__[:-3], 0))
        warnings._filters_mutated()  # type: ignore[attr-defined]
        with toolchain_warnings_shown():
            warnings.warn("shown", UserWarning)
        assert [str(w.message) for w in shown] == ["shown"]


def test_without_an_error_filter_nothing_changes() -> None:
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("ignore")
        before = list(warnings.filters)
        with toolchain_warnings_shown():
            assert warnings.filters == before
            warnings.warn("ignored", UserWarning)
        assert shown == []
