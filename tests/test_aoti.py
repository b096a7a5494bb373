"""AOTInductor packages are loaded in a throwaway process first, so a broken runtime cannot end the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_infercheck.backends import aoti
from pytest_infercheck.backends.base import BuildError


def test_a_package_that_does_not_load_is_a_build_error_naming_it(tmp_path: Path) -> None:
    bogus = tmp_path / "model.pt2"
    bogus.write_bytes(b"not a zip archive")
    backend = aoti.AotiBackend()
    with pytest.raises(BuildError, match=r"aoti_load_package failed on .*model\.pt2"):
        backend.ensure_loads_safely(bogus)
    assert str(bogus) not in backend.loads_verified and str(bogus) in backend.load_problems


def test_a_crash_in_the_probe_process_is_reported_with_the_signal(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """fake_crashing_python: a child interpreter that dies of SIGSEGV, as aoti_load_package did on the H100."""
    import subprocess
    import sys

    real_run = subprocess.run

    def fake_crashing_python(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
        return real_run([sys.executable, "-c", crash], **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(aoti.subprocess, "run", fake_crashing_python)
    problem = aoti.load_problem(tmp_path / "model.pt2")
    assert problem is not None and "crashed with SIGSEGV" in problem and "this session goes on" in problem
