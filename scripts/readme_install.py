#!/usr/bin/env python3
"""Run README.md's install steps, as written, in a clean virtual environment; then use the plugin.

    python3 scripts/readme_install.py [--torch-from-disk]

The block between ``<!-- install:begin -->`` and ``<!-- install:end -->`` runs line by line in one
bash script, in a temporary HOME, with ``<this repository>`` standing for this checkout (so the
clone is a real ``git clone`` of what is committed). ``--torch-from-disk`` (what .ci/run passes:
CI's machine reaches the Python package index but not PyTorch's CPU index) replaces the line that
installs torch from PyTorch's index by ``pip install torch==2.13.0+cpu``, the same CPU build from
the wheel file on that machine's disk, and so installs no torchvision. Afterwards the plugin must
import without importing torch and run a quick-start check (eager and ONNX Runtime) that passes.
Exit 0 when all of that worked.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKED = re.compile(r"<!-- install:begin -->\s*```bash\n(.*?)```\s*<!-- install:end -->", re.S)
TORCH_INDEX_LINE = re.compile(r"^python -m pip install torch==\S+ torchvision==\S+ --index-url \S+$")

QUICK_START = '''
import pytest, torch

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp32"])
def test_classifier_deploys(infercheck):
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    result = infercheck(model, torch.randn(2, 16))
    assert result.accuracy["output"].cosine > 0.99
'''

SMOKE = '''
import sys
import pytest_infercheck
assert "torch" not in sys.modules, "importing the plugin imported torch"
import torch
print("torch", torch.__version__)
'''


def install_lines(readme: str, *, torch_from_disk: bool) -> list[str]:
    match = MARKED.search(readme)
    if match is None:
        raise SystemExit("README.md has no install block between <!-- install:begin --> and <!-- install:end -->")
    lines = []
    for line in match.group(1).splitlines():
        command = line.split("  #")[0].strip()
        if not command or command.startswith("#"):
            continue
        if torch_from_disk and TORCH_INDEX_LINE.match(command):
            command = "python -m pip install torch==2.13.0+cpu  # in place of PyTorch's CPU index: see --torch-from-disk"
        lines.append(command)
    if torch_from_disk and not any("torch==2.13.0+cpu" in line for line in lines):
        raise SystemExit("--torch-from-disk: the README's torch line is not the expected form; update this script")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-from-disk", action="store_true")
    args = parser.parse_args()
    lines = install_lines((ROOT / "README.md").read_text(), torch_from_disk=args.torch_from_disk)
    with tempfile.TemporaryDirectory(prefix="readme-install-") as home:
        script = "\n".join(["set -euxo pipefail", *[line.replace("<this repository>", str(ROOT)) for line in lines],
                            f"python - <<'PY'\n{SMOKE}\nPY",
                            "mkdir -p quickstart && cd quickstart",
                            f"cat > test_deploy.py <<'PY'\n{QUICK_START}\nPY",
                            "python -m pytest -p no:cacheprovider -q test_deploy.py"])
        env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(HOME=home, PATH=os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                                   if ".venv" not in p))
        run = subprocess.run(["bash", "-c", script], cwd=home, env=env)
        print(f"readme_install: README's install steps {'worked' if run.returncode == 0 else 'FAILED'}"
              f"{' (torch from the wheel on disk, no torchvision)' if args.torch_from_disk else ''}")
        return run.returncode


if __name__ == "__main__":
    sys.exit(main())
