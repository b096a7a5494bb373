"""`infercheck ARGS` for the tests: in this process, through the CLI's ``main(argv)``, or as a real process.

A real process pays the interpreter's and torch's start-up on every call (2-4 s on a loaded 2-core
machine), so most tests run the command in this process: ``in_process`` gives what
``subprocess.run(..., capture_output=True, text=True)`` gives (exit status, stdout, stderr), and makes
the run look like a fresh process to the code under test:

- stdout and stderr are captured at the file-descriptor level, so what C++ libraries (ONNX Runtime)
  print is in them, and so is what torch's own log handlers print (they hold the stream that was
  sys.stderr when torch was imported: pointed at the captured one for the run);
- warnings are printed on stderr under Python's default filters, and a log record no handler takes
  goes to stderr as Python's last-resort handler writes it (pytest's capture handlers set aside);
- an exception that escapes ``main`` is a traceback on stderr and exit 1, ``SystemExit`` its code,
  exactly as ``sys.exit(main())`` ends a process;
- the user's modules that earlier runs imported (written under the temporary directory) are not
  visible to the run, and what it imports, puts on ``sys.path``, sets in the environment or the
  working directory is undone after it (torch, ONNX Runtime and the other libraries conftest.py keeps
  stay imported: importing them twice in one process crashes).

``in_subprocess`` is the real thing, for the few tests per command that check the process itself: the
console script and ``python -m pytest_infercheck``, a library blocked before anything imports it,
Ctrl-C's exit status, an open that would block.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import tempfile
import traceback
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, TextIO, Union

from _pytest import pytester as _pytester
from _pytest.capture import FDCapture, MultiCapture

REPO = Path(__file__).resolve().parents[1]
CONSOLE_SCRIPT = Path(sys.executable).parent / "infercheck"
SUMMARY_ENV = "GITHUB_STEP_SUMMARY"  # a CI job's summary file is for the suite's own report, not these runs'

Arg = Union[str, "os.PathLike[str]"]
Run = subprocess.CompletedProcess  # returncode, stdout, stderr (text), as subprocess.run gives them


def in_subprocess(*args: Arg, cwd: Optional[Path] = None, entry: str = "module", prelude: str = "",
                  pythonpath: Sequence[Path] = (), timeout: float = 300) -> "Run[str]":
    """``infercheck ARGS`` as a new process: ``entry`` "console-script" (the installed ``infercheck``,
    ``python -m`` where it is not installed), "module" (``python -m pytest_infercheck``), or, given a
    ``prelude`` (Python run first), ``python -c PRELUDE + sys.exit(main())``. REPO and ``pythonpath``
    are importable."""
    if prelude:
        command = [sys.executable, "-c", f"{prelude}import sys\nfrom pytest_infercheck.cli import main\nsys.exit(main())"]
    elif entry == "console-script" and CONSOLE_SCRIPT.exists():
        command = [str(CONSOLE_SCRIPT)]
    else:
        command = [sys.executable, "-m", "pytest_infercheck"]
    return subprocess.run([*command, *map(str, args)], cwd=cwd, env=subprocess_env(pythonpath), capture_output=True,
                          text=True, timeout=timeout)


def subprocess_env(pythonpath: Sequence[Path] = ()) -> dict[str, str]:
    """This process's environment for a child: REPO and ``pythonpath`` importable, no CI job summary."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, (REPO, *pythonpath)), os.environ.get("PYTHONPATH", "")])}
    env.pop(SUMMARY_ENV, None)
    return env


def in_process(*args: Arg, cwd: Optional[Path] = None, pythonpath: Sequence[Path] = (),
               main: Optional[Callable[[list[str]], object]] = None) -> "Run[str]":
    """``infercheck ARGS`` run by ``pytest_infercheck.cli.main`` (or ``main``) in this process, from ``cwd``
    (default: where the suite runs), ``pythonpath`` importable: its exit status, stdout and stderr, as
    ``in_subprocess`` gives them."""
    if main is None:
        from pytest_infercheck.cli import main

    argv = [str(arg) for arg in args]
    with ExitStack() as stack:
        stack.enter_context(_process_state(argv, cwd, pythonpath))
        streams = stack.enter_context(_captured())
        stack.enter_context(_logging_to_captured_streams(streams.before))
        stack.enter_context(_warnings_as_python_prints_them())
        returncode = _exit_status(main, argv)
        out, err = streams.capture.readouterr()
    return subprocess.CompletedProcess(["infercheck", *argv], returncode, out, err)


