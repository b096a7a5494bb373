"""The engines benchmarks/warm_cold.py times cold (built in the run) and warm (loaded from the cache).

Launch-bound models (host work per call dominates, where a slower warm path would show): gate_aa's
ConvMixer and tiny decoder, an MLP, and on CUDA torchvision's ConvNeXt-tiny (issue 25's model), at
batch 1.  Each through the precompiled Inductor engine, and the MLP also through the plain one (a
no-op forward pre-hook makes it not precompilable: torch.compile with Inductor's FX-graph cache).
(gate_aa's MLP is an nn.Sequential, which torch 2.13 does not precompile.)

Beside the plugin's JSON report, an autouse fixture appends one JSON line per item to
$WARM_COLD_PROBE: the CPU seconds this process's child processes spent during the item and during
its timed loops and their wall-clock windows (Inductor's compile workers starting up beside a timing show there), how many child
processes were alive when a timing began, and whether Inductor's compile-worker pool exists.  WARM_COLD_UNFIXED=1 loads precompiled functions as before
issue 25's fix (the pool may start): the A/B that says whether the fix is the cause.
"""

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate_aa"))
from test_aa_models import ConvMixer, TinyDecoder  # noqa: E402

ON_CUDA = torch.cuda.is_available()
ENGINES = (["eager-fp16", "eager-fp16-cudagraph", "inductor-fp16", "inductor-fp16-cudagraph", "inductor-fp32"] if ON_CUDA
           else ["eager-fp32", "inductor-fp32"])
pytestmark = pytest.mark.infercheck(engines=ENGINES)

if os.environ.get("WARM_COLD_UNFIXED") == "1":
    from pytest_infercheck.backends import precompile

    precompile.without_compile_workers = contextlib.nullcontext  # the load as it was: the pool may start


def _descendants() -> tuple[int, float]:
    """How many live descendants this process has, and their CPU seconds (user + system, with their
    reaped children's) plus this process's reaped children's."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(value) for value in fields[11:15]) / tick  # utime stime cutime cstime
    mine, frontier = set(), [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in mine]
        mine.update(children)
        frontier.extend(children)
    own = os.times()
    return len(mine), sum(times[pid] for pid in mine) + own.children_user + own.children_system


TIMINGS: list[dict[str, float]] = []  # per timed loop of this process: child processes beside it
PATHS: list[dict[str, int]] = []  # per timed item: the Python functions one call entered, with counts
if Path("/proc/self/stat").exists():
    from pytest_infercheck.check import latency as _latency

    _real_measure = _latency.measure

    def _measure_beside_children(*args, **kwargs):
        processes, before = _descendants()
        started = time.time()
        try:
            return _real_measure(*args, **kwargs)
        finally:
            TIMINGS.append({"processes": processes, "cpu_s": _descendants()[1] - before,
                            "window": [started, time.time()]})

    _latency.measure = _measure_beside_children  # check/flow.py calls latency.measure at run time

    from pytest_infercheck.measure import call_path as _call_path

    _real_path = _call_path.measure

    def _path_with_rows(engine, call):
        """call_path.measure, after one more call counted by function (call_path.python_calls), so that two
        runs whose digests differ can say which functions did (the plugin keeps only the digest).  The
        counted call is the one before the digest's: the same engine in the same state, a call apart."""
        counts = _call_path.python_calls(call) or {}
        PATHS.append({f"{file}:{function}": count for (file, function), count in counts.items()})
        return _real_path(engine, call)

    _call_path.measure = _path_with_rows


def _is_autotuner(obj, module) -> bool:
    try:
        return isinstance(obj, module.CachingAutotuner)
    except Exception:  # noqa: BLE001 - a proxy that raises on __class__
        return False


