"""Artifacts built from the model, made lazily and kept in the engine cache.

Backends ask for what they need (``onnx_path()``, or ``derived(...)`` for
their own converted or compiled files); each is made at most once per model content and
recorded as a cache hit or miss for the summary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

from .cache import CachedEntry, EngineCache, cache_key
from .environment import engine_code_digest, library_versions
from ..model.export import DYNAMO, ExportError, export_model_onnx
from ..model.under_test import ModelUnderTest

ONNX_FILE = "model.onnx"
EXPORT_FILE = "export.json"  # which exporter made model.onnx, and why the first one failed


class ModelArtifacts:
    """One check's artifacts: made once per check and shared by the audit, the build and divergence.

    ``failed_exports`` is the run's (session.RunState): an export that failed fails the same way for
    every engine of the same model, so it is remembered rather than paid for again in each item.
    """

    def __init__(self, model: ModelUnderTest, cache: EngineCache,
                 failed_exports: Optional[dict[str, ExportError]] = None) -> None:
        self.model = model
        self.cache = cache
        self.failed_exports = {} if failed_exports is None else failed_exports
        self.cache_states: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        # {"exporter": ..., "fallback_reason": ...} once onnx_path() has run: for the result's extra
        self.export_info: dict[str, Any] = {}

    def key(self, kind: str, **parts: Any) -> str:
        """A cache key for an artifact of this model: content hash, kind, parts, library versions and the
        plugin's own engine-making code (environment.engine_code_digest)."""
        return cache_key(kind=kind, model=self.model.engine_key, versions=library_versions(),
                         plugin_code=engine_code_digest(), **parts)

    def derived(self, kind: str, build: Callable[[Path], None], *, record: bool = True,
                stale: Optional[Callable[[Path], Optional[str]]] = None, **key_parts: Any) -> CachedEntry:
        """A cached artifact directory that ``build`` fills; timed and recorded under ``kind``
        (``record=False``: a by-product such as the audit's findings, not an artifact of the build;
        ``stale``: see EngineCache.get_or_build)."""
        start = time.perf_counter()
        entry = self.cache.get_or_build(self.key(kind, **key_parts), build, what=f"{kind} of {self.model.name}",
                                        stale=stale)
        if not record:
            return entry
        # The first request for a kind decides its state and time: a later one in the same item (the
        # audit gate's export, then the build's) finds what the first made, which is no cache hit.
        self.cache_states.setdefault(kind, "hit" if entry.hit else ("miss" if self.cache.enabled else "off"))
        self.seconds.setdefault(kind, time.perf_counter() - start)
        return entry

    def onnx_path(self) -> Path:
        """The FP32 ONNX export (``torch.onnx.export``, dynamo exporter)."""
        failure_key = self.key("onnx")
        if failure_key in self.failed_exports:
            raise self.failed_exports[failure_key]

        def build(directory: Path) -> None:
            import onnx

            export = export_model_onnx(self.model.module, self.model.inputs, dynamic_batch=self.model.dynamic_batch)
            onnx.save(export.proto, str(directory / ONNX_FILE))
            (directory / EXPORT_FILE).write_text(json.dumps(
                {"exporter": export.exporter, "fallback_reason": export.fallback_reason,
                 "frozen_values": list(export.frozen_values)}))

        try:
            entry = self.derived("onnx", build)
            self.export_info = _read_export_info(entry.path / EXPORT_FILE)
            return entry.file(ONNX_FILE)
        except ExportError as err:
            self.failed_exports[failure_key] = err
            raise

    def onnx_input_names(self) -> Optional[list[str]]:
        import onnx

        proto = onnx.load(str(self.onnx_path()), load_external_data=False)
        initializers = {init.name for init in proto.graph.initializer}
        return [inp.name for inp in proto.graph.input if inp.name not in initializers]


def _read_export_info(path: Path) -> dict[str, Any]:
    """An entry made before export.json existed was made by the dynamo exporter."""
    from ..core.codec import load_json

    try:
        data = load_json(path)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError:  # codec.DecodeError: missing, unreadable, not JSON
        return {"exporter": DYNAMO, "fallback_reason": None, "frozen_values": []}
    return {"exporter": str(data.get("exporter") or DYNAMO), "fallback_reason": data.get("fallback_reason"),
            "frozen_values": list(data.get("frozen_values") or [])}


def device_target(device: str) -> str:
    """What a compiled artifact is tied to: ``cpu``, or the GPU's name and compute capability.

    Part of the cache key of every GPU artifact, so an engine built for one GPU is never loaded on
    another (a TensorRT plan or an AOTInductor package holds kernels for one architecture).
    """
    if not device.startswith("cuda"):
        return "cpu"
    import torch

    index = torch.device(device).index
    props = torch.cuda.get_device_properties(torch.cuda.current_device() if index is None else index)
    return f"cuda:{props.name}:sm_{props.major}{props.minor}"
