#!/usr/bin/env python3
"""ONNX Runtime's CUDA provider on the GPU machine: where its FP32 error comes from, and whether its CUDA graph runs.

The plugin's onnxruntime-fp32 engine on the H100 differed from eager FP32 (TF32 off) by a relative
error of 4.8e-4 on resnet50, with the provider option use_tf32=0 or without it: the size of TF32's
error.  This runs one resnet50 (batch 1, random weights) FP32 session per variant, each in its own
process since NVIDIA_TF32_OVERRIDE is read when cuBLAS/cuDNN start, and prints each variant's
relative error against eager FP32 with TF32 off; then times the provider with and without
``enable_cuda_graph`` through IO binding (host loop, synchronised), the way the plugin binds it.

    python scripts/ort_cuda_probe.py            (needs onnxruntime-gpu, torch with CUDA, torchvision)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [
    ("provider defaults", {}, {}),
    ("use_tf32=0", {"use_tf32": "0"}, {}),
    ("use_tf32=0, cudnn_conv_algo_search=DEFAULT", {"use_tf32": "0", "cudnn_conv_algo_search": "DEFAULT"}, {}),
    ("use_tf32=0 + NVIDIA_TF32_OVERRIDE=0", {"use_tf32": "0"}, {"NVIDIA_TF32_OVERRIDE": "0"}),
]


def export(work: Path) -> None:
    import numpy as np
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, (x,), str(work / "resnet50.onnx"), dynamo=False, input_names=["x"], output_names=["y"])
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.inference_mode():
        reference = model.cuda()(x.cuda()).cpu().numpy()
    np.save(work / "x.npy", x.numpy())
    np.save(work / "reference.npy", reference)


def variant(work: Path, options: dict[str, str]) -> None:
    import numpy as np
    __import__("torch")  # loads CUDA, cuDNN and cuBLAS for the provider, as the plugin does
    import onnxruntime

    session = onnxruntime.InferenceSession(str(work / "resnet50.onnx"), providers=["CUDAExecutionProvider"],
                                           provider_options=[options])
    out = session.run(None, {"x": np.load(work / "x.npy")})[0]
    reference = np.load(work / "reference.npy")
    error = float(np.linalg.norm(out - reference) / np.linalg.norm(reference))
    print(json.dumps({"rel_err": error, "providers": session.get_providers()}))


def graph_timing(work: Path) -> None:
    import torch

    from pytest_infercheck.backends.onnxruntime import OnnxRuntimeCudaEngine, create_session, provider_options

    x = torch.randn(1, 3, 224, 224, device="cuda")
    for graph in (False, True):
        stream = torch.cuda.Stream()
        options = provider_options(["CUDAExecutionProvider"], device="cuda", stream=stream, cuda_graph=graph,
                                   trt_cache_dir=None)
        engine = OnnxRuntimeCudaEngine(create_session(work / "resnet50.onnx", ["CUDAExecutionProvider"], options),
                                       "cuda", stream, graph)
        prepared = engine.prepare((x,))
        for _ in range(50):
            engine.run(prepared)
        stream.synchronize()
        start = time.perf_counter()
        for _ in range(500):
            engine.run(prepared)
        stream.synchronize()
        per_run = (time.perf_counter() - start) / 500 * 1e3
        events = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        with torch.cuda.stream(stream):
            events[0].record()
            for _ in range(200):
                engine.run(prepared)
            events[1].record()
        events[1].synchronize()
        print(f"enable_cuda_graph={int(graph)}: host loop {per_run:.3f} ms/run, "
              f"events on the engine stream {events[0].elapsed_time(events[1]) / 200:.3f} ms/run", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--variant":
        variant(Path(sys.argv[2]), json.loads(sys.argv[3]))
        return
    work = Path(tempfile.mkdtemp(prefix="ort-probe-"))
    export(work)
    for name, options, env in VARIANTS:
        child = subprocess.run([sys.executable, __file__, "--variant", str(work), json.dumps(options)],
                               env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"error": (child.stderr.strip().splitlines() or ["?"])[-1]}
        print(f"{name:45s} {json.dumps(result)}", flush=True)
    graph_timing(work)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
