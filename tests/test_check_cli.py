"""`infercheck check TARGET`: the plugin's check of one model with no test written, its exit status
(0 passed/skipped, 1 a check failed, 2 a usage error in one line), its reports, its shorthands.

A failed check's exit 1 is a real `python -m pytest_infercheck` process; the other runs are the CLI's
``main`` in this process (cli_runner.py), as a real one runs pytest: without an interpreter and torch
start-up each."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest

from cli_runner import Run, fresh_imports, in_process, in_subprocess

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--infer-warmup=2", "--infer-min-iters=5", "--infer-min-time=0.01", "--infer-max-time=0.05"]

MODELS = '''
import torch

def make_classifier():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, 10))

def zero_head():
    model = make_classifier()
    torch.nn.init.zeros_(model[4].weight)
    torch.nn.init.zeros_(model[4].bias)
    return model
'''

FAKE_TIMM = '''
"""Stands in for timm (not installable beside a CPU torch here): what the shorthand calls."""
import torch

def is_model(name):
    return name == "tiny_net"

def create_model(name, pretrained=True):
    assert pretrained is False, "the shorthand asks for random weights"
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
'''


@pytest.fixture
def project(tmp_path: Path, shared_cache_dir: Path) -> Path:
    """A user's project folder: mypkg/models.py, and a cache shared with the suite's plugin runs."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "models.py").write_text(MODELS)
    return tmp_path


def run_check(project: Path, shared_cache_dir: Path, *args: str,
              run: Callable[..., "Run[str]"] = in_process) -> "Run[str]":
    """`infercheck check ARGS` from the project's folder, the project importable (in this process, by default)."""
    return run("check", *args, *FAST, f"--infer-cache-dir={shared_cache_dir}", cwd=project, pythonpath=[project])


def doc_commands() -> list[str]:
    """Every `infercheck check` command in README.md and docs/usage.md."""
    found = []
    for page in (ROOT / "README.md", ROOT / "docs" / "usage.md"):
        found += re.findall(r"^(infercheck check [^\n]+)$", page.read_text(), re.M)
    return found


def test_the_docs_show_the_command() -> None:
    commands = doc_commands()
    assert any("mypkg.models:make_classifier" in c for c in commands) and any("torchvision:" in c for c in commands)


STAND_IN_TORCHVISION = '''
"""Stands in for torchvision where its build does not match the installed torch (it fails at import)."""
import torch

def _small(*, weights=None, **kwargs):
    assert weights is None, "the shorthand asks for random weights"
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

class models:
    get_model_builder = staticmethod(lambda name: _small)
    list_models = staticmethod(lambda: ["resnet18"])
'''


def importable(name: str) -> bool:
    try:
        __import__(name)
    except Exception:  # torchvision built for another torch raises RuntimeError at import
        return False
    return True


@pytest.mark.parametrize("command", sorted(set(doc_commands())))
def test_every_documented_command_runs(command: str, project: Path, shared_cache_dir: Path) -> None:
    """Each `infercheck check` line of the docs, as written (torchvision and timm stand-ins where the real
    ones cannot be imported beside this torch); its reports are the plugin's."""
    from pytest_infercheck.cli.check import load_model

    args = shlex.split(command)[2:]
    for library, stand_in in (("torchvision", STAND_IN_TORCHVISION), ("timm", FAKE_TIMM.replace("tiny_net", "resnet18"))):
        if args[0].startswith(library + ":") and not importable(library):
            (project / f"{library}.py").write_text(stand_in)
    if "--weights" in args:
        import torch

        with fresh_imports([project]):  # this project's stand-ins and mypkg, none left imported after
            torch.save(load_model(args[0], None, str(project)).state_dict(), project / args[args.index("--weights") + 1])
    args = [arg.replace("p90:30ms", "p90:10s") for arg in args]  # a loaded CI machine: the budget is shown, not met
    report = next((arg.split("=", 1)[1] for arg in args if arg.startswith("--infer-report=")), None)
    done = run_check(project, shared_cache_dir, *args, *([] if report else ["--infer-report=every.json"]))
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((project / (report or "every.json")).read_text())["results"]
    assert results and all(r["outcome"] in ("passed", "skipped") for r in results)
    assert "infercheck summary" in done.stdout
    for option in ("--infer-report", "--infer-html"):
        written = [arg.split("=", 1)[1] for arg in args if arg.startswith(option + "=")]
        assert all((project / path).is_file() for path in written)


