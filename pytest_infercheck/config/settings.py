"""Where each setting comes from, and which source wins: the frozen ``Settings`` of one check.

Precedence, lowest to highest: built-in default < ini file < command line < marker < fixture call.
The ini file and the command line describe the run; the marker and the call describe one test,
and the more specific source wins.  Every resolved value remembers its source, and the JSON
report lists them, so "why was this budget 30ms?" has an answer.

``Settings`` has one typed field per row of the option table (options.OPTIONS), which holds every
default: a new option is a row there and a typed field here, and a unit test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Sequence

from .options import OPTIONS, OPTIONS_BY_NAME, Budget, OptionError, Scope, ini_name, parse_value
from ..core.spec import EngineSpec

# Which keys each source may set, read off the option table's scopes.
MATRIX_KEYS = tuple(option.name for option in OPTIONS if option.scope == Scope.MATRIX)
TEST_KEYS = tuple(option.name for option in OPTIONS if option.scope == Scope.TEST)
CALL_KEYS = TEST_KEYS + ("tolerances",)
MARKER_KEYS = MATRIX_KEYS + CALL_KEYS
MATRIX_SPELLING = ("backends", "precisions", "cuda_graphs")  # the matrix keys other than ``engines``

Layer = tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one check: one typed field per row of the option table, each with its source.

    Hand-written so that every field has its real type; the values and their defaults come from the
    option table (options.OPTIONS, the one home of every default: ``Settings.defaults()``), and
    tests/unit/test_settings.py fails when the two disagree.
    """

    # what is checked (the matrix)
    backends: tuple[str, ...]
    precisions: tuple[str, ...]
    cuda_graphs: tuple[bool, ...]
    engines: Optional[tuple[EngineSpec, ...]]
    device: str
    # accuracy
    atol: Optional[float]
    rtol: Optional[float]
    max_mismatch: Optional[float]
    min_cosine: Optional[float]
    max_rel_l2: Optional[float]
    tf32: bool
    dynamic_batch: bool
    allow_nondeterministic: bool
    allow_degenerate: tuple[str, ...]
    int8_ops: tuple[str, ...]  # the ONNX operator types ONNX Runtime's INT8 recipe quantizes
    keep_fp32: tuple[str, ...]  # PyTorch module names kept in FP32 in a reduced-precision engine
    fp8_granularity: str  # "row" or "tensor": torchao's FP8 scales (backends/torchao_quant.py)
    repair_precision: bool  # on an accuracy failure, search the modules to keep in FP32 (check/repair.py)
    repair_time: float  # the repair's time cap, seconds
    allow_ops: tuple[str, ...]
    allow_nodes: tuple[str, ...]
    # latency
    budget: Optional[Budget]
    warmup: int
    min_iters: int
    max_iters: int
    min_time: float
    max_time: float
    ci_width: float
    confidence: float
    time_transfers: bool
    threads: Any  # "auto", or a positive int (parsers.parse_threads)
    profile: bool
    max_batch_search: int
    # builds and the cache
    compile_mode: str
    build_timeout: float
    trt_target: str
    cache_dir: Optional[str]
    no_cache: bool
    seed: int
    # the gate
    baseline: Optional[str]
    baseline_update: bool
    baseline_strict: bool
    baseline_across_versions: bool
    max_regression: float
    kernel_tolerance: float
    accuracy_factor: float
    accuracy_floor: float
    # reports and the run
    report: Optional[str]
    markdown: Optional[str]
    html: Optional[str]
    gpus: Optional[tuple[int, ...]]
    xdist_groups: str
    # per-output tolerances ({output: {atol: ...}}) and where each value came from
    tolerances: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def defaults(cls) -> "Settings":
        """Every option at its table default (what a check gets with no ini, flag, marker or call)."""
        return cls(**{option.name: option.default for option in OPTIONS})

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every setting with its value and source, JSON-ready (the report's ``settings``)."""
        described = {}
        for option in OPTIONS:
            value = getattr(self, option.name)
            if isinstance(value, Budget):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) if not isinstance(v, (bool, int, float, str)) else v for v in value]
            described[option.name] = {"value": value, "source": self.sources.get(option.name, "default")}
        # Per-output tolerances are no option of the table (a marker or call key only): listed too, with the
        # layer(s) that set them, so a report says where a bound that failed an output came from.
        described["tolerances"] = {"value": {output: dict(fields_) for output, fields_ in self.tolerances.items()},
                                   "source": self.sources.get("tolerances", "default")}
        return described


def config_layers(config: Any) -> list[Layer]:
    """Ini and command-line layers; a bad ini value is an OptionError naming the ini key."""
    ini: dict[str, Any] = {}
    cli: dict[str, Any] = {}
    for option in OPTIONS:
        if not option.flag:
            continue
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
    return [("ini file", ini), ("command line", cli)]


