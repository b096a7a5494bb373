"""What one call of an engine runs on the host: its chain of callables and the Python functions the
call enters, counted once after the timing (``sys.setprofile``, one call, this thread).

The same engine must take the same path whether it was built in this run or loaded from the engine
cache (docs/backends.md, "Precompiled warm starts"): a loaded function wrapped differently, a guard
that refuses every call and sends it to a fallback, or another kernel launcher changes the count and
the digest, where a timing can only say that something got slower.  Functions are named by file
name, not path, so a digest does not depend on where the cache or the environment lives.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from typing import Any, Callable, Optional

from .results import CallPath


def engine_kind(engine: Any) -> str:
    """The engine's chain of callables: a CUDA-graph wrapper's ``inner`` engine, an engine's ``fn``."""
    names: list[str] = []
    current = engine
    while current is not None and len(names) < 4:
        names.append(type(current).__name__)
        inner = getattr(current, "inner", None)
        current = inner if inner is not None else getattr(current, "fn", None)
    return " > ".join(names)


def measure(engine: Any, call: Callable[[], Any]) -> Optional[CallPath]:
    """Run ``call`` (one call of ``engine``) once, counting the Python functions it enters; None, without
    calling it, while another profiler holds the hook (cProfile, yappi, a debugger's): the hook is one per
    thread, and a profiler installed from C (cProfile's) could not be put back from Python."""
    counts = python_calls(call)
    if counts is None:
        return None
    rows = sorted([file, function, count] for (file, function), count in counts.items())
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]
    return CallPath(kind=engine_kind(engine), python_calls=sum(counts.values()), digest=digest)


def python_calls(call: Callable[[], Any]) -> Optional["Counter[tuple[str, str]]"]:
    """The Python functions one ``call`` enters, as (file name, function) -> count; None, without calling
    it, while another profiler holds this thread's hook."""
    if sys.getprofile() is not None:
        return None
    counts: Counter[tuple[str, str]] = Counter()

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            counts[(os.path.basename(code.co_filename), code.co_name)] += 1

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return counts
