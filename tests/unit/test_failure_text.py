"""What a failure message keeps of torch's text: pure functions, no export run (those are in tests/)."""

from __future__ import annotations

from pytest_infercheck.check.build import frozen_value_notes
from pytest_infercheck.model.export import short_reason


def test_the_same_frozen_value_is_one_note_with_its_count() -> None:
    boxes = "at torchvision/ops/boxes.py:151: Converting a tensor to a Python integer"
    notes = frozen_value_notes([boxes] * 15 + ["at transforms.py:20: Iterating over a tensor"])
    assert notes == [
        f"the trace froze a value {boxes} (15 times): the ONNX model is checked on inputs like the example's",
        "the trace froze a value at transforms.py:20: Iterating over a tensor: the ONNX model is checked on "
        "inputs like the example's",
    ]


def test_places_past_the_first_three_are_counted_not_listed() -> None:
    places = [f"at lib.py:{line}: Converting a tensor to a Python boolean" for line in range(6)]
    notes = frozen_value_notes(places + places[4:])
    assert len(notes) == 4
    assert notes[-1] == "the trace froze 5 more values at 3 other places (the JSON report lists them)"


def test_torchs_advice_about_a_call_the_user_never_made_is_dropped() -> None:
    error = RuntimeError(
        "Could not guard on data-dependent expression Eq(u0, 1)\n"
        "The error above occurred when calling torch.export.export. If you would like to view some more "
        "information about this error, and get a list of all other errors that may occur in your export call, "
        "you can replace your `export()` call with `draft_export()`.")
    reason = short_reason(error)
    assert "Could not guard on data-dependent expression Eq(u0, 1)" in reason
    assert "draft_export" not in reason and "torch.export.export" not in reason


def test_a_known_precompile_limit_says_what_it_means() -> None:
    from pytest_infercheck.backends.precompile import short_reason as precompile_reason

    class PackageError(Exception):  # torch._dynamo.package's name, raised for the guard it cannot save
        pass

    said = precompile_reason(PackageError("ID_MATCH guard cannot be serialized.\n(guard detail)"))
    assert said.startswith("PackageError: ID_MATCH guard cannot be serialized: the traced forward checks an object "
                           "by its identity")
    assert "a torch limit, not the model's" in said
    assert precompile_reason(RuntimeError("first line\nsecond")) == "RuntimeError: first line"
