#!/usr/bin/env python3
"""Which AOTInductor compile/load sequence crashes on this GPU machine, and where?  Each variant in its own process.

aoti_load_package segfaulted inside the plugin on the H100 (torch 2.11+cu130), even for the
canonical compile-then-load of a small CNN.  This separates the suspects, each in a subprocess so a
crash ends only that variant: a CPU package (is it the CUDA runtime or AOTInductor as a whole?), the
loaded package's shared library and what it links against (compiler and ABI), and a native
backtrace of the crashing load under cuda-gdb, which the GPU machine has (it has no gdb).
Prints one line per variant: exit status and the last output line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMPILE = """
import sys, torch
from fixtures.models import small_cnn, cnn_inputs
torch.manual_seed(0)
device = sys.argv[2]
model, x = small_cnn().to(device), cnn_inputs().to(device)
ep = torch.export.export(model, (x,))
path = torch._inductor.aoti_compile_and_package(ep, package_path=sys.argv[1])
print("compiled", path, flush=True)
if sys.argv[3] == "load":
    loaded = torch._inductor.aoti_load_package(path)
    print("loaded", flush=True)
    print("max diff", (loaded(x) - model(x)).abs().max().item(), flush=True)
"""

LOAD_ONLY = "import sys, torch; torch._inductor.aoti_load_package(sys.argv[1]); print('loaded in a fresh process', flush=True)"


def run(name: str, command: list[str], timeout: int = 300) -> str:
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{name}: timed out after {timeout} s", flush=True)
        return ""
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    print(f"{name}: exit {result.returncode}; last: {lines[-1] if lines else ''}", flush=True)
    if result.returncode != 0:
        print("\n".join(lines[-30:]), flush=True)
    return output


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-X", "faulthandler", "-c", code, *args]


def describe_library(package: Path) -> None:
    """The compiled .so inside the package: what it links against and which compiler built it."""
    work = Path(tempfile.mkdtemp(prefix="aoti-so-"))
    with zipfile.ZipFile(package) as archive:
        names = [n for n in archive.namelist() if n.endswith(".so")]
        print("package members (.so):", names, flush=True)
        for name in names:
            archive.extract(name, work)
    for library in work.rglob("*.so"):
        # All of ldd's lines: whether libstdc++ is linked dynamically is the question (run() keeps only the last).
        linked = subprocess.run(["ldd", str(library)], capture_output=True, text=True)
        print(f"ldd {library.name}:\n{linked.stdout.rstrip()}", flush=True)
        if shutil.which("readelf"):
            comment = subprocess.run(["readelf", "-p", ".comment", str(library)], capture_output=True, text=True)
            print("built by:", " ".join(comment.stdout.split())[:300], flush=True)


def main() -> None:
    """``aoti_probe.py`` runs every variant; ``aoti_probe.py backtrace`` only compiles the CPU package and
    loads it under cuda-gdb (the variants' first run on the H100 used up its time before getting there)."""
    backtrace_only = sys.argv[1:] == ["backtrace"]
    work = Path(tempfile.mkdtemp(prefix="aoti-probe-"))
    cpu_package = str(work / "cpu.pt2")
    if backtrace_only:
        run("CPU package: compile only", python(COMPILE, cpu_package, "cpu", "no-load"))
        backtrace(cpu_package)
        return
    for tool in ("gcc", "g++", "c++", "clang", "cuda-gdb"):
        print(tool, shutil.which(tool), flush=True)
    run("g++ --version", ["g++", "--version"])
    import torch
    print("torch", torch.__version__, "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI, flush=True)

    run("CPU package: compile + load in one process", python(COMPILE, cpu_package, "cpu", "load"))
    cuda_package = str(work / "cuda.pt2")
    run("CUDA package: compile only", python(COMPILE, cuda_package, "cuda", "no-load"))
    if Path(cuda_package).exists():
        describe_library(Path(cuda_package))
        run("CUDA package: load in a fresh process", python(LOAD_ONLY, cuda_package))
        run("CUDA package: load after torch.cuda.init()",
            python("import sys, torch; torch.cuda.init(); torch.zeros(1, device='cuda'); "
                   "torch._inductor.aoti_load_package(sys.argv[1]); print('loaded', flush=True)", cuda_package))
        backtrace(cuda_package)


def backtrace(package: str) -> None:
    """The native frames of the crashing load, from cuda-gdb (the GPU machine has no gdb)."""
    if not Path(package).exists() or not shutil.which("cuda-gdb"):
        print("no package or no cuda-gdb: no backtrace", flush=True)
        return
    output = run("load under cuda-gdb", ["cuda-gdb", "-batch", "-ex", "set pagination off", "-ex", "run", "-ex", "bt 40",
                                         "--args", sys.executable, "-c", LOAD_ONLY, package], timeout=400)
    frames = [line for line in output.splitlines() if line.startswith("#") or "SIGSEGV" in line]
    print("backtrace:\n" + "\n".join(frames[:45]), flush=True)


if __name__ == "__main__":
    main()
