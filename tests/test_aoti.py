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


AOTI_THEN_INDUCTOR = '''
import pytest
import torch


def hooked_mlp():
    # A forward pre-hook: the Inductor engine is compiled the plain way (precompile.unsupported_reason), so
    # its warm rerun is Inductor's own FX-graph cache, whose key includes Inductor's config.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    model[0].register_forward_pre_hook(lambda module, args: None)
    return model


@pytest.mark.infercheck(engines=["aoti-fp32"])
def test_a_package(infercheck):
    infercheck(hooked_mlp(), torch.randn(2, 16, generator=torch.Generator().manual_seed(0)))


@pytest.mark.infercheck(engines=["inductor-fp32"])
def test_b_compiled(infercheck):
    infercheck(hooked_mlp(), torch.randn(2, 16, generator=torch.Generator().manual_seed(0)))
'''


def test_an_aoti_package_leaves_inductors_config_as_it_found_it(pytester: pytest.Pytester, tmp_path: Path,
                                                                separate_processes: None) -> None:
    """torch's aoti_compile_and_package sets torch._inductor.config.aot_inductor.metadata for the rest of the
    process, and Inductor's FX-graph cache key includes the config: an Inductor engine compiled after an
    AOTInductor item was not found again by a later process that ran it alone (a newcomer's warm rerun
    rebuilt for 107 s).  The config is put back after each package; the rerun hits.  Separate processes,
    as the rerun is: in one process the leaked config would match itself."""
    import json

    from conftest import FAST_TIMING

    pytester.makepyfile(test_model=AOTI_THEN_INDUCTOR)
    reports = []
    for run, selection in (("first", ()), ("rerun", ("-k", "test_b"))):
        report = tmp_path / f"{run}.json"
        pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:randomly", f"--infer-cache-dir={tmp_path / 'cache'}",
                                      f"--infer-report={report}", *FAST_TIMING, *selection).assert_outcomes(
            passed=2 if run == "first" else 1)
        reports.append({r["nodeid"].split("::")[1]: r for r in json.loads(report.read_text())["results"]})
    first, rerun = reports
    assert first["test_b_compiled[inductor-fp32]"]["cache"]["inductor"] == "miss"
    assert rerun["test_b_compiled[inductor-fp32]"]["cache"]["inductor"] == "hit"
