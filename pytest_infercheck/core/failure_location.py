"""Where a trace or export failure happened in the user's code, and torch's decisive line about it; and
where a failing check was made (``where_called``: the test's line, and a helper's).

torch's exporters fail deep inside torch; what the user needs is the line of their forward that
caused it (``if y.sum() > 0:``) and the one sentence of torch's message that says what went wrong
(the shape conflict, the data-dependent guard), not the boilerplate around them.
"""

from __future__ import annotations

import linecache
import os
import re
import traceback
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# torch's own pointer at the user's line: "The following call raised this error:\n  File "...", line 7, in forward\n    code"
_FILE_LINE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n[ \t]+(\S[^\n]*)')
# The sentences that decide, most specific first.
_DECISIVE = (
    re.compile(r"[^\n]*inferred a static shape[^\n]*"),
    # torch.export's range conflict for a dynamic dimension whose example size is 0 or 1; the line above it
    # ("Found the following conflicts ...:") says nothing without it.
    re.compile(r"[^\n]*0/1 specialized due to hint of[^\n]*"),
    re.compile(r"[^\n]*Constraints violated[^\n]*(?:\n[^\n]*){0,2}"),
    re.compile(r"[^\n]*Could not (?:guard on|extract specialized integer from) data-dependent expression[^\n]*"),
    re.compile(r"[^\n]*(?:data-dependent|data dependent)[^\n]*"),
    re.compile(r"[^\n]*Cannot view a tensor[^\n]*"),
    re.compile(r"[^\n]*(?:Unsupported|not supported)[^\n]*"),
)
_CLASS_PREFIX = re.compile(r"^<class '[^']+'>: ")
MAX_DECISIVE_CHARS = 400  # a symbolic expression can run to hundreds of characters


@dataclass(frozen=True)
class UserFrame:
    filename: str
    lineno: int
    function: str
    source: str

    def describe(self) -> str:
        code = f": {self.source.strip()}" if self.source.strip() else ""
        return f"at {shown_path(self.filename)}:{self.lineno} in {self.function}{code}"


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what it was raised from or while handling (``__cause__``, else ``__context__``)."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def warning_raised_as_error(exc: BaseException) -> Optional[str]:
    """A note when ``exc`` or its cause is a warning that the run's warning filters raised as an error.

    The plugin's export, build and timing stages show such warnings rather than raise them
    (core/warning_filters.py); the model's own forward, run for the reference, keeps the run's filters,
    and a warning it issues under ``-W error`` stops the check: the failure says it was a warning.
    """
    for error in exception_chain(exc):
        if not isinstance(error, Warning):
            continue
        tb = error.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        # The innermost Python frame called warnings.warn (a C function).  Not necessarily the module a
        # filter matches: warn(stacklevel=2) names the caller's, so no filter entry is suggested.
        module = str(tb.tb_frame.f_globals.get("__name__", "")) if tb is not None else ""
        issued = f", issued in {module}" if module else ""
        return (f"(a {type(error).__name__}{issued}, raised as an error by this run's warning filters: -W error "
                "or filterwarnings = error)")
    return None


def _text(exc: BaseException) -> str:
    return _ANSI.sub("", str(exc))


# Packages whose frames are never the user's code, even when a model lives in site-packages (transformers).
_TOOLING = ("torch", "onnx", "onnxscript", "onnxruntime", "numpy", "_pytest", "pluggy", "pytest_infercheck",
            "functorch", "sympy")


# The standard library's folder (os.py's; in a virtual environment sysconfig's "platstdlib" is the venv's lib/).
_STDLIB = (os.path.join(os.path.dirname(os.path.abspath(os.__file__)), ""),)


def is_library(filename: str, strict: bool) -> bool:
    """The tooling always; site-packages too when ``strict`` (a model in transformers is still a model)."""
    if filename.startswith("<"):
        return True
    parts = os.path.abspath(filename).split(os.sep)
    if _generated_by_inductor(parts):
        return True
    for index, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages"):
            return strict or parts[index + 1] in _TOOLING
    import torch  # a source checkout of torch lives outside site-packages

    # This package's root (this module sits in its core/ folder), torch's, and Python's standard library
    # (copyreg's __newobj__ where a deep copy raised is nobody's model code).
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = (package + os.sep, os.path.dirname(os.path.abspath(torch.__file__)) + os.sep, *_STDLIB)
    return os.path.abspath(filename).startswith(roots)


def _generated_by_inductor(parts: list[str]) -> bool:
    """A file of the code Inductor generated, in its default cache directory (``torchinductor_<user>``) or in
    ``TORCHINDUCTOR_CACHE_DIR`` (where the plugin points it): never the user's code."""
    if any(part.startswith("torchinductor_") for part in parts[:-1]):
        return True
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    return bool(chosen) and os.sep.join(parts).startswith(os.path.join(os.path.abspath(str(chosen)), ""))


def user_frame(exc: BaseException) -> Optional[UserFrame]:
    """The frame in the user's code: the one torch's message names, else the innermost traceback frame
    outside torch, site-packages and this plugin (else outside torch and this plugin)."""
    for error in exception_chain(exc):
        for filename, lineno, function, source in _FILE_LINE.findall(_text(error)):
            if not is_library(filename, strict=False):
                return UserFrame(filename, int(lineno), function, source)
    return innermost_user_frame([frame for error in exception_chain(exc)
                                 for frame in traceback.extract_tb(error.__traceback__)])


