"""A quicker exit for a process that ran checks: the interpreter's final garbage collections skip the heap.

Once torch, Inductor, Triton and a model zoo (transformers, torchvision) are loaded, the collections
the interpreter runs while it shuts down walk millions of objects: 1.2-2.2 s per process on the lent
H200 host (benchmarks/process_costs.py, docs/benchmarks.md), after the last item, in every xdist worker
(the controller waits for the last one) and in a plain run alike. ``gc.freeze()`` moves every object
alive into the permanent generation, which those collections skip; the memory goes back to the
operating system with the process.

What that gives up: an object that is still alive in a reference cycle when the process exits is not
finalized (its ``__del__`` does not run), which Python does not promise either. pytest's own
collection for unraisable exceptions comes before (at unconfigure), and atexit handlers, ``weakref``
finalizers and open files' flushing do not depend on the collector.
"""

from __future__ import annotations

import atexit
import gc

_registered = False  # once per process: pytester's in-process runs configure the plugin many times


def skip_final_collections_at_exit() -> None:
    """Freeze the heap at interpreter exit (an atexit handler, registered once per process)."""
    global _registered
    if not _registered:
        _registered = True
        atexit.register(gc.freeze)
