"""What the stages of one check found so far: the flow's local accumulator, built once into a record.

Every record of measure/results.py is frozen.  The stages return their facts; check/flow.py adds
each one here as it comes (``facts.add(latency=...)``, notes to ``facts.warnings``), and the
fixture builds the ``CheckResult`` once with :meth:`Facts.result`, whether the stages ran to the
end or one of them stopped the check (what was gathered before the stop is kept, with ``stopped``
or ``skipped``).  The verdict's fields are not facts: judge/verdict.apply alone makes them, so
``add`` refuses them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..measure.results import CheckResult

# What judge/verdict.apply makes from the facts; no stage records them.
VERDICT_FIELDS = frozenset({"outcome", "stage", "message", "failures", "undecided", "not_raised"})
FACT_FIELDS = frozenset(f.name for f in dataclasses.fields(CheckResult)) - VERDICT_FIELDS - {"warnings", "notes"}


class Facts:
    """The facts of one check gathered so far (mutable, local to the check; never kept after it)."""

    def __init__(self, start: CheckResult) -> None:
        self._start = start  # what was known before the stages ran: the item, its spec and settings
        self._found: dict[str, Any] = {}
        self.warnings: list[str] = list(start.warnings)  # notes, appended by the stages as they find them
        self.notes: list[str] = list(start.notes)  # information on the settings, never issued as a warning

    def add(self, **found: Any) -> None:
        """Record facts by their ``CheckResult`` field names (a later value of a field replaces the earlier)."""
        wrong = sorted(set(found) - FACT_FIELDS)
        if wrong:
            why = "the verdict's, judge/verdict.apply makes them" if set(wrong) <= VERDICT_FIELDS else "no such fact"
            raise TypeError(f"Facts.add: {', '.join(wrong)}: {why}")
        self._found.update(found)

    def result(self) -> CheckResult:
        """The record of what was found so far, not judged yet: a new frozen ``CheckResult`` on each call
        (the fixture's, once the stages end; a stage's that reads an earlier one's fact, before)."""
        return dataclasses.replace(self._start, **self._found, warnings=tuple(self.warnings), notes=tuple(self.notes))
