"""Where each setting comes from, and which source wins.

Precedence, lowest to highest: built-in default < ini file < command line < marker < fixture call.
The ini file and the command line describe the run; the marker and the call describe one test,
and the more specific source wins.  Every resolved value remembers its source, and the JSON
report lists them, so "why was this budget 30ms?" has an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from .options import OPTIONS, TEST_LEVEL_EXTRA, Budget, OptionError, ini_name, parse_value

# What a marker may set: the engine matrix plus every per-test setting.
COLLECTION_KEYS = ("backends", "precisions", "cuda_graphs")
TEST_KEYS = ("budget", "device", "warmup", "min_iters", "max_iters", "min_time", "tf32", "compile_mode",
             "build_timeout", "time_transfers", "max_regression", "accuracy_factor", "accuracy_floor",
             *TEST_LEVEL_EXTRA)
MARKER_KEYS = COLLECTION_KEYS + TEST_KEYS + ("tolerances",)
CALL_KEYS = TEST_KEYS + ("tolerances",)

Layer = tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class CheckSettings:
    """The resolved settings of one check, each with the source that set it."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    tolerances: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def budget(self) -> Optional[Budget]:
        return self.values.get("budget")

    def describe(self) -> dict[str, dict[str, Any]]:
        return {name: {"value": str(value) if isinstance(value, Budget) else value, "source": self.sources[name]}
                for name, value in self.values.items()}


def default_layer() -> Layer:
    return ("default", {option.name: option.default for option in OPTIONS} | {
        "atol": None, "rtol": None, "max_mismatch": None, "min_cosine": None, "max_rel_l2": None, "dynamic_batch": False,
        "allow_ops": (), "allow_nodes": ()})


def config_layers(config: Any) -> list[Layer]:
    """Default, ini and command-line layers; a bad ini value is an OptionError naming the ini key."""
    ini: dict[str, Any] = {}
    cli: dict[str, Any] = {}
    for option in OPTIONS:
        raw = config.getini(ini_name(option))
        if option.is_flag:
            if raw != bool(option.default):
                ini[option.name] = raw
        elif raw not in (None, "", []):
            try:
                ini[option.name] = option.parse(raw)
            except OptionError as err:
                raise OptionError(f"ini option {ini_name(option)} = {raw!r}: {err}") from None
        value = config.getoption(option.name, default=None)
        if value is not None:
            cli[option.name] = value
    return [default_layer(), ("ini file", ini), ("command line", cli)]


def parse_layer(source: str, given: Mapping[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
    """Validate a marker's or a call's keywords with the same parsers as the command line."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise OptionError(f"{source}: unknown setting(s) {', '.join(unknown)}; accepted: {', '.join(allowed)}")
    parsed = {}
    for name, value in given.items():
        if value is None:
            continue
        if name == "tolerances":
            parsed[name] = _parse_tolerances(source, value)
        else:
            parsed[name] = parse_value(name, value, source)
    return parsed


def _parse_tolerances(source: str, value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise OptionError(f"{source} tolerances: expected {{output name: {{atol: ..., rtol: ...}}}}, got {value!r}")
    allowed = ("atol", "rtol", "max_mismatch", "min_cosine", "max_rel_l2")
    parsed = {}
    for output, fields_ in value.items():
        if not isinstance(fields_, Mapping) or set(fields_) - set(allowed):
            raise OptionError(f"{source} tolerances[{output!r}]: expected a dict with keys from {', '.join(allowed)}")
        parsed[str(output)] = {k: parse_value(k, v, f"{source} tolerances[{output!r}]") for k, v in fields_.items()}
    return parsed


def resolve(layers: Sequence[Layer]) -> CheckSettings:
    """Later layers override earlier ones, key by key; per-output tolerances merge per output."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    tolerances: dict[str, dict[str, Any]] = {}
    for source, layer in layers:
        for name, value in layer.items():
            if name == "tolerances":
                for output, fields_ in value.items():
                    tolerances.setdefault(output, {}).update(fields_)
                continue
            values[name] = value
            sources[name] = source
    return CheckSettings(values, sources, tolerances)
