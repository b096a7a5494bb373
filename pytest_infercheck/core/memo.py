"""A small least-recently-used memo: the run's shared references and timings (session.RunState) and
the Inductor warm start's recent entries (backends/precompile.py) both keep one."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable


class Memo:
    """A small LRU of values made on first use (reference outputs and timings shared by a test's items)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: OrderedDict[Any, Any] = OrderedDict()

    def get_or(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self.values:
            self.values.move_to_end(key)
            return self.values[key]
        return self.put(key, make())

    def put(self, key: Any, value: Any) -> Any:
        self.values[key] = value
        self.values.move_to_end(key)
        while len(self.values) > self.size:
            self.values.popitem(last=False)
        return value

    def clear(self) -> None:
        self.values.clear()
