"""Run the newcomer trial's model repo through pytest-infercheck and print its matrix.

    python benchmarks/newcomer_trial/run.py [--out DIR] [--engines LIST] [--group NAME] [-- extra pytest args]
    python benchmarks/newcomer_trial/run.py --matrix-only --out DIR [--out DIR2 ...]

--group runs one slice of the models (GROUPS below), so that each run fits a 10-minute command on a
GPU machine; --matrix-only prints one matrix from the reports of earlier runs.

Engines: on the CPU eager/Inductor/AOTInductor FP32 and ONNX Runtime FP32/FP16/INT8; on CUDA also
eager and Inductor FP16/BF16 and CUDA-graph variants.  Writes DIR/report.json, DIR/report.html and
DIR/junit.xml, then prints model x engine (passed / failed(stage) / skipped(stage)) and one line per
failure with the first line of its message.  Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPU_ENGINES = ["eager-fp32", "inductor-fp32", "aoti-fp32", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8"]
CUDA_EXTRA = ["eager-fp16", "eager-bf16", "inductor-fp16", "inductor-bf16",
              "eager-fp32-cudagraph", "eager-fp16-cudagraph", "inductor-fp16-cudagraph", "onnxruntime-fp16-cudagraph"]
GROUPS = {
    "tv-detection": "ssdlite or fcos",
    "tv-dense": "lraspp or torchvision_classifier",
    "timm": "test_timm",
    "hf-encoders": "roberta or albert or electra or deberta",
    "hf-decoders": "opt_decoder or qwen2 or bart",
    "hf-vision-audio": "clip_vision or wav2vec2 or segformer",
}
# Short, quick timing: the trial is about verdicts, not figures.
FAST = ["--infer-warmup=2", "--infer-min-iters=5", "--infer-min-time=0.05s", "--infer-max-time=0.3s"]


def default_engines() -> list[str]:
    import torch

    return CPU_ENGINES + (CUDA_EXTRA if torch.cuda.is_available() else [])


def junit_outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """Test name (``test_x[engine-params]``) -> (outcome, message) from pytest's JUnit XML."""
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(path).iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error"}.get(tag, "skipped")
                message = node.get("message") or (node.text or "")
                break
        outcomes[case.get("name", "")] = (outcome, message)
    return outcomes


def split_name(name: str, engines: list[str]) -> tuple[str, str]:
    """``test_x[eager-fp32-a-b]`` -> (``test_x[a-b]``, ``eager-fp32``)."""
    base, _, params = name.partition("[")
    params = params.rstrip("]")
    for engine in sorted(engines, key=len, reverse=True):
        if params == engine or params.startswith(engine + "-"):
            rest = params[len(engine) + 1:]
            return (f"{base}[{rest}]" if rest else base), engine
    return name, "?"


def first_line(text: str) -> str:
    """The reason's first line, with the line after it when it ends in a colon (its subject follows)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # The plugin's message starts with "infercheck <engine> on <device> (<model>) failed:"; the reason follows.
    if len(lines) > 1 and lines[0].startswith("infercheck ") and lines[0].endswith(":"):
        lines = lines[1:]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""


def plugin_args() -> list[str]:
    """``-p pytest_infercheck.plugin`` where the plugin is importable but not installed (PYTHONPATH=checkout)."""
    from importlib.metadata import entry_points

    installed = any(ep.name == "infercheck" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "pytest_infercheck.plugin"]


def matrix(outs: list[Path], engines: list[str]) -> list[str]:
    results: dict[str, dict] = {}
    outcomes: dict[str, tuple[str, str]] = {}
    for out in outs:
        if (out / "report.json").exists():
            results.update((r["nodeid"].split("::", 1)[1], r) for r in json.loads((out / "report.json").read_text())["results"])
        if (out / "junit.xml").exists():
            outcomes.update(junit_outcomes(out / "junit.xml"))
    engines = engines + sorted({r["spec_id"] for r in results.values()} - set(engines))  # e.g. an earlier run's
    cells: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for name, (outcome, message) in outcomes.items():
        model, engine = split_name(name, engines)
        result = results.get(name)
        stage = (result or {}).get("stage") or ""
        if result is None and outcome == "skipped":
            cell = "skip(test)"  # skipped before the check ran: a missing library
        elif outcome in ("failed", "error"):
            cell = f"FAIL({stage or outcome})"
            problems.append(f"{name}: [{stage or outcome}] {first_line((result or {}).get('message') or message)}")
        elif outcome == "skipped":
            cell = f"skip({stage})" if stage else "skip"
            problems.append(f"{name}: [skipped {stage}] {first_line((result or {}).get('message') or message)}")
        else:
            cell = "pass"
        cells.setdefault(model, {})[engine] = cell
    used = [e for e in engines if any(e in row for row in cells.values())]
    width = max([len(m) for m in cells] + [5])
    lines = [" ".join([f"{'model':<{width}}"] + [f"{e:>{max(len(e), 12)}}" for e in used])]
    for model in sorted(cells):
        lines.append(" ".join([f"{model:<{width}}"] + [f"{cells[model].get(e, '-'):>{max(len(e), 12)}}" for e in used]))
    counts: dict[str, int] = {}
    for row in cells.values():
        for cell in row.values():
            key = cell.split("(")[0]
            counts[key] = counts.get(key, 0) + 1
    lines.append("totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return lines + ([""] + problems if problems else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, action="append",
                        help="output folder (default newcomer-trial-out); repeat with --matrix-only")
    parser.add_argument("--group", choices=sorted(GROUPS), action="append", help="run only these models (repeatable)")
    parser.add_argument("--engines", help="comma-separated engine ids (default: by device)")
    parser.add_argument("--matrix-only", action="store_true", help="print the matrix of an earlier run's --out")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest (e.g. -k roberta)")
    args = parser.parse_args(argv)
    engines = args.engines.split(",") if args.engines else default_engines()
    outs = [out.resolve() for out in (args.out or [Path("newcomer-trial-out")])]
    out = outs[0]
    report, junit = out / "report.json", out / "junit.xml"
    select = ["-k", " or ".join(f"({GROUPS[g]})" for g in args.group)] if args.group else []
    code = 0
    if not args.matrix_only:
        out.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pytest", str(HERE / "test_models.py"), "-c", str(HERE / "pytest.ini"),
                   "--rootdir", str(HERE), "-o", f"cache_dir={out / '.pytest_cache'}", "-p", "no:randomly", *plugin_args(),
                   f"--infer-engines={','.join(engines)}", f"--infer-report={report}", f"--infer-html={out / 'report.html'}",
                   f"--junitxml={junit}", "-rfEs", *FAST, *select, *args.pytest_args]
        print("$", " ".join(command), flush=True)
        code = subprocess.call(command, env=dict(os.environ))
    if args.matrix_only and not args.engines:  # the engines the reports have, whatever this machine is
        engines = CPU_ENGINES + CUDA_EXTRA
    print("\n".join(matrix(outs, engines)))
    return code


if __name__ == "__main__":
    sys.exit(main())
