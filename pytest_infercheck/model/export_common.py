"""What both ONNX exporters share (export.py's dynamo path and export_torchscript.py's fallback):
the export's error type, failures shortened to the user's line, and the exporters kept quiet.

Below both exporter modules, so the fallback never imports the module that falls back to it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import traceback
import warnings
from typing import Iterator

from ..core.failure_location import decisive_line, user_frame, warning_raised_as_error

TORCHSCRIPT = "torch.onnx.export (TorchScript-based)"


class ExportError(Exception):
    """The exporter could not translate the model: ``reason`` is a few lines, ``detail`` the traceback."""

    def __init__(self, exporter: str, reason: str, detail: str) -> None:
        super().__init__(f"{exporter} failed: {reason}")
        # exporter: the first one tried; reason: its failure (and the fallback's, when one was tried)
        self.exporter = exporter
        self.reason = reason
        self.detail = detail


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_BOILERPLATE = ("For more information", "For extended logs", "Set TORCH_LOGS", "(Refer to", "- ", "## ", "Next steps",
                "consider using", "Caused by:", "If you suspect", "For C++", "<class '", "For more debugging help",
                # the user's frame, which short_reason puts first
                "The following call raised", 'File "')
_NEXT_STEPS = re.compile(r"\s*(?:This is step \d/\d of exporting the model to ONNX\.)?\s*Next steps:\s*$")


# Advice torch gives about calls the user never made (the plugin called torch.export, not them).
_TORCH_ADVICE = re.compile(r"\s*The error above occurred when calling torch\.export\.export\..*?draft_export\(\)`?\.?",
                           re.S)


def _lines(exc: BaseException) -> list[str]:
    text = _TORCH_ADVICE.sub("", ANSI_ESCAPE.sub("", str(exc)))
    return [_NEXT_STEPS.sub("", line.rstrip()) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith(_BOILERPLATE)]


def short_reason(exc: BaseException, max_lines: int = 4, max_chars: int = 900) -> str:
    """The first line of the exception and the first lines of its root cause: what a user needs, not 200 lines.

    Prefixed with the user's frame (``at file:line in fn: source``) when one is found, and followed by
    torch's decisive line (a shape conflict, a data-dependent guard) when the first lines miss it.
    """
    text = _chain_summary(exc, max_lines)
    decisive = decisive_line(exc)
    if decisive and decisive not in text:
        text += f"\n  {decisive}"
    frame = user_frame(exc)
    if frame is not None:
        text = f"{frame.describe()}\n{text}"
    text = text if len(text) <= max_chars else text[: max_chars - 3] + "..."
    raised_warning = warning_raised_as_error(exc)
    return f"{text}\n  {raised_warning}" if raised_warning else text


def _chain_summary(exc: BaseException, max_lines: int) -> str:
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__)
    top_lines = _lines(chain[0])
    parts = [f"{type(chain[0]).__name__}: {top_lines[0]}" if top_lines else type(chain[0]).__name__]
    if len(chain) > 1:
        root_lines = _lines(chain[-1])
        parts.append(f"{type(chain[-1]).__name__}: " + "\n".join(root_lines[:max_lines]))
    else:
        parts[0] = "\n".join([parts[0], *top_lines[1:max_lines]])
    return "\n  caused by ".join(dict.fromkeys(parts))


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporters print progress and warnings to stdout/logging; keep them out of test output."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    stack = contextlib.ExitStack()
    stack.enter_context(quiet_torch_logs())
    # torch's structured-trace records reach the root handlers (pytest's log capture among them)
    # without passing the level checks that logging.disable acts on: filter them at the handlers.
    handlers = list(logging.root.handlers)
    for handler in handlers:
        handler.addFilter(_drop_torch_chatter)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        stack.close()
        logging.disable(previous)
        for handler in handlers:
            handler.removeFilter(_drop_torch_chatter)


def _drop_torch_chatter(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("torch") and record.levelno < logging.ERROR)


TRACE_LOGGERS = ("torch.__trace",)  # torch's structured-trace records (Inductor, dynamo, export): empty DEBUG lines


@contextlib.contextmanager
def quiet_torch_logs() -> Iterator[None]:
    """Keep torch's structured-trace records out of pytest's captured logs while the plugin compiles.

    ``torch.__trace`` does not propagate, but pytest (9.x) attaches its capture handlers to such
    loggers too, and torch emits trace records whenever that logger has any handler: one empty
    "DEBUG torch.__trace" line per record (hundreds per Inductor compile).  Here the logger keeps
    only torch's own handlers (TORCH_TRACE's) and no filter is lost: both are restored on exit.
    Wrap anything that runs dynamo, Inductor or torch.export in this (the whole check, ideally).
    """
    loggers = [logging.getLogger(name) for name in TRACE_LOGGERS]
    saved = [list(logger.handlers) for logger in loggers]
    for logger in loggers:
        for handler in list(logger.handlers):
            if not type(handler).__module__.startswith("torch"):
                logger.removeHandler(handler)
    try:
        yield
    finally:
        for logger, handlers in zip(loggers, saved):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            for handler in handlers:
                logger.addHandler(handler)
