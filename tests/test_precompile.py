"""Inductor engines precompiled into the engine cache: a warm rerun loads them without Dynamo.

Real torch.compile/aot_compile builds on the CPU, through real pytest runs of the plugin. Each test
uses its own cache directory: whether the first run compiles is part of what it checks. The tests that
start from a cold build get a copy of one cold session's cache (``cold_mlp``), built once per module by
whichever of them runs first.

The compiled code itself is compared on the small CNN (conv, batch norm, pooling: three C++ kernels,
4.4 s a build here). The tests whose point is how the plugin treats an entry (damaged, planted, refused,
keyed by thread count, not made for hooks or reduce-overhead, loaded once) build the two-layer MLP
(one C++ kernel, 1.5 s a build): what they check does not depend on the model's kernels.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not hasattr(torch.compiler, "load_compiled_function"):
    pytest.skip(f"torch {torch.__version__} has no precompile API", allow_module_level=True)

from torch._dynamo.utils import counters  # noqa: E402

from conftest import FAST_TIMING  # noqa: E402

from pytest_infercheck.backends import precompile  # noqa: E402

CNN_TEST = '''
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["inductor"], precisions=["fp32"])
def test_compiled(infercheck):
    infercheck(small_cnn(), cnn_inputs())
'''
MLP_TEST = '''
import pytest, torch
from fixtures.models import dynamic_mlp

@pytest.mark.infercheck(backends=["inductor"], precisions=["fp32"])
def test_compiled(infercheck):
    infercheck(dynamic_mlp(), torch.randn(4, 64))
'''


def run_session(run_plugin, source: str, cache: Path, report: Path, *args: str) -> dict:
    """One session on the engine cache ``cache``: the JSON report's single item, with the Dynamo
    graphs the session traced (Dynamo's counters live in this process, as the runs do)."""
    precompile.RECENT.clear()  # as in a new process: the warm session deserialises what the cold one saved
    graphs_before = counters["stats"]["unique_graphs"]
    run_plugin(source, f"--infer-cache-dir={cache}", f"--infer-report={report}", *args, cache=False).assert_outcomes(passed=1)
    [item] = json.loads(report.read_text())["results"]
    item["traced_graphs"] = counters["stats"]["unique_graphs"] - graphs_before
    return item


def run_twice(run_plugin, source: str, cache: Path, report: Path, before_second=None) -> list[dict]:
    first = run_session(run_plugin, source, cache, report)
    if before_second is not None:
        before_second()
    return [first, run_session(run_plugin, source, cache, report)]


def max_abs(item: dict) -> float:
    return max(output["max_abs"] for output in item["accuracy"]["outputs"])


def entry_files(cache: Path) -> set[str]:
    return {p.name for p in cache.rglob("*") if p.name in (precompile.FUNCTION_FILE, precompile.NOT_PRECOMPILED_FILE)}


@pytest.fixture(scope="module")
def _cold_mlp_build() -> dict[str, Any]:
    return {}  # filled by the first cold_mlp of the module


@pytest.fixture
def cold_mlp(run_plugin, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
             _cold_mlp_build: dict[str, Any]) -> tuple[Path, dict]:
    """(tmp_path / "cache", item): an engine cache holding what a cold MLP_TEST session built, and that
    session's report item. The session runs once per module, into a cache of its own; each test gets a
    copy of that cache to change as it likes (the same files a cold session of its own would leave)."""
    if not _cold_mlp_build:
        built = tmp_path_factory.mktemp("cold-mlp")
        _cold_mlp_build["item"] = run_session(run_plugin, MLP_TEST, built / "cache", built / "r.json")
        _cold_mlp_build["cache"] = built / "cache"
    cache = tmp_path / "cache"
    shutil.copytree(_cold_mlp_build["cache"], cache, symlinks=True)
    return cache, copy.deepcopy(_cold_mlp_build["item"])


def test_a_warm_rerun_loads_the_precompiled_engine_and_traces_nothing(run_plugin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold, warm = run_twice(run_plugin, CNN_TEST, cache, tmp_path / "r.json")
    assert cold["cache"]["inductor"] == "miss" and cold["traced_graphs"] == 1
    assert warm["cache"]["inductor"] == "hit" and warm["traced_graphs"] == 0  # no Dynamo trace at all
    assert entry_files(cache) == {precompile.FUNCTION_FILE}
    assert max_abs(warm) == max_abs(cold)  # the same compiled code
    assert not any("precompiled" in w for w in warm["warnings"])


SEQUENTIAL_TEST = '''
import pytest, torch

@pytest.mark.infercheck(backends=["inductor"], precisions=["fp32"])
def test_compiled(infercheck):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.GELU(), torch.nn.Linear(32, 8)).eval()
    infercheck(model, torch.randn(4, 64))
'''


def test_a_top_level_sequential_is_precompiled_and_a_warm_rerun_loads_it(run_plugin, tmp_path: Path) -> None:
    """torch could not save the bound forward of an nn.Sequential (the instance was baked into the
    function): every warm rerun traced again, with a warning. The model is now an argument."""
    cache = tmp_path / "cache"
    cold, warm = run_twice(run_plugin, SEQUENTIAL_TEST, cache, tmp_path / "r.json")
    assert entry_files(cache) == {precompile.FUNCTION_FILE}
    assert not any("precompiled" in w for w in cold["warnings"] + warm["warnings"])
    assert warm["cache"]["inductor"] == "hit" and warm["traced_graphs"] == 0
    assert max_abs(warm) == max_abs(cold)


def test_engines_of_one_precompiled_function_load_it_once_per_process(
        run_plugin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine and its CUDA-graph twin (here: two tests of one model, on the CPU) share one
    compiled function: built and kept in a cold session, deserialised once in a warm one."""
    source = MLP_TEST + MLP_TEST.split("\n\n", 1)[1].replace("test_compiled", "test_compiled_again")
    loads = []
    real_load = torch.compiler.load_compiled_function

    def counted(*args, **kwargs):
        loads.append(1)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch.compiler, "load_compiled_function", counted)
    cache = tmp_path / "cache"
    # cold: the saved function loaded back once (what warm runs load), for both items; warm: one load for both
    for expected_loads in (1, 1):
        precompile.RECENT.clear()
        loads.clear()
        run_plugin(source, f"--infer-cache-dir={cache}", cache=False).assert_outcomes(passed=2)
        assert len(loads) == expected_loads


def test_another_thread_count_gets_its_own_precompiled_engine(run_plugin, tmp_path: Path) -> None:
    """torch's thread count is one of the guards: an entry precompiled under another count would be
    refused at every call (a plain compile each run) and never replaced, so it is in the key."""
    cache, report = tmp_path / "cache", tmp_path / "r.json"
    one = run_session(run_plugin, MLP_TEST, cache, report, "--infer-threads=1")
    two = run_session(run_plugin, MLP_TEST, cache, report, "--infer-threads=2")
    two_again = run_session(run_plugin, MLP_TEST, cache, report, "--infer-threads=2")
    assert (one["cache"]["inductor"], two["cache"]["inductor"]) == ("miss", "miss")
    assert two_again["cache"]["inductor"] == "hit" and two_again["traced_graphs"] == 0


def test_a_model_with_a_graph_break_compiles_as_before_and_says_why(run_plugin, tmp_path: Path) -> None:
    source = '''
import pytest, torch

class Breaks(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x):
        y = self.linear(x)
        torch._dynamo.graph_break()  # a whole graph is what precompile needs
        return y.relu()

@pytest.mark.infercheck(backends=["inductor"], precisions=["fp32"])
def test_compiled(infercheck):
    torch.manual_seed(0)
    infercheck(Breaks(), torch.randn(4, 8))
'''
    cold, warm = run_twice(run_plugin, source, tmp_path / "cache", tmp_path / "r.json")
    for item in (cold, warm):
        [note] = [w for w in item["warnings"] if "not precompiled" in w]
        assert "a warm rerun traces it again" in note and "graph_break" in note.lower().replace(" ", "_")
    # The reason is kept in the cache: the warm run does not try to precompile again.
    assert entry_files(tmp_path / "cache") == {precompile.NOT_PRECOMPILED_FILE}
    assert warm["cache"]["inductor"] == "hit"  # Inductor's own FX-graph cache served the two graphs


SCALED_TEST = '''
import pytest, torch
import {module}

class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x):
        return {expression}

@pytest.mark.infercheck(backends=["inductor"], precisions=["fp32"])
def test_compiled(infercheck):
    torch.manual_seed(0)
    infercheck(Scaled(), torch.randn(4, 8))
'''


@pytest.mark.parametrize("module, expression, before, after", [
    # a helper function: traced, so its module is in the function's sources
    ("scaling", "scaling.scale(self.linear(x))", "def scale(x):\n    return x * 2\n",
     "def scale(x):\n    return x * 3 + 1.5\n"),
    # a constant the forward only reads: torch drops guards on globals when it precompiles, and no
    # function of its module is traced (found in review: the warm run used the old value, off by 1.7)
    ("consts", "self.linear(x) * consts.SCALE", "SCALE = 2.0\n", "SCALE = 3.25\n"),
])
def test_changed_code_outside_the_model_class_rebuilds_the_precompiled_engine(
        run_plugin, pytester: pytest.Pytester, tmp_path: Path, module: str, expression: str, before: str,
        after: str) -> None:
    """The cache key covers the model's classes, not another module: without the source-file check
    the warm run would run the old compiled code against the new eager reference (and fail its
    accuracy, or worse, pass on stale code). The edits change the file's length too: .pyc files
    go by size and mtime."""
    edited = pytester.makepyfile(**{module: before})
    pytester.syspathinsert()
    cold, warm = run_twice(run_plugin, SCALED_TEST.format(module=module, expression=expression), tmp_path / "cache",
                           tmp_path / "r.json", before_second=lambda: edited.write_text(after))
    assert cold["cache"]["inductor"] == "miss"
    assert warm["cache"]["inductor"] == "miss" and warm["traced_graphs"] == 1  # stale, so traced and rebuilt
    assert max_abs(warm) < 1e-4


def test_reduce_overhead_mode_is_compiled_the_plain_way(run_plugin, tmp_path: Path) -> None:
    item = run_session(run_plugin, MLP_TEST, tmp_path / "cache", tmp_path / "r.json",
                       "--infer-compile-mode=reduce-overhead")
    assert any("not precompiled" in w and "reduce-overhead" in w for w in item["warnings"])
    assert entry_files(tmp_path / "cache") == set()


@pytest.mark.parametrize("hooked, says", [
    ("model", "the model has forward hooks"),  # would not run around a precompiled forward
    ("model.net", "submodule 'net' has forward hooks"),  # traced, but guarded by nothing
])
def test_a_model_with_forward_hooks_is_not_precompiled(run_plugin, tmp_path: Path, hooked: str, says: str) -> None:
    source = f'''
import pytest, torch
from fixtures.models import dynamic_mlp

@pytest.mark.infercheck(backends=["inductor"], precisions=["fp32"])
def test_compiled(infercheck):
    model = dynamic_mlp()
    {hooked}.register_forward_hook(lambda module, args, output: output * 0.5)
    infercheck(model, torch.randn(4, 64))
'''
    item = run_session(run_plugin, source, tmp_path / "cache", tmp_path / "r.json")
    assert any("not precompiled" in w and says in w for w in item["warnings"]), item["warnings"]
    assert entry_files(tmp_path / "cache") == set()


def test_a_precompiled_function_that_cannot_be_loaded_is_compiled_again_with_a_warning(
        run_plugin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cold_mlp: tuple[Path, dict]) -> None:
    """Fault injected (a loader that raises, standing in for a torch that refuses a foreign entry):
    the item still passes, compiled the plain way, and the summary's warning says why."""
    (cache, _), report = cold_mlp, tmp_path / "r.json"

    def refuse(directory: Path) -> None:
        raise RuntimeError("compile artifacts are from another system\nsecond line")

    monkeypatch.setattr(precompile, "load", refuse)
    result = run_plugin(MLP_TEST, f"--infer-cache-dir={cache}", f"--infer-report={report}", cache=False)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*could not be loaded and run (RuntimeError: compile artifacts are from another system)*"])
    [item] = json.loads(report.read_text())["results"]
    assert any("not precompiled" in w and "could not be loaded" in w for w in item["warnings"])


def test_the_files_that_outdate_an_entry_are_the_traced_ones_and_the_users_own(tmp_path: Path) -> None:
    import importlib
    import sys

    (tmp_path / "probe_traced.py").write_text("import probe_consts\n\ndef f(x):\n    return x + probe_consts.K\n")
    consts = tmp_path / "probe_consts.py"
    consts.write_text("K = 1.0\n")
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("probe_traced")
        with torch._dynamo.config.patch(enable_aot_compile=True):
            compiled = torch.compile(module.f, fullgraph=True).aot_compile(((torch.ones(2),), {}))
        precompile.save(compiled, tmp_path)
        recorded = {entry["module"] for entry in json.loads((tmp_path / precompile.SOURCES_FILE).read_text())}
        assert {"probe_traced", "probe_consts"} <= recorded  # traced; the user's own, read as a global
        assert not any(name.split(".")[0] in ("torch", "json", "pytest") for name in recorded)  # versioned or installed
        assert precompile.stale_reason(tmp_path) is None
        consts.write_text("K = 2.5\n")
        assert precompile.stale_reason(tmp_path) == f"{consts.resolve()} changed"
        consts.unlink()
        assert "cannot be read (FileNotFoundError)" in precompile.stale_reason(tmp_path)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("probe_traced", None)
        sys.modules.pop("probe_consts", None)


def run_showing_warnings(run_plugin, cache: Path, report: Path) -> tuple[dict, str]:
    """run_session's item, and the terminal output (where a CacheWarning shows)."""
    precompile.RECENT.clear()
    result = run_plugin(MLP_TEST, f"--infer-cache-dir={cache}", f"--infer-report={report}", cache=False)
    result.assert_outcomes(passed=1)
    [item] = json.loads(report.read_text())["results"]
    return item, " ".join(result.stdout.str().split())  # the warning's long line, unwrapped


def reseal(entry: Path) -> None:
    """meta.json written again over the entry's files as they are now: their checksums match."""
    from pytest_infercheck.backends.cache import EngineCache

    (entry / "meta.json").unlink()
    EngineCache._write_meta(entry, "inductor-precompiled")


def precompiled_entry(cache: Path) -> Path:
    [function] = [p for p in cache.rglob(precompile.FUNCTION_FILE)]
    return function.parent


def test_a_precompiled_entry_planted_by_another_user_is_never_unpickled(run_plugin, tmp_path: Path,
                                                                        cold_mlp: tuple[Path, dict]) -> None:
    """Issue 23: another user planted a precompiled entry (a pickle) and root's next run executed it.
    Planted for real: a pickle that creates a file when unpickled, with matching checksums, owned by
    uid 12345. The entry is set aside and compiled again; the pickle never runs."""
    import os
    import pickle

    if os.geteuid() != 0:
        pytest.skip("planting another user's file needs root (chown)")
    (cache, _), report = cold_mlp, tmp_path / "r.json"
    entry, marker = precompiled_entry(cache), tmp_path / "the-planted-pickle-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (entry / precompile.FUNCTION_FILE).write_bytes(pickle.dumps(Payload()))
    reseal(entry)
    os.chown(entry / precompile.FUNCTION_FILE, 12345, -1)
    warm, out = run_showing_warnings(run_plugin, cache, report)
    assert not marker.exists()
    assert f"{entry / precompile.FUNCTION_FILE} is owned by uid 12345, not by you" in out
    assert warm["cache"]["inductor"] == "miss" and (entry / precompile.FUNCTION_FILE).stat().st_uid == os.geteuid()


@pytest.mark.parametrize("damage", ["{not json", '{"path": "x"}', '[{"module": "m"}]', b"\xff\xfe"])
def test_a_damaged_source_list_with_matching_checksums_is_rebuilt_with_a_warning(
        run_plugin, tmp_path: Path, damage, cold_mlp: tuple[Path, dict]) -> None:
    """source-files.json damaged before meta.json recorded its checksum failed the item on every run
    until deleted by hand: now the entry is unusable, rebuilt with a CacheWarning, and hit after."""
    (cache, _), report = cold_mlp, tmp_path / "r.json"
    sources = precompiled_entry(cache) / precompile.SOURCES_FILE
    sources.write_bytes(damage if isinstance(damage, bytes) else damage.encode())
    reseal(sources.parent)
    rebuilt, out = run_showing_warnings(run_plugin, cache, report)
    assert rebuilt["cache"]["inductor"] == "miss"
    assert "CacheWarning" in out and "is unusable (source-files.json is damaged" in out
    assert isinstance(json.loads(sources.read_text()), list)
    assert run_session(run_plugin, MLP_TEST, cache, report)["cache"]["inductor"] == "hit"


WARM_COLD_TEST = '''
import pytest, torch
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["inductor"], precisions=["fp32"])
def test_precompiled(infercheck):
    infercheck(small_cnn(), cnn_inputs())

@pytest.mark.infercheck(backends=["inductor"], precisions=["fp32"])
def test_plain(infercheck):
    model = small_cnn()
    model.register_forward_pre_hook(lambda module, args: None)  # not precompilable: torch.compile's own path
    infercheck(model, cnn_inputs())

import torch.nn.functional as F
SCALE = 2.0

class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(16, 16)

    def forward(self, x):
        return F.gelu(self.linear(x)) * SCALE

@pytest.mark.infercheck(backends=["inductor"], precisions=["fp32"])
def test_sequential(infercheck):
    # torch bakes a top-level Sequential into its bound forward: precompiled with the module an argument
    torch.manual_seed(0)
    infercheck(torch.nn.Sequential(Block(), torch.nn.Linear(16, 4)).eval(), torch.randn(2, 16))
'''


def test_a_warm_run_takes_the_cold_runs_path_to_the_same_verdict(
        pytester: pytest.Pytester, tmp_path: Path, separate_processes: None) -> None:
    """Issue 25: a verdict must not depend on whether the cache was warm. Two pytest processes on
    one engine cache: the first builds (cold), the second loads (warm). Each engine takes the same
    host path in both (the same chain of callables, the same Python calls per call: no wrapper,
    guard refusal or launcher the other lacks) and reaches the same verdict. The cold precompiled
    engine runs its saved function loaded back, as the warm one does (run as compiled, it made 3
    Python calls more per call on torch 2.13)."""
    pytester.makepyfile(test_warm_cold=WARM_COLD_TEST)
    items = []
    for run in ("cold", "warm"):
        report = tmp_path / f"{run}.json"
        pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:randomly", f"--infer-cache-dir={tmp_path / 'cache'}",
                                      f"--infer-report={report}", *FAST_TIMING).assert_outcomes(passed=3)
        items.append({item["nodeid"].split("::")[-1]: item for item in json.loads(report.read_text())["results"]})
    cold, warm = items
    assert cold.keys() == warm.keys() == {"test_precompiled[inductor-fp32]", "test_plain[inductor-fp32]",
                                          "test_sequential[inductor-fp32]"}
    assert {item["cache"]["inductor"] for item in cold.values()} == {"miss"}
    assert {item["cache"]["inductor"] for item in warm.values()} == {"hit"}
    for name in cold:
        for fact in ("outcome", "stage", "failures", "undecided", "call_path"):
            assert cold[name][fact] == warm[name][fact], (name, fact)
        assert cold[name]["call_path"]["python_calls"] > 0
    assert cold["test_precompiled[inductor-fp32]"]["call_path"]["kind"] == "TorchEngine > PrecompiledForward"
    assert cold["test_plain[inductor-fp32]"]["call_path"]["kind"] == "TorchEngine > OptimizedModule"
    for name in ("test_precompiled[inductor-fp32]", "test_sequential[inductor-fp32]"):
        assert cold[name]["call_path"]["kind"] == "TorchEngine > PrecompiledForward"
        assert not any("precompiled" in w for w in cold[name]["warnings"] + warm[name]["warnings"])


def test_a_loaded_function_whose_guards_refuse_the_run_is_said_and_replaced(
        run_plugin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cold_mlp: tuple[Path, dict]) -> None:
    """Fault injected (guards that refuse every call, standing in for a global torch setting they check
    that differs from the saved one): before, every timed call quietly took the fallback's path, another
    engine than the cold run timed; now the warm item says so and runs torch.compile's own engine."""
    (cache, _), report = cold_mlp, tmp_path / "r.json"
    real_load = precompile.load

    class Refusing:
        def __init__(self, compiled: Any) -> None:
            self.compiled = compiled

        def disable_guard_check(self) -> None:
            self.compiled.disable_guard_check()

        def guard_check(self, *args: Any, **kwargs: Any) -> bool:
            return False

    monkeypatch.setattr(precompile, "load", lambda directory: Refusing(real_load(directory)))
    result = run_plugin(MLP_TEST, f"--infer-cache-dir={cache}", f"--infer-report={report}", cache=False)
    result.assert_outcomes(passed=1)
    [item] = json.loads(report.read_text())["results"]
    [note] = [w for w in item["warnings"] if "not precompiled" in w]
    assert "guards refused this run's call" in note and "torch.compile's own engine" in note
    assert item["call_path"]["kind"] == "TorchEngine > OptimizedModule"


def test_a_saved_function_is_loaded_without_starting_inductors_compile_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool's start-up (a worker per core importing torch) would overlap the timing that follows a
    load. A CPU-only torch never starts it (no Triton), so the setting is what is checked here, by a
    stand-in for torch's loader; the GPU run shows the effect (benchmarks/warm_cold.py)."""
    seen = []

    def fake_load_compiled_function(stream):
        seen.append((torch._inductor.config.compile_threads, stream.read()))
        return object()

    monkeypatch.setattr(torch.compiler, "load_compiled_function", fake_load_compiled_function)
    precompile.RECENT.clear()
    (tmp_path / precompile.FUNCTION_FILE).write_bytes(b"saved")
    threads = torch._inductor.config.compile_threads
    first, again = precompile.load(tmp_path), precompile.load(tmp_path)
    assert seen == [(1, b"saved")] and first is again  # deserialised once, with one compile thread
    assert torch._inductor.config.compile_threads == threads  # restored after the load
    precompile.RECENT.clear()


def test_a_saved_function_that_does_not_load_back_is_not_precompiled_cold_or_warm(
        run_plugin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injected (torch's loader raising in the cold run): the cold run knows what a warm run
    would meet, keeps the reason in the cache and compiles the plain way, like the warm run after it
    (no warning, nothing tried again), where before the cold run passed on a function no warm run
    could load."""
    cache, report = tmp_path / "cache", tmp_path / "r.json"
    real_load = torch.compiler.load_compiled_function

    def fake_load_that_refuses(stream):
        raise RuntimeError("compile artifacts are from another system")

    monkeypatch.setattr(torch.compiler, "load_compiled_function", fake_load_that_refuses)
    cold = run_session(run_plugin, MLP_TEST, cache, report)
    monkeypatch.setattr(torch.compiler, "load_compiled_function", real_load)
    warm = run_session(run_plugin, MLP_TEST, cache, report)
    for item in (cold, warm):
        [note] = [w for w in item["warnings"] if "not precompiled" in w]
        assert "its saved function could not be loaded back (RuntimeError: compile artifacts are from another " \
               "system)" in note
        assert item["call_path"]["kind"] == "TorchEngine > OptimizedModule"
        assert not any("could not be loaded and run" in w for w in item["warnings"])  # no CacheWarning
    assert entry_files(cache) == {precompile.NOT_PRECOMPILED_FILE}
    assert warm["cache"]["inductor"] == "hit"


def test_a_function_that_does_not_load_back_is_explained_without_torchs_advice_to_its_caller() -> None:
    """torch's "Please load AOT compiled function with f_globals=..." is advice to the code calling
    load_compiled_function (the plugin), shown to a newcomer as if it were theirs: the reason keeps torch's
    finding (the missing references) and says what it means."""
    from pytest_infercheck.backends.precompile import loading_reason

    error = RuntimeError("Missing required external references: ['___module_collections_140126601676816_c3', "
                         "'BaseModelOutput']. Please load AOT compiled function with `f_globals=<enclosing global "
                         "scope>`")
    reason = loading_reason(error)
    assert "f_globals" not in reason and "Please load" not in reason
    assert reason.startswith("RuntimeError: Missing required external references: ['___module_collections_")
    assert reason.endswith("which torch's precompile does not restore (a torch limit, not the model's)")
    assert loading_reason(ValueError("unpickling stack underflow")) == "ValueError: unpickling stack underflow"
