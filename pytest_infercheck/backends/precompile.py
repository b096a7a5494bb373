"""A warm start for Inductor engines that skips Dynamo: torch's ahead-of-time precompile.

Inductor's FX-graph cache makes a warm rerun skip code generation, but not Dynamo: every process
traces the model again before the cache can hit (1.5 s per resnet50 engine on the H200, most of a
warm rerun's build time). torch's precompile (``torch.compile(fn, fullgraph=True).aot_compile``,
saved with ``save_compiled_function`` and read back with ``torch.compiler.load_compiled_function``,
experimental since torch 2.10) serialises the traced function, its guards and Inductor's output,
so a warm rerun loads the compiled function instead of tracing.

It needs a whole graph (``fullgraph=True``) and the engine cache (Inductor's caches must be on);
without them, or where this torch lacks the API, the build traces and compiles as before, and the
reason is kept in the cache entry so that a warm rerun does not try again. Five differences from
``torch.compile(module)`` are handled here rather than left to surprise:

- The precompiled function is ``module.forward`` (``forward_of``, with the module an argument, where
  torch bakes the instance into the bound method: a top-level ``nn.Sequential``): the top-level
  module's own forward hooks would not run, so a module with such hooks is not precompiled.
  A model whose class is defined inside a function cannot be saved (torch guards on its type by name)
  and is compiled as before, with torch's reason kept.
- Its guards record the grad mode it was traced in; inference mode also changes the dispatch keys
  Dynamo guards on, so it is traced and run under ``torch.no_grad`` (``TorchEngine.no_grad``).
- Its guards do not see the code or the globals the forward reaches outside the model's classes
  (a helper or a constant in another module; torch drops guards on globals when it precompiles),
  which the cache key does not cover either (docs/usage.md): the files of every module Dynamo
  traced and of all the user's own code loaded are hashed beside it (``SOURCES_FILE``), and an
  entry whose files changed is stale and rebuilt, where ``torch.compile`` would have traced the
  new code. (The rebuild is cheap when the graph did not change: Inductor's FX-graph cache still
  has its code.)
- Its guards check global state too (torch's thread count, TF32): the backend keys the entry by
  both, so another setting gets an entry of its own rather than one refused at every call.
- It never recompiles: a call its guards refuse (another batch size in the max-batch search, where
  a batch of 1 was specialised) goes to a ``torch.compile`` of the module made on first need, as
  Dynamo's own recompile would.

A verdict must not depend on whether the cache was warm (issue 25), so the cold build runs what a
warm one will: the function it saved, loaded back (``load``), not the one it compiled. The two differ
in their wrappers (the loaded one's per-call path has a few Python calls fewer on the CPU), and only
the loaded one proves the entry loads and runs. ``load`` also keeps Inductor's compile-worker pool
from starting: every kernel a saved function needs is compiled already, yet the first Triton kernel
it declares would start the pool (a process that starts one worker per core, each importing torch),
whose start-up then shares the CPU with the timing that follows a load of a second or so. That is
the likely cause of the issue's warm engine running slower than the cold one on the H200 without a
CUDA graph only (it was launch-bound, the graph replay is not) and by a varying amount; it cannot
happen on a CPU-only torch, which has no Triton and so no such pool (docs/backends.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..core.memo import Memo

if TYPE_CHECKING:
    import torch

    from ..model.inputs import ModelInputs

FUNCTION_FILE = "forward.precompiled"
NOT_PRECOMPILED_FILE = "not-precompiled.txt"  # why this engine could not be precompiled
SOURCES_FILE = "source-files.json"  # the files whose change outdates the entry, with their SHA-256


def unsupported_reason(module: "torch.nn.Module") -> Optional[str]:
    """Why ``module`` cannot be precompiled by this torch, or None."""
    import torch
    from torch.nn.modules import module as nn_module

    if not hasattr(torch.compiler, "load_compiled_function") or not hasattr(torch._dynamo.config, "enable_aot_compile"):
        return f"torch {torch.__version__} has no precompile API (torch.compiler.load_compiled_function)"
    # The top module's hooks would not run around a precompiled forward; a submodule's are traced
    # into the graph, but which hook is registered is guarded by nothing once precompiled and no
    # cache key sees it: such models are compiled the plain way.
    hooked = [name for name, sub in module.named_modules() if sub._forward_hooks or sub._forward_pre_hooks]
    if hooked or nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks:
        where = ("the model" if hooked[0] == "" else f"submodule {hooked[0]!r}") if hooked else "a global module hook"
        return f"{where} has forward hooks, which a precompiled function would not check"
    return None


@dataclass
class PrecompiledForward:
    """Calls the precompiled ``forward`` with the module as ``self`` while its guards hold; a call
    they refuse goes to ``fallback``, a ``torch.compile`` of the module (which compiles on its
    first call, as Dynamo's own recompile would)."""

    compiled: Any  # torch._dynamo.aot_compile.AOTCompiledFunction
    module: "torch.nn.Module"
    fallback: Callable[..., Any]
    refused: int = 0  # calls the guards sent to the fallback (another host path: inductor.py says so)

    def __post_init__(self) -> None:
        self.compiled.disable_guard_check()  # checked here instead, where a refusal has somewhere to go

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled.guard_check(self.module, *args, **kwargs):
            return self.compiled(self.module, *args, **kwargs)
        self.refused += 1
        return self.fallback(*args, **kwargs)


def precompile(module: "torch.nn.Module", inputs: "ModelInputs", *, mode: Optional[str],
               dynamic: Optional[bool], module_as_argument: bool = False) -> Any:
    """Trace and compile ``module.forward`` on ``inputs`` (prepared as the engine's runs are) under
    ``torch.no_grad``: the AOTCompiledFunction, or an exception saying why not (a graph break...).
    ``module_as_argument``: through ``forward_of`` (for a module torch bakes into the bound method)."""
    import torch

    with ExitStack() as stack:
        stack.enter_context(torch._dynamo.config.patch(enable_aot_compile=True))  # off by default before 2.13
        if hasattr(torch._dynamo.config, "specialize_float"):
            # A dynamic-batch model with BatchNorm made aot_compile raise TensorifyScalarRestartAnalysis
            # (a restart torch.compile handles and aot_compile does not): float scalars stay constants.
            stack.enter_context(torch._dynamo.config.patch(specialize_float=True))
        stack.enter_context(torch.no_grad())
        if module_as_argument:
            compiled: Any = torch.compile(forward_of, fullgraph=True, mode=mode, dynamic=dynamic)
            return compiled.aot_compile(((module, *inputs.args), dict(inputs.kwargs)))
        compiled = torch.compile(module.forward, fullgraph=True, mode=mode, dynamic=dynamic)
        return compiled.aot_compile((tuple(inputs.args), dict(inputs.kwargs)))


def precompile_and_save(module: "torch.nn.Module", inputs: "ModelInputs", directory: Path, *, mode: Optional[str],
                        dynamic: Optional[bool]) -> None:
    """``precompile`` then ``save``; where torch baked the module instance into the bound forward and
    cannot save it (a top-level ``nn.Sequential``), again with the module an argument (``forward_of``)."""
    try:
        save(precompile(module, inputs, mode=mode, dynamic=dynamic), directory)
    except ModuleBakedIn:
        save(precompile(module, inputs, mode=mode, dynamic=dynamic, module_as_argument=True), directory)


def forward_of(module: "torch.nn.Module", *args: Any, **kwargs: Any) -> Any:
    """``module``'s own forward, the module an argument of the compiled function rather than a value
    baked into it.  Precompiling the bound ``module.forward`` works for a model of the user's own class
    (Dynamo takes ``self`` as an input) but not for torch's built-in containers: for a top-level
    ``nn.Sequential`` Dynamo bakes the instance in, and torch cannot save it ("Failed to serialize the
    following objects: [Sequential(...)]"), so every warm rerun traced again (seen on the H100 and on
    the CPU, 2026-12-07).  Through this function the model is an argument, saved by its structure's
    guards and called with the engine's own copy (``PrecompiledForward``).  Used only where the bound
    forward cannot be saved, so every model that precompiled before keeps the function it had.  Checked
    on the CPU: a Sequential of a user block reading ``F.gelu`` and a module constant loads and runs
    in a new process with eager's result, and editing the constant outdates the entry (``stale_reason``).
    Not ``module(...)``: the top-level module's hooks would be traced into the function; a hooked
    module is not precompiled."""
    return type(module).forward(module, *args, **kwargs)


class ModuleBakedIn(Exception):
    """torch refused to save a compiled function because a module instance is baked into it."""


# The last few compiled functions this process loaded, by their serialised bytes' hash: an engine's
# CUDA-graph twin uses the same function (its module, holding the weights, is passed at each call)
# without loading it again (0.7-0.8 s for resnet50 on the H200).
RECENT = Memo(size=4)


class NotLoadable(Exception):
    """A function just precompiled and saved could not be loaded back: a warm run could not load it either."""


def save(compiled: Any, directory: Path) -> None:
    """Save ``compiled`` and the files it depends on into ``directory``, then load it back (``load``):
    the cold engine runs the loaded function, as every warm run will. Raises ``NotLoadable`` when it
    does not load."""
    files = source_files({source.module for source in compiled.source_info().inlined_sources})
    (directory / SOURCES_FILE).write_text(json.dumps(files, indent=0), encoding="utf-8")
    try:
        compiled.save_compiled_function(str(directory / FUNCTION_FILE))
    except RuntimeError as exc:
        # torch's pickler refuses exactly the nn.Module instances it meets (AOTCompilePickler.persistent_id)
        if "Failed to serialize the following objects" in str(exc):
            raise ModuleBakedIn(str(exc)) from exc
        raise
    try:
        load(directory)
    except Exception as exc:
        raise NotLoadable(f"its saved function could not be loaded back ({loading_reason(exc)})") from exc


# torch's advice when a saved function refers to globals of the tracing process: meant for the caller of
# load_compiled_function (this module), not for the user, and not enough here (Dynamo's own generated globals,
# named after object ids of the tracing process, are among them).
F_GLOBALS_ADVICE = re.compile(r"\.?\s*Please load AOT compiled function with `f_globals=[^`]*`\.?")


def loading_reason(exc: BaseException) -> str:
    """Why a saved function did not load, in the user's terms."""
    said = short_reason(exc)
    reason = F_GLOBALS_ADVICE.sub("", said)
    if reason != said:
        reason += (": the traced forward refers to objects of the process that traced it, which torch's "
                   "precompile does not restore (a torch limit, not the model's)")
    return reason


def source_files(traced_modules: set[str]) -> list[dict[str, str]]:
    """The files whose change must outdate a precompiled function, with their SHA-256: every module
    Dynamo traced a function of (whole files: a module constant or a class attribute beside the
    function is read by the graph but guarded by nothing once precompiled), and every module of the
    user's own code loaded now (a constant in a module none of whose functions was traced).
    torch's own modules are left out: its version is in the cache key."""
    import sys
    import sysconfig

    installed = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    chosen: dict[str, Path] = {}
    for name, module in list(sys.modules.items()):
        path = _source_path(module)
        if path is None or name.split(".")[0] in ("torch", "pytest_infercheck"):
            continue
        if name in traced_modules or not any(root == path or root in path.parents for root in installed):
            chosen[name] = path
    return [{"module": name, "path": str(path), "sha256": _file_sha256(path)} for name, path in sorted(chosen.items())]


def _source_path(module: Any) -> Optional[Path]:
    file = getattr(module, "__file__", None)
    if not file or not str(file).endswith(".py"):
        return None
    path = Path(file).resolve()
    return path if path.is_file() else None


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stale_reason(directory: Path) -> Optional[str]:
    """Which source file changed since this entry was precompiled, or None (a not-precompiled entry
    is never stale: it holds no code). Raises ``cache.DamagedEntry`` for a side file that does not
    parse, so the cache rebuilds the entry with a warning instead of failing every run on it."""
    _check_reason_file(directory / NOT_PRECOMPILED_FILE)
    path = directory / SOURCES_FILE
    if not path.is_file():
        return None
    for source in _recorded_sources(path):
        try:
            digest = _file_sha256(Path(source["path"]))
        except OSError as exc:
            return f"{source['path']} cannot be read ({type(exc).__name__})"
        if digest != source["sha256"]:
            return f"{source['path']} changed"
    return None


def _recorded_sources(path: Path) -> list[dict[str, str]]:
    """``SOURCES_FILE``, checked. Its checksum in meta.json can match while it does not parse (damaged
    before meta.json was written, or written by another version): that is a damaged entry."""
    from ..core.codec import load_json
    from .cache import DamagedEntry

    try:
        sources = load_json(path)
        if not isinstance(sources, list) or not all(
                isinstance(source, dict) and isinstance(source.get("path"), str) and source["path"]
                and isinstance(source.get("sha256"), str) for source in sources):
            raise ValueError("expected a list of {path, sha256} records")
    except ValueError as err:  # codec.DecodeError (unreadable, not UTF-8, not JSON), or another shape
        raise DamagedEntry(f"{path.name} is damaged: {err}") from None
    return sources


def _check_reason_file(path: Path) -> None:
    """``NOT_PRECOMPILED_FILE``, if there, must read as text: it is shown as the reason on every run."""
    from .cache import DamagedEntry

    try:
        path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return
    except (OSError, ValueError) as err:
        raise DamagedEntry(f"{path.name} is damaged: {err}") from None


def load(directory: Path) -> Any:
    """The saved function in ``directory``, deserialised once per process (``RECENT``), without
    starting Inductor's compile workers (``without_compile_workers``)."""
    import torch

    data = (directory / FUNCTION_FILE).read_bytes()

    def deserialise() -> Any:
        with without_compile_workers():
            return torch.compiler.load_compiled_function(io.BytesIO(data))

    return RECENT.get_or(hashlib.sha256(data).hexdigest(), deserialise)


def without_compile_workers() -> Any:
    """Inductor's settings while a saved function loads: one compile thread, so that the kernels it
    declares are taken from what was compiled (the bundled kernels, Triton's cache) in this process
    instead of starting the compile-worker pool, whose start-up (a worker per core importing torch)
    would overlap the timing that follows."""
    import torch

    config = torch._inductor.config
    return config.patch(compile_threads=1) if hasattr(config, "compile_threads") else ExitStack()


def recorded_reason(directory: Path) -> Optional[str]:
    """Why the engine in this cache entry was not precompiled, or None when it was."""
    path = directory / NOT_PRECOMPILED_FILE
    return path.read_text(encoding="utf-8") if path.is_file() else None


def record_reason(directory: Path, reason: str) -> None:
    (directory / NOT_PRECOMPILED_FILE).write_text(reason, encoding="utf-8")


def transient(exc: BaseException) -> bool:
    """Whether a failed precompile says something about this machine now (out of memory, a full
    disk), not about the model: not to be kept as the reason it cannot be precompiled. Inductor
    wraps what its compile raised (InductorError.inner_exception, __cause__)."""
    import torch

    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (torch.OutOfMemoryError, MemoryError, OSError)):
            return True
        current = getattr(current, "inner_exception", None) or current.__cause__ or current.__context__
    return False


# torch's words for a precompile limit, and what they mean to the user (said after them).
KNOWN_LIMITS = {
    "ID_MATCH guard cannot be serialized": (
        "the traced forward checks an object by its identity (an ID_MATCH guard: a module, a function or a "
        "config object it reads, as transformers models do), which torch's precompile cannot save; a torch "
        "limit, not the model's: the engine is the same, only a warm rerun compiles it again"),
}


def short_reason(exc: BaseException) -> str:
    """The first line of a compile error: Dynamo's graph-break messages run to dozens of lines; for a known
    precompile limit (KNOWN_LIMITS), what it means."""
    text = str(exc).strip().splitlines()
    said = f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")
    meaning = next((meaning for words, meaning in KNOWN_LIMITS.items() if words in said), None)
    return f"{said.rstrip('.')}: {meaning}" if meaning else said
