"""Keeping a test's engines that share one build on one xdist worker (``--infer-xdist-groups``).

An engine with and without a CUDA graph (``inductor-fp16`` and ``inductor-fp16-cudagraph``) is one
compile: run one after the other on one worker, the second loads the first's result from the cache
in a second.  xdist's ``--dist load`` hands such a pair to two workers at once, and the second
waits for the first one's compile behind the cache's compile lock: on the H200 pair, BERT-base's
Inductor pairs left a worker idle 9 s each.  (``--dist loadgroup`` with ``xdist_group`` marks would
do it, but pytest 9.2 ignores the node-id suffix xdist 3.8 groups by.)

So, where it applies, the plugin gives xdist its own scheduler: xdist's ``LoadScopeScheduling``
with one scope per (test, backend, precision) for infercheck items and one per item for every
other test.  It applies with ``--dist load`` (what ``-n N`` means) and ``on``, or ``auto`` when the
workers are spread over several GPUs (``gpus.py``): there the items are builds and timings of
seconds each; a suite of many millisecond tests keeps xdist's chunked ``load`` scheduling, which
sends them in batches rather than one scope at a time.
"""

from __future__ import annotations

import os
from typing import Any, Optional

def engine_scope(nodeid: str) -> str:
    """``path::test::backend-precision`` for an infercheck item's node id, else the node id itself.

    With the test's own parameters as well (``test_a[8-inductor-fp16-cudagraph]``, in either order),
    they stay in the scope: ``path::test[8]::inductor-fp16``, so that each parameter set's engine
    and its CUDA-graph twin go to one worker."""
    from ..backends import split_item_id

    test, spec = split_item_id(nodeid)
    if spec is None:  # another test, scheduled alone as by load
        return nodeid
    return f"{test}::{spec.backend}-{spec.precision}"


def plain_nodeid(nodeid: str) -> str:
    """``nodeid`` without the ``@group`` that xdist's ``--dist loadgroup`` appends to a test marked
    ``xdist_group`` (with pytest < 9.2; pytest 9.2 ignores xdist 3.8's rename): results, reports and
    the baseline name an item the same however the run was distributed."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") else nodeid


def wanted(config: Any, setting: str, gpus: Optional[Any]) -> bool:
    """Whether this controller schedules by engine scope: ``--dist load`` and ``on``, or ``auto`` with
    the workers spread over two GPUs or more."""
    if config.getvalue("dist") != "load" or setting == "off":
        return False
    if setting == "on":
        return True
    from ..core.gpus import choose_gpus, visible_gpus

    try:
        return len(choose_gpus(gpus, visible_gpus(os.environ))) >= 2
    except ValueError:  # a bad --infer-gpus is reported as a usage error at configure
        return False


def make_scheduler(config: Any, log: Any) -> Any:
    """xdist's scope scheduler, its scopes being ``engine_scope``."""
    from xdist.scheduler import LoadScopeScheduling

    class EngineScopeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return engine_scope(nodeid)

    return EngineScopeScheduling(config, log)
