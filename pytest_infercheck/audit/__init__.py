"""Compatibility audit: which operators each backend cannot run, where, and why.

Stages (one module each): torch_stage (torch.export, graph breaks, data-dependent control flow,
operators the ONNX exporter cannot translate), onnx_stage (onnx.checker, Polygraphy's check lint),
tensorrt_live (TensorRT's ONNX parser through Polygraphy, where tensorrt imports), tensorrt_static
(the versioned support matrix, where it does not), ort_placement (per-node execution-provider
placement).  runner.audit() runs them and returns an AuditReport; render.py prints it.

Importing this package imports neither torch, onnx nor any engine.
"""

from __future__ import annotations

from .findings import AuditReport, Finding

__all__ = ["AuditReport", "Finding", "audit", "tensorrt_findings"]


def __getattr__(name: str):
    if name == "audit":
        from .runner import audit

        return audit
    if name == "tensorrt_findings":
        from .tensorrt_live import tensorrt_findings

        return tensorrt_findings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
