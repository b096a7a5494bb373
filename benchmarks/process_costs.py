"""Where a GPU process's fixed seconds go: Inductor's first compile, and the process's exit (issue 15).

    python benchmarks/process_costs.py [--model resnet50|small] [--idle 6]

Runs one child process per variant, each on a fresh interpreter and a fresh Inductor cache, and prints
seconds side by side:

- ``plain``: compile a model with Inductor (FP16), then a second (BF16): the first pays Inductor's
  start-up, the second does not;
- ``warm-pool``: the same, after starting Inductor's compile-worker pool and then idling ``--idle``
  seconds (what a worker's first eager items would give it), to see how much of the first compile's
  extra time is the pool starting;
- the exit of each child: from its last line to the process being gone, as its parent sees it, and
  how much of it was Inductor's pool shutting down (timed in an atexit handler) and the rest
  (the interpreter's final garbage collections, module teardown, CUDA's teardown);
- ``freeze``: ``plain`` with ``gc.freeze()`` at exit, so that the final collections skip the heap.

A probe, not a test: its point is a CUDA GPU with Triton (``--device cpu`` only tries the script out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import atexit, json, os, sys, time
marks = {}
def mark(name): marks[name] = time.time()
mark("start")
import torch
mark("torch")
variant, idle, model_name, device = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
torch.zeros(1, device=device); sync()
mark("cuda")
if variant == "warm-pool":
    from torch._inductor.async_compile import maybe_warm_pool
    maybe_warm_pool()
    mark("pool-asked")
    time.sleep(idle)
    mark("idled")

def build():
    if model_name == "resnet50":
        import torchvision
        return torchvision.models.resnet50(weights=None).eval().to(device)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3)).eval().to(device)

x = torch.randn(8, 3, 224, 224, device=device)
for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
    model = build().to(dtype)
    torch._dynamo.reset()
    compiled = torch.compile(model)
    with torch.no_grad():
        compiled(x.to(dtype)); sync()
    mark("compiled-" + name)
sync()
mark("done")

def pool_down():
    from torch._inductor.async_compile import shutdown_compile_workers
    start = time.time(); shutdown_compile_workers(); marks["pool-shutdown-s"] = time.time() - start
    if variant == "freeze":  # what is left of the exit when the final collections skip the heap
        import gc; gc.freeze()
    marks["atexit-end"] = time.time()
    print("MARKS " + json.dumps(marks), flush=True)
atexit.register(pool_down)  # registered last, runs first: before Inductor's own handler (a no-op after it)
"""


def run_child(variant: str, idle: float, model: str, device: str) -> dict[str, float]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="probe-inductor-"),
           "TRITON_CACHE_DIR": tempfile.mkdtemp(prefix="probe-triton-")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, variant, str(idle), model, device], env=env,
                             stdout=subprocess.PIPE, text=True)
    marks: dict[str, float] = {}
    for line in child.stdout:
        if line.startswith("MARKS "):
            marks = json.loads(line[6:])
    child.wait()
    marks["gone"] = time.time()
    if child.returncode or "done" not in marks:
        raise SystemExit(f"{variant}: child exited {child.returncode}")
    return marks


def row(variant: str, marks: dict[str, float]) -> str:
    before_first = marks.get("idled", marks["cuda"])
    first = marks["compiled-fp16"] - before_first
    second = marks["compiled-bf16"] - marks["compiled-fp16"]
    return (f"| {variant} | {marks['torch'] - marks['start']:.2f} | {marks['cuda'] - marks['torch']:.2f} | "
            f"{marks.get('pool-asked', marks['cuda']) - marks['cuda']:.2f} | {first:.2f} | {second:.2f} | "
            f"{first - second:.2f} | {marks['pool-shutdown-s']:.2f} | {marks['gone'] - marks['atexit-end']:.2f} | "
            f"{marks['gone'] - marks['done']:.2f} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("resnet50", "small"), default="resnet50")
    parser.add_argument("--idle", type=float, default=6.0, help="seconds between starting the pool and compiling")
    parser.add_argument("--device", default="cuda", help="cuda (the point), or cpu to try the script out")
    args = parser.parse_args(argv)
    print("| variant | import torch | CUDA start | ask for pool | 1st compile | 2nd compile | 1st - 2nd | "
          "pool shutdown at exit | rest of exit | exit after last line |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant in ("plain", "warm-pool", "freeze", "warm-pool", "plain"):
        print(row(variant, run_child(variant, args.idle, args.model, args.device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
