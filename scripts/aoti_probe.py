#!/usr/bin/env python3
"""Which AOTInductor compile/load sequence crashes on this GPU machine?  Each variant in its own process.

aoti_load_package segfaulted inside the plugin on the H100 (torch 2.11+cu130); this finds the
trigger by running the canonical sequence and the plugin's sequence apart, each in a subprocess so
a crash ends only that variant.  Prints one line per variant: exit status and the last output line.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CANONICAL = """
import sys, torch
from fixtures.models import small_cnn, cnn_inputs
torch.manual_seed(0)
model, x = small_cnn().cuda(), cnn_inputs().cuda()
ep = torch.export.export(model, (x,))
path = torch._inductor.aoti_compile_and_package(ep, package_path=sys.argv[1])
print("compiled", flush=True)
if sys.argv[2] == "load":
    loaded = torch._inductor.aoti_load_package(path)
    print("loaded", flush=True)
    print("max diff", (loaded(x) - model(x)).abs().max().item(), flush=True)
"""

LOAD_ONLY = """
import sys, torch
from fixtures.models import small_cnn, cnn_inputs
torch.manual_seed(0)
model, x = small_cnn().cuda(), cnn_inputs().cuda()
loaded = torch._inductor.aoti_load_package(sys.argv[1])
print("loaded in a fresh process", flush=True)
print("max diff", (loaded(x) - model(x)).abs().max().item(), flush=True)
"""

PLUGIN_BACKEND = """
import sys, torch
from pathlib import Path
from fixtures.models import small_cnn, cnn_inputs
from pytest_infercheck.artifacts import ModelArtifacts
from pytest_infercheck.backends.aoti import AotiBackend
from pytest_infercheck.backends.base import BuildRequest
from pytest_infercheck.cache import EngineCache
from pytest_infercheck.model import ModelUnderTest
from pytest_infercheck.spec import EngineSpec
torch.manual_seed(0)
mut = ModelUnderTest.create(small_cnn(), cnn_inputs())
request = BuildRequest(spec=EngineSpec("aoti", sys.argv[2]), device="cuda",
                       artifacts=ModelArtifacts(mut, EngineCache(Path(sys.argv[1]))))
engine = AotiBackend().build(request)
print("built and loaded", flush=True)
print("output", engine.to_numpy(engine.run(engine.prepare(mut.inputs)))[0].shape, flush=True)
"""


def run(name: str, code: str, *args: str) -> None:
    result = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code, *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    crash = next((line for line in lines if "Fatal Python error" in line or "Error" in line), "")
    print(f"{name}: exit {result.returncode}; last: {lines[-1] if lines else ''} {('| ' + crash) if crash else ''}",
          flush=True)
    if result.returncode != 0:
        print("\n".join(lines[-25:]))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="aoti-probe-"))
    package = str(work / "canonical.pt2")
    run("canonical compile only", CANONICAL, package, "no-load")
    run("load in a fresh process", LOAD_ONLY, package)
    run("canonical compile + load in one process", CANONICAL, str(work / "second.pt2"), "load")
    run("plugin backend fp32", PLUGIN_BACKEND, str(work / "cache"), "fp32")


if __name__ == "__main__":
    main()
