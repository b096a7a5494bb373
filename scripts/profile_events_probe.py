#!/usr/bin/env python3
"""What torch.profiler's events look like on CUDA (a probe for measure/profile_events.py, issue 25 item 5).

Eager ConvNeXt-ish blocks with the module ranges the plugin opens: prints, for the first kernels, the
fields profile_events links on (id, linked_correlation_id, device_type, cpu_parent), and the aten
operators they should link to; then the plugin's own table's module share.  GPU only.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from pytest_infercheck.measure import profile_events as pe
from pytest_infercheck.measure.profiling import _module_ranges, profile_torch

model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(10)).cuda().eval()
x = torch.randn(2, 3, 32, 32, device="cuda")
with torch.inference_mode():
    model(x)
    remove = _module_ranges(model)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        with record_function(pe.ITERATION_RANGE):
            model(x)
        torch.cuda.synchronize()
    remove()
events = list(prof.events())
print("events", len(events))
for e in events:
    kind = getattr(getattr(e, "device_type", None), "name", None)
    parent = getattr(e, "cpu_parent", None)
    print(f"{kind:5} id={getattr(e, 'id', None)!s:6} linked={getattr(e, 'linked_correlation_id', None)!s:6} "
          f"async={getattr(e, 'is_async', None)} annot={getattr(e, 'is_user_annotation', None)} "
          f"act={getattr(e, 'activity_type', None)} parent={getattr(parent, 'name', None)!s:30.30} name={e.name[:60]}")
mine = pe.from_function_events(events)
print("device events", sum(1 for e in mine if e.device), "with a launcher",
      sum(1 for e in mine if e.device and any(c.correlation == e.correlation and not c.device for c in mine)))
with torch.inference_mode():
    table = profile_torch(lambda: model(x), model, cuda=True, iterations=5)
print(f"rows with a module: {table.mapped_share():.1%} of the rows' time")
for row in table.rows[:8]:
    print(row)
