"""``--infer-device=cuda`` on a machine where torch sees no CUDA device: a usage error, not a green run.

Without this check every item skipped with "CUDA is not available" and the session exited 0, so
a CI job that lost its GPU (a driver update, a runner without the device mapped) stayed green.
``auto`` still falls back to the CPU: that is what it means.
"""

from __future__ import annotations

import os
from typing import Optional


def check_device_available(device: str) -> Optional[str]:
    """Why ``device`` (a parsed ``--infer-device`` value) cannot be used here, naming the option; None if it can.

    Imports torch only for ``cuda``: ``auto`` and ``cpu`` need nothing checked.
    """
    if device != "cuda":
        return None
    import torch

    if torch.cuda.is_available():
        return None
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU-only build)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    masked = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    return (f"--infer-device=cuda: torch sees no CUDA device (torch {torch.__version__} built with {build}{masked}); "
            "run on a machine with an NVIDIA GPU and a CUDA build of torch, or use --infer-device=auto or cpu")
