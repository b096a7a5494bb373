"""How outputs are named, and how a user may name them.

An output's full name is its path in the model's output: ``output`` for a lone tensor,
``output[0]`` in a tuple, ``output['logits']`` in a dict or a Hugging Face ``ModelOutput``.  Users
write the short name (``logits``, ``last_hidden_state``) in tolerances and ``result.accuracy[...]``;
both forms are accepted wherever an output is named, and a short name that fits two outputs is an
error that lists them.
"""

from __future__ import annotations

import re
from typing import Sequence

_LAST_KEY = re.compile(r"\[(?:'(?P<key>[^']*)'|\"(?P<dkey>[^\"]*)\"|(?P<index>\d+))\]$")


def short_name(full: str) -> str:
    """``output['logits']`` -> ``logits``; ``output[0]['x']`` -> ``x``; ``output`` stays."""
    match = _LAST_KEY.search(full)
    if not match:
        return full
    return match["key"] if match["key"] is not None else (match["dkey"] if match["dkey"] is not None else full)


def resolve(name: str, outputs: Sequence[str]) -> str:
    """The full name ``name`` stands for among ``outputs``; KeyError naming them when none or several fit."""
    if name in outputs:
        return name
    matches = [full for full in outputs if short_name(full) == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise KeyError(f"output name {name!r} is ambiguous: it fits {', '.join(matches)}; use the full name")
    raise KeyError(f"no output named {name!r}; outputs: {', '.join(outputs)}")


def unknown_names(names: Sequence[str], outputs: Sequence[str]) -> list[str]:
    """The given names that fit no output (for a message that lists the real ones)."""
    unknown = []
    for name in names:
        try:
            resolve(name, outputs)
        except KeyError:
            unknown.append(name)
    return unknown
