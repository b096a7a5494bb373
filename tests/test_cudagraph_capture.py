"""A failed CUDA-graph capture names the model's line (the newcomer trial, defect 3), without a GPU.

Capturing needs CUDA, so these tests raise real Python exceptions of the kind torch raises, from a
*fake model file* written to tmp_path (a real module, so failure_location finds its lines) calling a
*fake torch* whose frames, like torch's, are never the user's.  The same messages from real captures
on a GPU: tests/test_gpu_cudagraphs.py.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from pytest_infercheck.backends.cudagraphs import (PROBE, CudaGraphError, ProbeResult, capture_failure_message,
                                          first_capture_error, first_synchronising_call, needs_probe)
from pytest_infercheck.core.failure_location import is_library, user_frame

# torch's texts (CUDA's error strings after "CUDA error: ", then torch's advice lines)
ADVICE = ("\nCUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below "
          "might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1")
NOT_PERMITTED = "CUDA error: operation not permitted when stream is capturing" + ADVICE
PREVIOUS_ERROR = "CUDA error: operation failed due to a previous error during capture" + ADVICE
CPU_COPY = ("Cannot copy between CPU and CUDA tensors during CUDA graph capture unless the CPU tensor is pinned. "
            "Please copy the tensor to the GPU before capture.")
SYNC = "called a synchronizing CUDA operation"

# The fake torch: compiled under a "<...>" file name, so its frames are library frames as torch's are.
FAKE_TORCH_SOURCE = '''
import warnings

class FakeTorch:
    """Each call raises the text ``raises`` gives its name, warns the text ``warns`` gives it, and returns."""
    def __init__(self, raises, warns=None):
        self.raises = raises
        self.warns = warns or {}
        self.calls = []
    def _call(self, name, value):
        self.calls.append(name)
        if name in self.raises:
            raise RuntimeError(self.raises[name])
        if name in self.warns:
            warnings.warn(self.warns[name], UserWarning)
        return value
    def item(self, x):
        return self._call("item", 1.0)
    def to_cuda(self, values):
        return self._call("to_cuda", 0.0)
    def matmul(self, x, y):
        return self._call("matmul", x)

class FakeGraphCapture:
    """torch.cuda.graph: its exit ends the capture, which raises when a call invalidated it."""
    def __init__(self, invalidated):
        self.invalidated = invalidated
    def __enter__(self):
        return self
    def __exit__(self, *exc_info):
        if self.invalidated:
            raise RuntimeError(PREVIOUS_ERROR)
'''
fake_torch: dict[str, Any] = {"PREVIOUS_ERROR": PREVIOUS_ERROR}
exec(compile(FAKE_TORCH_SOURCE, "<fake torch>", "exec"), fake_torch)

FAKE_MODEL_FILE = """\
class SyncsWithHost:
    def forward(self, x, torch):
        y = x + 1
        return y * float(torch.item(y))


class CopiesFromHost:
    def forward(self, x, torch):
        return x + torch.to_cuda([1.0, 2.0])


class SwallowsTheFirstError:
    def forward(self, x, torch):
        try:
            masked = bool(torch.item(x))
        except RuntimeError:
            masked = False
        return torch.matmul(x, masked)
"""


@pytest.fixture
def fake_model_file(tmp_path: Path) -> ModuleType:
    """The fake model file, imported as a real module from tmp_path."""
    path = tmp_path / "fake_models.py"
    path.write_text(FAKE_MODEL_FILE)
    spec = importlib.util.spec_from_file_location("fake_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop("fake_models", None)
    return module


def line_of(code: str) -> int:
    return next(number for number, line in enumerate(FAKE_MODEL_FILE.splitlines(), 1) if code in line)


def capture(forward: Callable[[], Any], invalidated: bool) -> BaseException:
    """The exception a capture of ``forward`` ends with, as torch.cuda.graph raises it."""
    try:
        with fake_torch["FakeGraphCapture"](invalidated):
            forward()
    except Exception as exc:
        return exc
    raise AssertionError("the fake capture did not fail")


class FakeSyncDebugMode:
    """torch.cuda.get/set_sync_debug_mode's stand-in: records each mode set."""

    def __init__(self) -> None:
        self.mode: Any = 0
        self.history: list[Any] = []

    def get(self) -> Any:
        return self.mode

    def set(self, mode: Any) -> None:
        self.mode = mode
        self.history.append(mode)


def probe(forward: Callable[[], Any]) -> ProbeResult:
    mode = FakeSyncDebugMode()
    return first_synchronising_call(forward, (mode.get, mode.set))


