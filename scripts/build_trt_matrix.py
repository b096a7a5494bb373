#!/usr/bin/env python3
"""Derive pytest_infercheck/data/tensorrt-X.Y.json from TensorRT's ONNX operator tables.

    python scripts/build_trt_matrix.py [REFERENCE_DIR]   # default: ../shared/reference next to the repo

Each table (onnx-tensorrt's docs/operators.md at a TensorRT release) becomes one JSON file that
keeps the TensorRT version, the supported opset range, and per operator: Y/N, the supported types,
the restriction text, the original table row (so a test can check each verdict against it) and
the restrictions a graph walk can check, in machine form ("checks").  Restrictions without a
check are kept as text and listed in the audit as "not checked".
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "pytest_infercheck" / "data"
TABLE_FILE = re.compile(r"tensorrt-(?P<version>\d+\.\d+)-onnx-operators\.md$")
OPSET_RANGE = re.compile(r"opset (?P<low>\d+) to opset (?P<high>\d+)")
ROW = re.compile(r"^\|\s*(?P<op>[A-Za-z0-9_]+)\s*\|\s*(?P<flag>[YN])\s*\|(?P<rest>.*)$")

# Restriction phrases a graph walk can check, and the check each becomes.  The tables word the
# same rule several ways across releases ("an initializer", "a constant tensor", "resolvable to a
# constant", "a build-time constant"), and 10.1 spells is_training "is_traning".
CONSTANT_INPUT = re.compile(r"`(?P<first>[a-z_]+)`(?: and `(?P<second>[a-z_]+)`)? must be (?:an initializer|a constant tensor"
                            r"|resolvable to a constant|a build-time constant)")
# The tables call Dropout's third input is_training (10.1: "is_traning"); ONNX names it training_mode.
INPUT_ALIASES = {"is_training": "training_mode", "is_traning": "training_mode"}
ZERO_INPUT = re.compile(r"`(?P<input>[xy]_zero_point)` must be (?:zero|0)")
INPUT_BELOW = re.compile(r"`(?P<input>\w+)` input must be less than (?P<limit>\d+)")
POOL_RANK = re.compile(r"2D or 3D [Pp]ooling only")
ALL_ONES = re.compile(r"`(?P<attribute>\w+)` must be empty or all ones")
# "`sorted` must be 1", "`layout` attribute must be 0"; not "`update` must be 4D" nor zero-point inputs.
ATTRIBUTE_IS = re.compile(r"`(?P<attribute>(?!\w*zero_point)\w+)`(?: attribute)? must be (?P<value>\d+)(?![\dD])")
NO_OUTPUT = re.compile(r"`(?P<output>\w+)` output tensor unsupported")
FIRST_OUTPUT_ONLY = re.compile(r"Only the first output")
REDUCTION_NONE = re.compile(r"`reduction` (?:is not supported|other than `none` is not supported)")
ANTIALIAS = re.compile(r"Antialiasing is not supported")


def checks_for(restrictions: str) -> list[dict[str, Any]]:
    """The machine-checkable rules in one restriction text."""
    checks: list[dict[str, Any]] = []
    for match in CONSTANT_INPUT.finditer(restrictions):
        for name in filter(None, (match["first"], match["second"])):
            checks.append({"kind": "constant_input", "input": INPUT_ALIASES.get(name, name)})
    for match in ZERO_INPUT.finditer(restrictions):
        checks.append({"kind": "zero_input", "input": match["input"]})
    for match in INPUT_BELOW.finditer(restrictions):
        checks.append({"kind": "input_below", "input": match["input"], "limit": int(match["limit"])})
    if POOL_RANK.search(restrictions):
        checks.append({"kind": "spatial_rank", "allowed": [2, 3]})
    for match in ALL_ONES.finditer(restrictions):
        checks.append({"kind": "attribute_all_ones", "attribute": match["attribute"]})
    for match in ATTRIBUTE_IS.finditer(restrictions):
        checks.append({"kind": "attribute_equals", "attribute": match["attribute"], "value": int(match["value"])})
    for match in NO_OUTPUT.finditer(restrictions):
        checks.append({"kind": "unused_output", "output": match["output"]})
    if FIRST_OUTPUT_ONLY.search(restrictions):
        checks.append({"kind": "only_first_output"})
    if REDUCTION_NONE.search(restrictions):
        checks.append({"kind": "attribute_equals", "attribute": "reduction", "value": "none"})
    if ANTIALIAS.search(restrictions):
        checks.append({"kind": "attribute_equals", "attribute": "antialias", "value": 0})
    return checks


def parse_row(line: str) -> tuple[str, dict[str, Any]] | None:
    match = ROW.match(line.strip())
    if not match:
        return None
    cells = [cell.strip() for cell in match["rest"].split("|")]
    types = [t.strip() for t in cells[0].split(",") if t.strip()] if cells else []
    restrictions = " ".join(cell for cell in cells[1:] if cell).strip()
    return match["op"], {
        "supported": match["flag"] == "Y",
        "types": types,
        "restrictions": restrictions,
        "checks": checks_for(restrictions),
        "row": line.strip(),
    }


def parse_table(path: Path) -> dict[str, Any]:
    text = path.read_text()
    version = TABLE_FILE.search(path.name)["version"]
    opsets = OPSET_RANGE.search(text)
    operators = dict(row for row in map(parse_row, text.splitlines()) if row)
    return {
        "tensorrt_version": version,
        "source": f"onnx/onnx-tensorrt docs/operators.md as of TensorRT {version} (reference copy: {path.name})",
        "opset_min": int(opsets["low"]),
        "opset_max": int(opsets["high"]),
        "operators": dict(sorted(operators.items())),
    }


def main(argv: list[str]) -> int:
    reference = Path(argv[0]) if argv else ROOT.parent / "shared" / "reference"
    tables = sorted(p for p in reference.glob("tensorrt-*-onnx-operators.md") if TABLE_FILE.search(p.name))
    if not tables:
        print(f"no tensorrt-X.Y-onnx-operators.md tables in {reference}", file=sys.stderr)
        return 2
    DATA.mkdir(parents=True, exist_ok=True)
    for table in tables:
        matrix = parse_table(table)
        target = DATA / f"tensorrt-{matrix['tensorrt_version']}.json"
        target.write_text(json.dumps(matrix, indent=1) + "\n")
        supported = sum(op["supported"] for op in matrix["operators"].values())
        checked = sum(bool(op["checks"]) for op in matrix["operators"].values())
        print(f"{target.relative_to(ROOT)}: {len(matrix['operators'])} operators ({supported} supported, "
              f"{checked} with graph checks), opset {matrix['opset_min']}-{matrix['opset_max']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
