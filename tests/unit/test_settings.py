"""The typed Settings class and the option table agree: one field per option, of the parser's type,
and every default (the table's) is a value of that type."""

from __future__ import annotations

import dataclasses
import typing

from pytest_infercheck.config.options import OPTIONS
from pytest_infercheck.config.settings import Settings, resolve

EXTRA_FIELDS = {"tolerances", "sources"}  # not options: the per-output tolerances and each value's source


def _field_types() -> dict[str, typing.Any]:
    import pytest_infercheck.config.settings as module

    return typing.get_type_hints(Settings, vars(module))


def test_every_option_is_a_field_and_every_field_an_option() -> None:
    fields = {field.name for field in dataclasses.fields(Settings)}
    assert fields - EXTRA_FIELDS == {option.name for option in OPTIONS}


def test_each_field_has_the_type_its_parser_returns() -> None:
    hints = _field_types()
    for option in OPTIONS:
        returned = typing.get_type_hints(option.parse).get("return", typing.Any)
        declared = hints[option.name]
        accepted = {declared, *typing.get_args(declared)} if typing.get_origin(declared) is typing.Union else {declared}
        if returned is typing.Any or declared is typing.Any:
            continue
        assert returned in accepted or typing.Optional[returned] == declared, (option.name, returned, declared)


def test_every_default_lives_in_the_table_and_fits_its_field() -> None:
    settings = Settings.defaults()
    hints = _field_types()
    for option in OPTIONS:
        value = getattr(settings, option.name)
        assert value == option.default
        declared = hints[option.name]
        if value is None:
            assert type(None) in typing.get_args(declared), f"{option.name}: default None but {declared} is not Optional"
        elif declared is not typing.Any:
            origin = typing.get_origin(declared)
            kinds = typing.get_args(declared) if origin is typing.Union else (declared,)
            assert any(isinstance(value, typing.get_origin(kind) or kind) for kind in kinds), (option.name, value)


def test_resolving_no_layer_gives_the_table_defaults() -> None:
    assert resolve([]) == Settings.defaults()
    assert resolve([("marker", {"warmup": 3})]).warmup == 3


def test_the_timing_defaults_are_the_tables() -> None:
    """TimingPlan once defaulted to min_time=1.0 and max_time=inf where the options said 0.1 and 1.0."""
    from pytest_infercheck.measure.timing import StoppingRule, TimingPlan

    plan, settings = TimingPlan(), Settings.defaults()
    assert (plan.warmup, plan.min_iters, plan.max_iters, plan.min_time, plan.max_time) == (
        settings.warmup, settings.min_iters, settings.max_iters, settings.min_time, settings.max_time)
    assert (StoppingRule().ci_width, StoppingRule().confidence) == (settings.ci_width, settings.confidence)


def test_per_output_tolerances_are_described_with_every_layer_that_gave_some() -> None:
    """tolerances= merge per output across the marker and the call: the report says both set them."""
    settings = resolve([("marker", {"tolerances": {"logits": {"atol": 1e-2}}}), ("command line", {"warmup": 3}),
                        ("fixture call", {"tolerances": {"logits": {"rtol": 1e-3}, "pooler": {"atol": 1.0}}})])
    described = settings.describe()["tolerances"]
    assert described == {"value": {"logits": {"atol": 1e-2, "rtol": 1e-3}, "pooler": {"atol": 1.0}},
                         "source": "marker, fixture call"}
    assert resolve([]).describe()["tolerances"] == {"value": {}, "source": "default"}


def test_an_unknown_tolerance_key_is_named_with_the_closest_one() -> None:
    import pytest

    from pytest_infercheck.config.options import OptionError
    from pytest_infercheck.config.settings import parse_layer

    with pytest.raises(OptionError) as raised:
        parse_layer("marker", {"tolerances": {"aux.1": {"atoll": 1e-3, "rtol": 1e-2}}}, ["tolerances"])
    assert str(raised.value) == ("marker tolerances['aux.1']: unknown key 'atoll' (did you mean 'atol'?); the keys "
                                 "are atol, rtol, max_mismatch, min_cosine, max_rel_l2")