def test_a_copy_from_host_names_the_models_line(fake_model_file: ModuleType) -> None:
    torch = fake_torch["FakeTorch"]({"to_cuda": CPU_COPY})
    error = capture(lambda: fake_model_file.CopiesFromHost().forward(1.0, torch), invalidated=False)
    assert not needs_probe(error)  # torch's own check, raised at the call that copies
    message = capture_failure_message(error)
    path = fake_model_file.__file__
    assert message.splitlines()[:3] == [
        "the engine cannot be captured into a CUDA graph:",
        f"at {path}:{line_of('to_cuda')} in forward: return x + torch.to_cuda([1.0, 2.0])",
        f"RuntimeError: {CPU_COPY}",
    ]
    assert "a CPU tensor" in message.splitlines()[-1]  # the usual causes, last


def test_a_host_synchronisation_names_its_line_not_the_captures_end(fake_model_file: ModuleType) -> None:
    """capture_end's "previous error" is raised over the model's own error: the model's is the first."""
    torch = fake_torch["FakeTorch"]({"item": NOT_PERMITTED})
    error = capture(lambda: fake_model_file.SyncsWithHost().forward(1.0, torch), invalidated=True)
    assert "previous error" in str(error) and str(first_capture_error(error)) == NOT_PERMITTED
    assert needs_probe(error)
    found = probe(lambda: fake_model_file.SyncsWithHost().forward(1.0, fake_torch["FakeTorch"]({}, {"item": SYNC})))
    lines = capture_failure_message(error, found).splitlines()
    path = fake_model_file.__file__
    assert lines[1:4] == [
        f"at {path}:{line_of('torch.item(y)')} in forward: return y * float(torch.item(y))",
        "RuntimeError: CUDA error: operation not permitted when stream is capturing",
        f"the same line is the first to synchronise with the host when {PROBE} (UserWarning: {SYNC})",
    ]
    assert not any("previous error" in line for line in lines)


def test_an_error_caught_inside_the_model_is_found_by_the_probe(fake_model_file: ModuleType) -> None:
    """BART's form: the capture's first error is lost (caught in the model), a later call says only
    'previous error'; the forward run again under sync debug mode names the first synchronising call."""
    torch = fake_torch["FakeTorch"]({"item": NOT_PERMITTED, "matmul": PREVIOUS_ERROR})
    error = capture(lambda: fake_model_file.SwallowsTheFirstError().forward(1.0, torch), invalidated=True)
    assert needs_probe(error)
    warns = fake_torch["FakeTorch"]({}, {"item": SYNC})
    found = probe(lambda: fake_model_file.SwallowsTheFirstError().forward(1.0, warns))
    assert warns.calls == ["item", "matmul"]  # a warning, not an error: the forward ran to its end
    path = fake_model_file.__file__
    assert capture_failure_message(error, found).splitlines()[1:4] == [
        f"at {path}:{line_of('bool(torch.item(x))')} in forward: masked = bool(torch.item(x))",
        f"the first call that synchronises with the host when {PROBE}: UserWarning: {SYNC}",
        "the capture's error: RuntimeError: CUDA error: operation failed due to a previous error during capture "
        f"(at {path}:{line_of('torch.matmul')} in forward: return torch.matmul(x, masked))",
    ]


def test_a_probe_that_finds_nothing_says_so_and_keeps_the_captures_line(fake_model_file: ModuleType) -> None:
    torch = fake_torch["FakeTorch"]({"matmul": PREVIOUS_ERROR})
    error = capture(lambda: fake_model_file.SwallowsTheFirstError().forward(1.0, torch), invalidated=True)
    nothing = probe(lambda: fake_model_file.SwallowsTheFirstError().forward(1.0, fake_torch["FakeTorch"]({})))
    assert nothing == ProbeResult()
    lines = capture_failure_message(error, nothing).splitlines()
    assert lines[1].endswith("in forward: return torch.matmul(x, masked)")
    assert lines[2] == "RuntimeError: CUDA error: operation failed due to a previous error during capture"
    assert lines[3].startswith(f"the capture's error may not be its cause, and {PROBE} without a host synchronisation")
    unrun = capture_failure_message(error, ProbeResult(not_run="RuntimeError: CUDA error: out of memory")).splitlines()
    assert unrun[3].endswith("could not run (RuntimeError: CUDA error: out of memory)")


def test_a_forward_that_raises_under_the_probe_names_the_raising_line(fake_model_file: ModuleType) -> None:
    found = probe(lambda: fake_model_file.CopiesFromHost().forward(1.0, fake_torch["FakeTorch"]({"to_cuda": SYNC})))
    assert found.what == f"RuntimeError: {SYNC}"
    assert found.frame is not None and found.frame.lineno == line_of("to_cuda")


