"""What native libraries print while a stage runs: captured at file descriptor 2, kept as notes.

ONNX Runtime's C++ logger (the default one: Polygraphy's constant folding and linting make sessions
with default options), TensorRT's and TensorRT-RTX's write straight to fd 2, past Python's
``sys.stderr``: an audit of an .onnx file printed ONNX Runtime's coloured optimizer warnings above
its report.  A stage runs with fds 1 and 2 pointed at a temporary file; afterwards ONNX Runtime's
warnings and errors come back as one note per distinct message (with how many times), other lines
as one note with their count and the first, so the report says what the libraries said and the
terminal shows the report.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ORT_LINE = re.compile(r"\[(?P<severity>[VIWEF]):onnxruntime:[^\]]*\]\s*(?P<message>.*)")
_QUOTED = re.compile(r"'[^']*'")
SEVERITY = {"V": "verbose", "I": "info", "W": "warning", "E": "error", "F": "fatal"}
MAX_NOTES = 4


@contextmanager
def captured_native_logs(stage: str, notes: list[str]) -> Iterator[None]:
    """Run the body with fds 1 and 2 captured; append what it printed, summarised, to ``notes``.

    Both: ONNX Runtime logs to 2, while the TorchScript-based exporter prints its IR graph to 1
    when it fails ("Torch IR graph at exception: ...")."""
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no standard descriptors (an embedded interpreter): nothing to capture
        yield
        return
    with tempfile.TemporaryFile() as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            notes.extend(summary(stage, sink.read().decode("utf-8", "replace")))


def summary(stage: str, text: str) -> list[str]:
    """ONNX Runtime's lines by (severity, message with quoted names elided), then other lines, as notes."""
    logged: Counter[tuple[str, str]] = Counter()
    other: list[str] = []
    for line in _ANSI.sub("", text).splitlines():
        match = _ORT_LINE.search(line)
        if match:
            logged[(SEVERITY[match["severity"]], _QUOTED.sub("'…'", match["message"].strip()))] += 1
        elif line.strip():
            other.append(line.strip())
    notes = [f"{stage}: ONNX Runtime logged ({severity}{f', {count} times' if count > 1 else ''}): {message[:300]}"
             for (severity, message), count in logged.most_common(MAX_NOTES)]
    if len(logged) > MAX_NOTES:
        notes.append(f"{stage}: ONNX Runtime logged {len(logged) - MAX_NOTES} other kind(s) of message")
    if other:
        notes.append(f"{stage}: {len(other)} other line(s) printed by native code, captured (the first: {other[0][:200]})")
    return notes
