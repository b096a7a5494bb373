#!/usr/bin/env python3
"""How long the compatibility audit takes on a ~200-node model (target: under 5 s on the 2-core CPU machine).

    .venv/bin/python benchmarks/audit.py [--layers 5] [--repeats 3]

Prints, side by side, the audit of the exported .onnx file (ONNX checker, Polygraphy lint,
TensorRT static check with constant folding, ONNX Runtime placement, FP16 range) and of the torch module
(the same plus graph-break analysis, torch.export and the ONNX export), each stage's time, and
each total as a ratio of the 5 s target.  The best of --repeats runs is reported (the first run
of a process also pays for imports: shown separately).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=5, help="encoder layers (5 -> about 200 ONNX nodes)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    import onnx
    import torch

    from fixtures.models import TinyEncoder, token_inputs
    from pytest_infercheck.audit import audit
    from pytest_infercheck.model.export import export_onnx
    imports_s = time.perf_counter() - start

    torch.manual_seed(0)
    model, inputs = TinyEncoder(layers=args.layers).eval(), token_inputs()
    targets = ["tensorrt", "onnxruntime"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.onnx"
        onnx.save(export_onnx(model, (inputs,), dynamic_batch=False), str(path))
        runs = {"onnx file": lambda: audit(path, inputs, targets=targets),
                "torch module": lambda: audit(model, inputs, targets=targets)}
        results = {}
        for name, run in runs.items():
            timings = []
            for _ in range(args.repeats):
                begin = time.perf_counter()
                report = run()
                timings.append((time.perf_counter() - begin, report))
            results[name] = min(timings, key=lambda item: item[0])

    nodes = results["onnx file"][1].node_count
    print(f"audit of TinyEncoder(layers={args.layers}): {nodes} ONNX nodes, targets {', '.join(targets)}, "
          f"best of {args.repeats}; imports (once per process) {imports_s:.2f} s")
    stages = list(dict.fromkeys(s for _, report in results.values() for s in report.seconds))
    print(f"{'stage':<18}" + "".join(f"{name:>16}" for name in results))
    for stage in stages:
        print(f"{stage:<18}" + "".join(f"{report.seconds.get(stage, 0.0):>15.3f}s" for _, report in results.values()))
    print(f"{'total':<18}" + "".join(f"{seconds:>15.3f}s" for seconds, _ in results.values()))
    print(f"{'/ 5 s target':<18}" + "".join(f"{seconds / TARGET_S:>15.2f}x" for seconds, _ in results.values()))
    findings = {name: len(report.findings) for name, (_, report) in results.items()}
    print(f"findings: {findings} (a clean model: 0 expected)")
    return 0 if all(seconds < TARGET_S for seconds, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