def test_the_command_writes_the_plugins_report_and_names_the_test(project: Path, shared_cache_dir: Path) -> None:
    done = run_check(project, shared_cache_dir, "mypkg.models:make_classifier", "--input-shape", "1,3,16,16",
                     "--engines", "eager-fp32,onnxruntime-fp32", "--infer-report=report.json",
                     "--junitxml", "junit.xml")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((project / "report.json").read_text())["results"]
    assert {(r["spec_id"], r["outcome"]) for r in results} == {("eager-fp32", "passed"), ("onnxruntime-fp32", "passed")}
    assert "test_infercheck_check.py::test_mypkg_models_make_classifier" in done.stdout
    # pytest's JUnit file, for a CI's test reports (newcomer trial 4: the option was refused)
    import xml.etree.ElementTree as ET

    suite = ET.parse(project / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "0"


def test_the_model_is_built_once_and_the_check_is_of_the_model_validated(project: Path, shared_cache_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The command loads the model to validate it before pytest runs: the generated test checks that same
    model (a random-weight model built twice would be two models), not a second build."""
    (project / "mypkg" / "counted.py").write_text(
        "import os, torch\n"
        "def model():\n"
        "    with open(os.environ['BUILDS_FILE'], 'a') as f:\n"
        "        f.write('built\\n')\n"
        "    return torch.nn.Linear(6, 3)\n")
    builds = project / "builds.txt"
    monkeypatch.setenv("BUILDS_FILE", str(builds))
    done = run_check(project, shared_cache_dir, "mypkg.counted:model", "--input-shape", "2,6", "--engines", "eager-fp32")
    assert done.returncode == 0, done.stdout + done.stderr
    assert builds.read_text().splitlines() == ["built"]


def test_a_failed_check_exits_1_with_the_plugins_failure(project: Path, shared_cache_dir: Path) -> None:
    """A real process: `python -m pytest_infercheck check` runs pytest and exits with its verdict."""
    done = run_check(project, shared_cache_dir, "mypkg.models:zero_head", "--input-shape", "1,3,16,16",
                     "--engines", "eager-fp32", run=in_subprocess)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "reference: the eager reference cannot judge an engine" in done.stdout
    assert "every weight of 4 is zero" in done.stdout
    # The generated test module is the CLI's, deleted after the run: its lines are not the user's to read.
    assert not re.search(r"test_infercheck_check\.py:\d", done.stdout)


def test_a_shorthand_builds_random_weights_and_loads_local_ones(project: Path, shared_cache_dir: Path) -> None:
    import torch

    (project / "timm.py").write_text(FAKE_TIMM)
    state = {"0.weight": torch.randn(4, 3, 3, 3), "0.bias": torch.full((4,), 0.5)}
    torch.save(state, project / "weights.pt")
    done = run_check(project, shared_cache_dir, "timm:tiny_net", "--weights", "weights.pt", "--input-shape",
                     "1,3,16,16", "--engines", "eager-fp32", "--infer-report=report.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((project / "report.json").read_text())["results"][0]["outcome"] == "passed"
    assert "test_timm_tiny_net" in done.stdout


@pytest.mark.parametrize("args, words", [
    (["mypkg"], "TARGET 'mypkg': expected package.module:factory, torchvision:NAME or timm:NAME"),
    (["mypkg.models:nothing", "--input-shape", "1,3,16,16"], "TARGET mypkg.models:nothing: cannot import it"),
    (["timm:no_such_net", "--input-shape", "1,3,16,16"], "TARGET timm:no_such_net: timm has no model 'no_such_net'"),
    (["mypkg.models:make_classifier", "--input-shape", "1,3,x"], "--input-shape '1,3,x': expected comma-separated"),
    (["mypkg.models:make_classifier", "--input-shape", "1,4,16,16"], "--input-shape 1,4,16,16: the model itself fails"),
    (["mypkg.models:make_classifier", "--input-shape", "1,3,16,16", "--engines", "onnx-fp32"],
     "--engines 'onnx-fp32': 'onnx-fp32' is not an engine id; expected <backend>-<precision>[-cudagraph]"),
    (["mypkg.models:make_classifier", "--input-shape", "1,3,16,16", "--infer-budget", "fast"],
     "--infer-budget 'fast':"),
    (["mypkg.models:make_classifier", "--input-shape", "1,3,16,16", "--weights", "missing.pt"],
     "--weights missing.pt: no such file"),
    (["mypkg.models:make_classifier", "--input-shape", "1,3,16,16", "--junitxml", "r.json", "--infer-report=r.json"],
     "--junitxml and --infer-report both name"),
])
def test_a_usage_error_exits_2_in_one_line(args: list[str], words: str, project: Path) -> None:
    (project / "timm.py").write_text(FAKE_TIMM)
    run = in_process("check", *args, cwd=project, pythonpath=[project])
    assert run.returncode == 2
    err = run.stderr
    assert err.startswith(f"infercheck check: error: {words}") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_the_torchvision_shorthand_asks_for_no_weights_and_none_for_the_backbone() -> None:
    from pytest_infercheck.cli.check import _torchvision_model

    calls = []

    def classifier(*, weights=None, progress=True, **kwargs):
        calls.append(("classifier", weights, kwargs))

    def detector(*, weights=None, weights_backbone="DEFAULT", **kwargs):
        calls.append(("detector", weights, weights_backbone))

    builders = {"resnet18": classifier, "fasterrcnn_mobilenet_v3_large_320_fpn": detector}

    def get_model_builder(name):
        if name not in builders:
            raise ValueError(name)
        return builders[name]

    fake = SimpleNamespace(models=SimpleNamespace(get_model_builder=get_model_builder, list_models=lambda: list(builders)))
    _torchvision_model(fake, "resnet18", "torchvision:resnet18")
    _torchvision_model(fake, "fasterrcnn_mobilenet_v3_large_320_fpn", "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn")
    assert calls == [("classifier", None, {}), ("detector", None, None)]
    with pytest.raises(Exception, match="torchvision has no model 'resnet1'"):
        _torchvision_model(fake, "resnet1", "torchvision:resnet1")
