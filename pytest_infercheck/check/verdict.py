"""The verdict stage: the typed failures a check collected become its outcome and its message."""

from __future__ import annotations

from ..results import CheckResult
from ..spec import Outcome


def decide(result: CheckResult) -> None:
    """Failed at the first failure's stage, with a message naming the item; unchanged otherwise."""
    if result.failures:
        result.outcome = Outcome.FAILED
        result.stage = result.failures[0].stage
        result.message = failure_message(result)


def failure_message(result: CheckResult) -> str:
    """What fell short, by how much: the first line names the item, one line (or block) per failure."""
    head = f"{result.spec_id} on {result.device or '?'}" + (f" ({result.model_name})" if result.model_name else "")
    lines = [f"infercheck {head} failed:"] + [f"  - {failure}" for failure in result.failures]
    lines += [f"  note: {warning}" for warning in result.warnings]
    return "\n".join(lines)