def _exit_status(main: Callable[[list[str]], object], argv: list[str]) -> int:
    """What ``sys.exit(main(argv))`` would end the process with; a traceback on stderr for an exception."""
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    except BaseException:  # noqa: BLE001 - an uncaught exception: Python prints it and exits 1
        traceback.print_exc(file=sys.stderr)
        return 1
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)  # sys.exit("text"): the text on stderr, exit 1
    return 1


class _Streams:
    def __init__(self) -> None:
        self.before: tuple[TextIO, TextIO] = (sys.stdout, sys.stderr)
        self.capture: MultiCapture[str] = MultiCapture(in_=None, out=FDCapture(1), err=FDCapture(2))


@contextmanager
def _captured() -> Iterator[_Streams]:
    streams = _Streams()
    streams.capture.start_capturing()
    try:
        yield streams
    finally:
        streams.capture.stop_capturing()


@contextmanager
def _logging_to_captured_streams(before: tuple[TextIO, TextIO]) -> Iterator[None]:
    """Handlers holding this process's stdout or stderr (torch's, made at its import) write to the
    captured streams; the root logger has no handler, as in a new process (pytest's own set aside)."""
    targets = {id(before[0]): sys.stdout, id(sys.__stdout__): sys.stdout,
               id(before[1]): sys.stderr, id(sys.__stderr__): sys.stderr}
    moved: list[tuple[logging.StreamHandler, object]] = []  # type: ignore[type-arg]
    loggers = [logging.getLogger(), *(value for value in list(logging.Logger.manager.loggerDict.values())
                                      if isinstance(value, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in targets:
                moved.append((handler, handler.stream))
                handler.stream = targets[id(handler.stream)]
    root = logging.getLogger()
    root_handlers, root.handlers = root.handlers, []
    try:
        yield
    finally:
        root.handlers = root_handlers
        for handler, stream in moved:
            handler.stream = stream


@contextmanager
def _warnings_as_python_prints_them() -> Iterator[None]:
    """Python's default warning filters, each warning printed on (the captured) stderr."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")

        def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = show
        yield


@contextmanager
def fresh_imports(pythonpath: Sequence[Path] = ()) -> Iterator[None]:
    """Imports as a new process makes them, ``pythonpath`` first on sys.path: the users' modules earlier
    runs or tests imported are set aside; sys.path and sys.modules are put back afterwards (less the
    libraries conftest.py keeps imported: importing torch & co. twice in one process crashes)."""
    modules = _pytester.SysModulesSnapshot()  # conftest.py's, keeping those libraries
    paths = _pytester.SysPathsSnapshot()
    for name in _users_modules():
        del sys.modules[name]  # an earlier run's mypkg, timm stand-in, factories...: another folder's
    importlib.invalidate_caches()  # files written since a folder was last looked at are found
    sys.path[:0] = [str(folder) for folder in pythonpath]
    try:
        yield
    finally:
        paths.restore()
        modules.restore()


@contextmanager
def _process_state(argv: list[str], cwd: Optional[Path], pythonpath: Sequence[Path]) -> Iterator[None]:
    """sys.argv, the working directory, the environment (no CI job summary) and the imports as a new
    process would have them, all put back afterwards."""
    environment, directory, sys_argv = dict(os.environ), os.getcwd(), sys.argv
    os.environ.pop(SUMMARY_ENV, None)
    sys.argv = ["infercheck", *argv]
    try:
        with fresh_imports(pythonpath):
            if cwd is not None:
                os.chdir(cwd)
            yield
    finally:
        sys.argv = sys_argv
        os.chdir(directory)
        for name in set(os.environ) - set(environment):
            del os.environ[name]
        os.environ.update(environment)


def _users_modules() -> list[str]:
    """Modules imported from files under the temporary directory, where the tests write users' projects,
    never this checkout's own (CI clones it under the temporary directory: dropping pytest_infercheck's
    modules there gave every later run a second ModelInputs class, which the first copy's checks refused)."""
    temp = tuple({os.path.join(folder, "") for folder in (tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir()))})
    checkout = tuple({os.path.join(str(folder), "") for folder in (REPO, Path(__file__).absolute().parents[1])})
    found = []
    for name, module in list(sys.modules.items()):
        try:
            places = [getattr(module, "__file__", None), *(getattr(module, "__path__", None) or [])]
        except Exception:  # noqa: BLE001 - a lazy module whose attribute lookup raises: not a user's file
            continue
        if any(isinstance(place, str) and place.startswith(temp) and not place.startswith(checkout) for place in places):
            found.append(name)
    return found
