"""cli_runner.in_process, which most CLI tests use instead of a real process: it must show what a process
would print and end with (or those tests assert less than they did as subprocesses), and leave nothing
behind for the next test."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import pytest

from cli_runner import in_process, in_subprocess


def test_what_a_process_prints_on_stderr_is_in_stderr() -> None:
    import torch  # noqa: F401 - its log handlers hold the stderr of their import, not the captured one

    def main(argv: list[str]) -> int:
        print("report", argv)
        os.write(2, b"from C++\n")  # ONNX Runtime's own logging writes to the descriptor
        logging.getLogger("torch").warning("from torch's handler")
        logging.getLogger("a.module.nobody.configured").warning("from the last resort")
        warnings.warn("careful", UserWarning)
        warnings.warn("old", DeprecationWarning)  # not shown by Python's default filters
        return 3

    run = in_process("gate", "x", main=main)
    assert run.returncode == 3 and run.stdout == "report ['gate', 'x']\n"
    for line in ("from C++", "from torch's handler", "from the last resort", "UserWarning: careful"):
        assert line in run.stderr, run.stderr
    assert "old" not in run.stderr


def _raises(argv: list[str]) -> int:
    raise ValueError("boom")


def _exits_with_text(argv: list[str]) -> int:
    sys.exit("config missing")


def _exits_none(argv: list[str]) -> int:
    sys.exit()


@pytest.mark.parametrize("main, code, stderr", [
    (_raises, 1, "ValueError: boom"), (_exits_with_text, 1, "config missing\n"), (_exits_none, 0, ""),
    (lambda argv: None, 0, ""), (lambda argv: 2, 2, ""),
])
def test_it_ends_as_sys_exit_of_main_ends_a_process(main, code: int, stderr: str) -> None:  # type: ignore[no-untyped-def]
    run = in_process(main=main)
    assert run.returncode == code and stderr in run.stderr
    assert ("Traceback (most recent call last)" in run.stderr) == (main is _raises)


def test_the_real_process_and_this_one_agree() -> None:
    args = ("audit", "fixtures.models:small_cnn", "--input-shape", "2,x")
    real, here = in_subprocess(*args), in_process(*args)
    assert (here.returncode, here.stdout, here.stderr) == (real.returncode, real.stdout, real.stderr)
    assert here.returncode == 2 and here.stderr.count("\n") == 1


def test_a_run_leaves_nothing_behind_and_sees_no_earlier_runs_modules(tmp_path: Path) -> None:
    before = (os.getcwd(), list(sys.path), dict(os.environ), sys.argv)
    seen = []

    def main(argv: list[str]) -> int:
        os.chdir(argv[0])
        sys.path.insert(0, argv[0])
        os.environ["SET_BY_THE_RUN"] = "1"
        os.environ.pop("HOME", None)
        import users_module  # noqa: F401 - written below, once per folder

        seen.append((sys.argv[1:], sys.modules["users_module"].WHERE))
        return 0

    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "users_module.py").write_text(f"WHERE = {name!r}\n")
        assert in_process(tmp_path / name, main=main).returncode == 0
        assert (os.getcwd(), list(sys.path), dict(os.environ), sys.argv) == before
        assert "users_module" not in sys.modules
    assert seen == [([str(tmp_path / "one")], "one"), ([str(tmp_path / "two")], "two")]
    # One the test itself imported from another folder is not the run's, and is back afterwards.
    sys.path.insert(0, str(tmp_path / "one"))
    try:
        import users_module

        assert in_process(tmp_path / "two", main=main).returncode == 0
        assert seen[-1] == ([str(tmp_path / "two")], "two") and sys.modules["users_module"] is users_module
    finally:
        sys.path.remove(str(tmp_path / "one"))
        del sys.modules["users_module"]
