"""What a newcomer's model repo hit (issue 22): each case runs the plugin for real through pytester."""

from __future__ import annotations

import json
from pathlib import Path


def test_build_seconds_count_the_export_an_onnx_engine_needed(run_plugin, tmp_path: Path) -> None:
    """Every forward sleeps, so the export (which traces it) takes at least that long: an ONNX engine's
    build seconds include it, as an Inductor engine's include the trace its compile makes."""
    report = tmp_path / "report.json"
    result = run_plugin(
        """
import time, pytest, torch

class SlowToTrace(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        time.sleep(0.4)
        return self.fc(x)

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"], min_time=0.01, max_time=0.05)
def test_slow(infercheck):
    infercheck(SlowToTrace().eval(), torch.randn(2, 4))
""", "--infer-device=cpu", "--infer-no-cache", f"--infer-report={report}")
    result.assert_outcomes(passed=1)
    (only,) = json.loads(report.read_text())["results"]
    assert only["build_seconds"] >= 0.4, only["build_seconds"]
