"""How a stage of the check stops it: a failure (the item fails) or a skip (it cannot run here)."""

from __future__ import annotations

from typing import Optional

from ..core.spec import Stage


class StageFailure(Exception):
    """A stage could not complete: ``stage`` names it, the message says why in a few lines."""

    def __init__(self, stage: Stage, message: str, detail: Optional[str] = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.detail = detail  # the full traceback, for the JSON report


class StageSkip(Exception):
    """The engine cannot run here, or has nothing new to check: the item skips with this reason."""

    def __init__(self, stage: Stage, message: str) -> None:
        super().__init__(message)
        self.stage = stage


# Why an engine exported from a batch of 1 so often keeps that batch: torch specialises sizes 0 and 1.
BATCH_OF_ONE = ("a dimension of size 0 or 1 is special to torch's tracers (0/1 specialisation): give an example "
                "batch of 2 or more")
# torch.export (AOTInductor, the audit) keeps such a batch static where torch.onnx traces it size-obliviously, so
# the same test's ONNX engines may export.  The plugin does not export size-obliviously for AOTInductor: tried on
# torch 2.13 (2026-12-07), a ViT's package returned one row for a batch of two, and a tiny ViT's, compiled under
# the same setting, gave wrong values at batch 2 (the exported program itself was right).
EXPORT_BATCH_OF_ONE = ("torch.export fixes a dynamic batch traced from an example batch of 1 where an operation "
                       "broadcasts or branches on it (torch.onnx's exporter traces it size-obliviously, so the "
                       "ONNX engines of the same test may export)")


def short(exc: BaseException) -> str:
    """An exception in a few lines (the top and its root cause), for a failure message."""
    from ..model.export import short_reason

    return short_reason(exc)


def indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())
