"""files.py on real files: modes, symlinks, encodings, unwritable places, and failures as one line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_infercheck.core.files import colliding_outputs, output_problem, write_atomic, write_or_reason
from readonly import read_only

REPO = Path(__file__).resolve().parents[1]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_new_file_gets_the_umask_mode(tmp_path: Path, umask: int, expected: int) -> None:
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "report.json", "{}")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "report.json") == expected  # mkstemp alone gives 0600 whatever the umask


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text("old")
    path.chmod(0o640)
    write_atomic(path, "new")
    assert (path.read_text(), mode_of(path)) == ("new", 0o640)


def test_a_symlink_is_written_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "shared" / "baseline.json"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o664)
    link = tmp_path / "baseline.json"
    link.symlink_to(os.path.relpath(target, tmp_path))
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new" and mode_of(target) == 0o664
    assert sorted(p.name for p in target.parent.iterdir()) == ["baseline.json"]  # no temp file left


def test_text_is_utf8_under_an_ascii_locale(tmp_path: Path) -> None:
    # A CI container often has LANG unset: Python then encodes open()'s text as ASCII unless told.
    code = ("import locale, sys; from pathlib import Path; from pytest_infercheck.core.files import write_atomic\n"
            "assert locale.getpreferredencoding(False).lower() in ('ansi_x3.4-1968', 'ascii'), locale.getpreferredencoding(False)\n"
            "write_atomic(Path(sys.argv[1]), 'p90 12 \\u00b5s \\u2713 \\u6a21\\u578b')\n")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0",
           "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.md")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.md").read_bytes().decode("utf-8") == "p90 12 \u00b5s \u2713 \u6a21\u578b"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_atomic(path, 42)  # type: ignore[arg-type]
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_output_problem_names_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    assert output_problem(tmp_path / "adir") == f"{tmp_path / 'adir'} is a directory; give a file path"
    assert output_problem(tmp_path / "afile" / "r.json") == f"{tmp_path / 'afile' / 'r.json'}: {tmp_path / 'afile'} is not a directory"
    assert output_problem(tmp_path / "new" / "deeper" / "r.json") is None  # a missing parent is made at write time
    assert not (tmp_path / "new").exists()  # the check itself creates nothing
    assert output_problem(tmp_path / "afile") is None


def test_output_problem_in_a_read_only_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked):
        problem = output_problem(locked / "sub" / "report.json")
    assert problem is not None and problem.startswith(f"{locked / 'sub' / 'report.json'}: cannot create files in {locked} (")


def test_write_or_reason_returns_one_line_instead_of_raising(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    line = write_or_reason("JSON report", tmp_path / "adir", lambda: write_atomic(tmp_path / "adir", "{}"))
    assert line == f"infercheck: could not write the JSON report to {tmp_path / 'adir'}: Is a directory"
    assert write_or_reason("HTML report", tmp_path / "ok.html", lambda: write_atomic(tmp_path / "ok.html", "x")) is None
    with pytest.raises(ZeroDivisionError):  # a bug in rendering is not an I/O failure: it still raises
        write_or_reason("HTML report", tmp_path / "x.html", lambda: None if 1 / 0 else None)


def test_write_into_a_read_only_directory_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "baseline.json").write_text("{}")
    with read_only(locked):
        line = write_or_reason("baseline", locked / "baseline.json", lambda: write_atomic(locked / "baseline.json", "[]"))
    assert line is not None and line.startswith(f"infercheck: could not write the baseline to {locked / 'baseline.json'}: ")
    assert "\n" not in line and (locked / "baseline.json").read_text() == "{}"


def test_colliding_outputs(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    outputs = {"--infer-baseline": tmp_path / "b.json", "--infer-report": str(tmp_path / "x" / ".." / "b.json"),
               "--infer-html": None}
    assert colliding_outputs(outputs) == f"--infer-baseline and --infer-report both name {tmp_path / 'b.json'}; give each output its own file"
    (tmp_path / "link.json").symlink_to(tmp_path / "r.json")
    assert colliding_outputs({"--infer-report": tmp_path / "r.json", "--infer-markdown": tmp_path / "link.json"}) is not None
    assert colliding_outputs({"--infer-report": tmp_path / "r.json", "--infer-markdown": tmp_path / "r.md"}) is None


def test_a_device_is_never_replaced_by_a_file() -> None:
    # As root a rename over /dev/null would succeed and leave a plain file where the device was.
    assert output_problem("/dev/null") == "/dev/null is not a regular file (a device or a pipe); give a file path"
    line = write_or_reason("JSON report", "/dev/null", lambda: write_atomic("/dev/null", "{}"))
    assert line == "infercheck: could not write the JSON report to /dev/null: not a regular file (a device or a pipe)"
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("make, kind", [
    (lambda path: os.mkfifo(path), "is a FIFO (named pipe), not a regular file"),
    (lambda path: path.mkdir(), "is a directory, not a regular file"),
    (lambda path: path.symlink_to("/dev/null"), "is a character device, not a regular file"),
    (lambda path: None, "cannot be read (No such file or directory)"),
])
def test_read_regular_file_refuses_what_is_not_a_regular_file_without_opening_it(tmp_path: Path, make,
                                                                                  kind: str) -> None:
    """A FIFO must be refused, not opened: opening one for reading waits for a writer (the gate hung)."""
    from pytest_infercheck.core.files import NotReadable, read_regular_file

    path = tmp_path / "input.json"
    make(path)
    with pytest.raises(NotReadable, match=kind.replace("(", r"\(").replace(")", r"\)")):
        read_regular_file(path, max_bytes=1024)


def test_read_regular_file_bounds_the_size(tmp_path: Path) -> None:
    from pytest_infercheck.core.files import NotReadable, read_regular_file

    path = tmp_path / "input.json"
    path.write_bytes(b"x" * 2048)
    assert read_regular_file(path, max_bytes=2048) == b"x" * 2048
    with pytest.raises(NotReadable, match="is 2048 bytes, over the limit"):
        read_regular_file(path, max_bytes=2047)