def parse_layer(source: str, given: Mapping[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
    """Validate a marker's or a call's keywords with the same parsers as the command line."""
    unknown = sorted(set(given) - set(allowed))
    matrix = [name for name in unknown if name in MATRIX_KEYS]
    if matrix:  # the engine matrix in the infercheck() call: known, but decided before the test runs
        raise OptionError(f"{source}: {', '.join(matrix)} cannot be given here: the engines a test checks are its "
                          "items, fixed at collection, before the test runs; give them in the marker, "
                          f"@pytest.mark.infercheck({matrix[0]}=[...]), or on the command line")
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


TOLERANCE_KEYS = ("atol", "rtol", "max_mismatch", "min_cosine", "max_rel_l2")


def _parse_tolerances(source: str, value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise OptionError(f"{source} tolerances: expected {{output name: {{atol: ..., rtol: ...}}}}, got {value!r}")
    parsed = {}
    for output, fields_ in value.items():
        if not isinstance(fields_, Mapping):
            raise OptionError(f"{source} tolerances[{output!r}]: expected a dict with keys from "
                              f"{', '.join(TOLERANCE_KEYS)}, got {fields_!r}")
        unknown = sorted(map(str, set(fields_) - set(TOLERANCE_KEYS)))
        if unknown:
            import difflib

            named = "; ".join(f"{key!r}" + (f" (did you mean {close[0]!r}?)"
                                            if (close := difflib.get_close_matches(key, TOLERANCE_KEYS, n=1)) else "")
                              for key in unknown)
            raise OptionError(f"{source} tolerances[{output!r}]: unknown key {named}; the keys are "
                              f"{', '.join(TOLERANCE_KEYS)}")
        parsed[str(output)] = {k: parse_value(k, v, f"{source} tolerances[{output!r}]") for k, v in fields_.items()}
    return parsed


def resolve(layers: Sequence[Layer]) -> Settings:
    """Later layers override earlier ones, key by key; per-output tolerances merge per output."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    tolerances: dict[str, dict[str, Any]] = {}
    tolerance_layers: list[str] = []  # per-output tolerances merge, so every layer that gave some is their source
    for source, layer in layers:
        # The engine matrix is one setting spelt two ways: ``engines`` or backends x precisions x cuda_graphs.
        # A layer that spells it one way drops the other spelling of farther layers, so the nearest layer that
        # names engines decides them (a marker's backends beat --infer-engines, a test's engines a module's).
        both = [name for name in MATRIX_SPELLING if name in layer]
        if "engines" in layer and both:  # one source, both spellings: which was meant cannot be told
            def spelt(name: str) -> str:  # as the source spells it: a marker's key, the command line's flag
                return name if source in ("marker", "fixture call") else str(OPTIONS_BY_NAME[name].flag or name)

            raise SettingsConflict(f"{spelt('engines')} and {', '.join(map(spelt, both))} spell the same engine matrix "
                                   f"two ways in the {source}: give {spelt('engines')} (e.g. "
                                   f"onnxruntime-fp16,eager-fp32), or {spelt('backends')} and {spelt('precisions')}, "
                                   "not both")
        if "engines" in layer:
            for name in MATRIX_SPELLING:
                values.pop(name, None)
                sources.pop(name, None)
        elif any(name in layer for name in MATRIX_SPELLING):
            values.pop("engines", None)
            sources.pop("engines", None)
        for name, value in layer.items():
            if name == "tolerances":
                for output, fields_ in value.items():
                    tolerances.setdefault(output, {}).update(fields_)
                tolerance_layers += [source] if value else []
                continue
            if name not in OPTIONS_BY_NAME:
                raise OptionError(f"{source}: unknown setting {name!r}")
            values[name] = value
            sources[name] = source
    if tolerance_layers:
        sources["tolerances"] = ", ".join(dict.fromkeys(tolerance_layers))
    settings = replace(Settings.defaults(), **values, tolerances=tolerances, sources=sources)
    contradiction = floor_over_cap(settings)
    if contradiction:
        raise SettingsConflict(contradiction)
    return settings


class SettingsConflict(OptionError):
    """Settings each valid alone that contradict each other (whichever layers gave them)."""


# A floor set above its cap is a setting the sampler would silently not honour: the cap stops first.
# A cap set below a default floor is not: the user asked for the cap, and the cap wins (docs/latency.md).
FLOORS_AND_CAPS = (("min_iters", "max_iters"), ("min_time", "max_time"))


def floor_over_cap(settings: Settings) -> Optional[str]:
    """Why a floor the user set is above its cap (each named with the layer that set it), or None."""
    for floor, cap in FLOORS_AND_CAPS:
        low, high = getattr(settings, floor), getattr(settings, cap)
        if floor in settings.sources and low is not None and high is not None and low > high:
            return (f"{_named(floor, low, settings)} is above {_named(cap, high, settings)}: sampling would stop at the "
                    f"cap before the floor is reached; raise {cap} or lower {floor}")
    return None


def _named(name: str, value: Any, settings: Settings) -> str:
    """``--infer-min-time=2.0 (ini file)`` or, set in a marker or the call, ``min_time=2.0 (marker)``."""
    source = settings.sources.get(name, "default")
    spelt = name if source in ("marker", "fixture call") else OPTIONS_BY_NAME[name].flag
    return f"{spelt}={value} ({source})"