def _kernels() -> dict[str, str]:
    """Every Inductor Triton kernel alive in this process: its launcher's class and the config it runs
    (after any autotuning), by kernel name; on CUDA only (empty elsewhere).  Defensive throughout: some
    objects gc holds raise on isinstance (proxies), and autotuner fields move between torch releases."""
    module = sys.modules.get("torch._inductor.runtime.triton_heuristics")
    if module is None or not ON_CUDA:
        return {}
    import gc
    import warnings

    found = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance on deprecated objects warns (an error under pytest's filters)
        objects = [obj for obj in gc.get_objects() if _is_autotuner(obj, module)]
    for obj in objects:
        try:
            meta = getattr(obj, "inductor_meta", None) or {}
            name = str(meta.get("kernel_name") or getattr(getattr(obj, "fn", None), "__name__", "?"))
            source = getattr(obj, "filename", None)  # the generated module's file: names repeat across graphs
            name += f" @{os.path.basename(source)}" if source else ""
            launchers = list(getattr(obj, "launchers", None) or [])
            # Inductor clears `configs` once compiled and cuts `launchers` to the best after autotuning:
            # the compiled variants and the time spent autotuning say whether a choice was made here.
            variants = len(getattr(obj, "compile_results", None) or [])
            tuned_ns = getattr(obj, "autotune_time_taken_ns", None)
            text = (f"{variants} compiled; autotuned {tuned_ns} ns; " + "; ".join(
                f"{type(launcher).__name__} {getattr(launcher, 'config', '?')}" for launcher in launchers))
            found[name] = f"{found[name]} || {text}" if name in found else text  # several objects, one kernel
        except Exception as exc:  # noqa: BLE001 - a probe: one odd object must not fail the item
            found.setdefault("<unreadable>", f"{type(exc).__name__}: {exc}"[:200])
    return found


def _pool_state() -> str:
    compile_module = sys.modules.get("torch._inductor.async_compile")
    if compile_module is None:
        return "inductor not loaded"
    pools = len(getattr(compile_module, "_pool_set", ()))
    ready = getattr(getattr(compile_module, "AsyncCompile", None), "_ready_future", None)
    return f"{pools} pool(s)" + ("" if ready is None else f", ready={ready.done()}")


@pytest.fixture(autouse=True)
def _probe(request):
    path = os.environ.get("WARM_COLD_PROBE")
    if not path or not Path("/proc/self/stat").exists():
        yield
        return
    before_cpu, before_pool, start, timed = _descendants()[1], _pool_state(), time.perf_counter(), len(TIMINGS)
    paths_before = len(PATHS)
    yield
    mine = TIMINGS[timed:]
    record = {"nodeid": request.node.nodeid, "children_cpu_s": round(_descendants()[1] - before_cpu, 2),
              "timing_children_cpu_s": round(sum(t["cpu_s"] for t in mine), 2),
              "timing_child_processes": max((t["processes"] for t in mine), default=0),
              "timed_windows": [t["window"] for t in mine],
              "path_rows": PATHS[-1] if len(PATHS) > paths_before else {},
              "kernels": _kernels() if os.environ.get("WARM_COLD_KERNELS") == "1" else {},
              "pool_before": before_pool, "pool_after": _pool_state(), "item_s": round(time.perf_counter() - start, 2)}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


class MLP(torch.nn.Module):
    """Linear layers with GELU at batch 1: little compute per call, so host work shows."""

    def __init__(self, width: int = 256, depth: int = 4) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(depth))
        self.head = torch.nn.Linear(width, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.nn.functional.gelu(layer(x))
        return self.head(x)


class Hooked(MLP):
    """The MLP with a no-op forward pre-hook: not precompilable, so Inductor's plain path."""

    def __init__(self) -> None:
        super().__init__()
        self.register_forward_pre_hook(lambda module, args: None)


def test_convmixer(infercheck):
    torch.manual_seed(0)
    infercheck(ConvMixer().eval(), torch.randn(1, 3, 64, 64))


@pytest.mark.skipif(not ON_CUDA, reason="the A/A's batch-8 ConvMixer: its CUDA graph is the one in question")
def test_convmixer_b8(infercheck):
    """gate_aa's ConvMixer at its batch of 8: on the H100 its inductor-fp16 CUDA graph ran 2% faster cold
    than warm (docs/benchmarks.md), the one cold/warm difference the A/A saw."""
    torch.manual_seed(0)
    infercheck(ConvMixer().eval(), torch.randn(8, 3, 64, 64))


def test_tiny_decoder(infercheck):
    torch.manual_seed(0)
    infercheck(TinyDecoder().eval(), torch.randint(0, 1000, (1, 32)))


def test_mlp(infercheck):
    torch.manual_seed(0)
    infercheck(MLP().eval(), torch.randn(1, 256))


def test_mlp_plain_inductor(infercheck):
    torch.manual_seed(0)
    infercheck(Hooked().eval(), torch.randn(1, 256))


@pytest.mark.skipif(not ON_CUDA, reason="ConvNeXt-tiny is timed on CUDA only (minutes to compile on this CPU)")
def test_convnext_tiny(infercheck):
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    infercheck(models.convnext_tiny(weights=None).eval(), torch.randn(1, 3, 224, 224))