def test_the_probe_restores_the_sync_debug_mode_and_passes_other_warnings_on(fake_model_file: ModuleType) -> None:
    mode = FakeSyncDebugMode()
    mode.mode = 2  # the user's own setting ("error")
    showwarning, filters = warnings.showwarning, list(warnings.filters)
    torch = fake_torch["FakeTorch"]({}, {"item": "TypedStorage is deprecated",
                                         "matmul": f"{SYNC} (Triggered internally at /pytorch/c10/cuda/CUDAFunctions.cpp:1)"})
    with pytest.warns(UserWarning, match="TypedStorage is deprecated"):
        found = first_synchronising_call(lambda: fake_model_file.SwallowsTheFirstError().forward(1.0, torch),
                                         (mode.get, mode.set))
    assert found.frame is not None and found.frame.lineno == line_of("torch.matmul")
    assert found.what == f"UserWarning: {SYNC}"  # without torch's C++ source line
    assert mode.history == ["warn", 2] and mode.mode == 2
    assert warnings.showwarning is showwarning and warnings.filters == filters

    def fails() -> None:
        raise RuntimeError("CUDA error: out of memory")

    assert first_synchronising_call(fails, (mode.get, mode.set)).what == "RuntimeError: CUDA error: out of memory"
    assert mode.history == ["warn", 2, "warn", 2]


def test_the_cuda_graph_stage_indents_the_models_line_below_its_reason(fake_model_file: ModuleType) -> None:
    """check/build.first_run: the reason on the first line (pytest -rf's summary), the detail indented below."""
    from pytest_infercheck.check.build import first_run
    from pytest_infercheck.check.failure import StageFailure
    from pytest_infercheck.core.spec import EngineSpec, Stage

    torch = fake_torch["FakeTorch"]({"to_cuda": CPU_COPY})
    message = capture_failure_message(capture(lambda: fake_model_file.CopiesFromHost().forward(1.0, torch), False))

    class FakeUncapturableEngine:
        def prepare(self, inputs: Any) -> Any:
            raise CudaGraphError(message)

    spec = EngineSpec("eager", "fp32", cuda_graphs=True)
    with pytest.raises(StageFailure) as failure:
        first_run(FakeUncapturableEngine(), spec, [])  # type: ignore[arg-type]
    lines = str(failure.value).splitlines()
    assert failure.value.stage == Stage.CUDA_GRAPH
    assert lines[0] == "the engine cannot be captured into a CUDA graph:"
    at = f"at {fake_model_file.__file__}:{line_of('to_cuda')} in forward: return x + torch.to_cuda([1.0, 2.0])"
    assert lines[1] == f"      {at}"
    # pytest -rf's line (the newcomer trial's defect 4) reaches the model's line too
    from pytest_infercheck.judge.verdict import Thresholds, apply, summary_line, verdict
    from pytest_infercheck.measure.results import CheckResult, Failure

    facts = CheckResult(nodeid="t.py::test[eager-fp32-cudagraph]", spec_id=spec.id, backend="eager", precision="fp32",
                        cuda_graphs=True, model_name="CopiesFromHost",
                        stopped=Failure(failure.value.stage, str(failure.value)))
    facts = apply(facts, verdict(facts, Thresholds()))
    assert summary_line(facts).startswith(
        f"eager-fp32-cudagraph failed at cuda-graph: the engine cannot be captured into a CUDA graph: {at} ")


def test_code_inductor_generated_is_never_the_users_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "engines" / "inductor"))
    assert is_library(str(tmp_path / "engines" / "inductor" / "ab" / "cabc.py"), strict=True)
    assert is_library(str(tmp_path / "torchinductor_me" / "ab" / "cabc.py"), strict=True)
    assert not is_library(str(tmp_path / "engines" / "inductor_model.py"), strict=True)
    assert not is_library(str(tmp_path / "model.py"), strict=True)
    generated = tmp_path / "torchinductor_me" / "call.py"
    generated.parent.mkdir()
    generated.write_text("def call(x):\n    raise RuntimeError('CUDA error: operation not permitted')\n")
    model = tmp_path / "model_with_compiled_part.py"
    model.write_text("def forward(call, x):\n    return call(x)\n")
    namespace: dict[str, Any] = {}
    exec(compile(generated.read_text(), str(generated), "exec"), namespace)
    exec(compile(model.read_text(), str(model), "exec"), namespace)
    with pytest.raises(RuntimeError) as raised:
        namespace["forward"](namespace["call"], 1)
    frame = user_frame(raised.value)
    assert frame is not None and (frame.filename, frame.lineno) == (str(model), 2)


def test_every_folder_of_the_plugin_is_tooling_never_the_users_line() -> None:
    """The package's modules live in layer folders: a frame in any of them (not only failure_location's own
    folder) is never reported as the model's line."""
    import pytest_infercheck
    from pytest_infercheck.check import build

    package = Path(pytest_infercheck.__file__).parent
    for path in (package / "check" / "build.py", package / "plugin" / "__init__.py", package / "core" / "files.py",
                 Path(build.__file__)):
        assert is_library(str(path), strict=False), path
    assert not is_library(str(package.parent / "fixtures" / "models.py"), strict=False)