def innermost_user_frame(frames: Sequence[traceback.FrameSummary]) -> Optional[UserFrame]:
    """The innermost of ``frames`` (outermost first) outside torch, site-packages and this plugin (else outside
    torch and this plugin): a traceback's, or a stack's where a warning was issued."""
    for strict in (True, False):
        inside = [f for f in frames if not is_library(f.filename, strict)]
        if inside:
            frame = inside[-1]
            return UserFrame(frame.filename, frame.lineno or 0, frame.name, frame.line or "")
    return None


def decisive_line(exc: BaseException) -> Optional[str]:
    """The sentence of torch's message that says what went wrong, trimmed; None when none stands out."""
    texts = [_text(error) for error in exception_chain(exc)]
    for pattern in _DECISIVE:
        for text in texts:
            match = pattern.search(text)
            if match:
                line = " ".join(part.strip(" -") for part in match.group(0).splitlines() if part.strip())
                line = _CLASS_PREFIX.sub("", line)  # torch's "<class '...'>: " summary form of the same line
                return line if len(line) <= MAX_DECISIVE_CHARS else line[: MAX_DECISIVE_CHARS - 3] + "..."
    return None


# -- where a check was made: the failure pytest raises without its traceback names the line itself --------


def where_called(frame: Any, nodeid: str) -> str:
    """``\n  at test_models.py:16 in test_resnet: infercheck(model, x)``: the user's line that made the check
    (``frame``, the infercheck() call's caller), which a failure raised without pytest's traceback
    (pytrace=False, to keep the plugin's frames out) must name itself.  Called through a helper (a conftest
    function, one in the test file), the test's own line first and the helper's after it.  "" for the test
    module ``infercheck check`` writes (the CLI names its target), or where the frames cannot be read: a
    message is never lost to its location."""
    try:
        if frame.f_globals.get("__infercheck_generated__"):
            return ""
        test = frame_of_test(frame, nodeid)
        if test is None or test is frame:
            return f"\n  {_user_frame_of(frame).describe()}"
        return f"\n  {_user_frame_of(test).describe()}\n  (infercheck called {_user_frame_of(frame).describe()})"
    except Exception:  # noqa: BLE001 - a location is a courtesy; the failure itself must go out
        return ""


def frame_of_test(frame: Any, nodeid: str) -> Any:
    """The test function's own frame among ``frame`` and its callers: the one running the function the
    node id names (``test_x`` of ``dir/test_m.py::TestC::test_x[eager-fp32]``), in the test's file where the
    node id says which (a file outside the rootdir has none); else the outermost frame in that file; else None."""
    parts = nodeid.split("::")
    test_file = parts[0].replace("/", os.sep) if len(parts) > 1 else ""
    function = parts[-1].split("[", 1)[0]
    in_file = None
    outer = frame
    while outer is not None:
        here = not test_file or _is_file(outer.f_code.co_filename, test_file)
        if here and outer.f_code.co_name == function:
            return outer
        if here and test_file:
            in_file = outer
        outer = outer.f_back
    return in_file


def _is_file(filename: str, test_file: str) -> bool:
    path = os.path.abspath(filename)
    return path == os.path.abspath(test_file) or path.endswith(os.sep + test_file)


def shown_path(path: str) -> str:
    """``path`` relative to the working directory where it is below it, else as it is."""
    try:
        shown = os.path.relpath(path)
    except (ValueError, OSError):  # another drive (Windows), or the working directory is gone
        return path
    return path if shown.startswith(".." + os.sep) else shown


def innermost_user_frame_in(text: str) -> Optional[UserFrame]:
    """The innermost ``File "...", line N, in f`` frame of a printed stack (an FX node's ``stack_trace``)
    outside torch and this plugin, its file as ``shown_path`` gives it; None when there is none."""
    frames = [frame for frame in _FILE_LINE.findall(text) if not is_library(frame[0], strict=False)]
    if not frames:
        return None
    filename, lineno, function, source = frames[-1]
    return UserFrame(shown_path(filename), int(lineno), function, source)


def _user_frame_of(frame: Any) -> UserFrame:
    """A live frame as a UserFrame: its file relative to the working directory where it can be, and its
    whole statement."""
    path = frame.f_code.co_filename
    return UserFrame(shown_path(path), frame.f_lineno, frame.f_code.co_name, _statement(frame, path))


MAX_STATEMENT = 200  # characters of a call split over several lines, joined into one


def _statement(frame: Any, path: str) -> str:
    """The source of the call the frame is in, all its lines joined (a call split over several lines read
    ``result = infercheck(``), shortened to MAX_STATEMENT characters."""
    first = last = frame.f_lineno
    try:  # the instruction's span (Python 3.11+): the whole call expression
        start, end = list(frame.f_code.co_positions())[frame.f_lasti // 2][:2]
        if start and end and start <= frame.f_lineno <= end and end - start < 50:
            first, last = start, end
    except (AttributeError, IndexError, TypeError, ValueError):
        pass
    text = " ".join(linecache.getline(path, line).strip() for line in range(first, last + 1)).strip()
    text = text.replace("( ", "(").replace(" )", ")").replace("[ ", "[").replace(" ]", "]")
    return text if len(text) <= MAX_STATEMENT else text[: MAX_STATEMENT - 1] + "…"
