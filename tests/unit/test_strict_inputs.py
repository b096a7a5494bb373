"""Hostile values that reached a traceback, a hang or a silent wrong setting (issue 23, the second attack):
JSON that Python's parser reads but no report holds, marker values of the wrong kind, a FIFO lock file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from pytest_infercheck.core.codec import DecodeError, parse_json
from pytest_infercheck.config.options import OptionError, parse_backends, parse_cuda_graphs, parse_engines, parse_gpus, \
    parse_precisions


@pytest.mark.parametrize("text, problem", [
    ('{"p50_ms": 1e999}', "too large for a float"),  # read as inf by json.loads without any NaN/Infinity token
    ('[-1e400]', "too large for a float"),
    ('{"cpus": ' + "9" * 5000 + "}", "5000 digits"),  # ValueError (int max str digits) escaped as a traceback
    ('{"outcome": "failed", "outcome": "passed"}', "'outcome' twice"),  # Python keeps the last, jq the first
    ('{"a": [{"b": 1, "b": 1}]}', "'b' twice"),
])
def test_json_no_report_holds_is_a_decode_error(text: str, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        parse_json(text)


def test_large_but_finite_numbers_and_long_ids_still_read() -> None:
    assert parse_json('{"a": 1.7976931348623157e308, "b": ' + "9" * 100 + ', "c": -5}') == \
        {"a": 1.7976931348623157e308, "b": int("9" * 100), "c": -5}


@pytest.mark.parametrize("parse", [parse_backends, parse_precisions, parse_engines, parse_cuda_graphs, parse_gpus])
@pytest.mark.parametrize("value", [None, 5.0, 10**30, {"eager": 1}, b"eager", 3 + 4j])
def test_a_marker_value_that_is_not_a_list_is_an_option_error(parse: object, value: object) -> None:
    """Iterating None or a number raised TypeError, which stopped the collection of the whole file."""
    with pytest.raises(OptionError):
        parse(value)  # type: ignore[operator]


@pytest.mark.parametrize("value, modes", [(["off"], (False,)), (["false"], (False,)), (("on", "off"), (True, False)),
                                          ([False, True, True], (False, True)), (["both"], (False, True))])
def test_cuda_graph_lists_read_each_entry_as_a_mode(value: object, modes: tuple) -> None:
    """bool("off") is True: cuda_graphs=["off"] ran with CUDA graphs on."""
    assert parse_cuda_graphs(value) == modes


@pytest.mark.parametrize("value", [[1.5], ["sometimes"], [None]])
def test_cuda_graph_list_entries_that_are_no_mode_are_refused(value: object) -> None:
    with pytest.raises(OptionError):
        parse_cuda_graphs(value)


def test_a_gpu_index_of_thousands_of_digits_is_an_option_error() -> None:
    """int() refuses past 4300 digits with ValueError: an INTERNALERROR from the ini file."""
    with pytest.raises(OptionError, match="not a GPU index"):
        parse_gpus("9" * 5000)


def test_a_lock_file_that_is_a_fifo_is_refused_at_once_and_held_lock_falls_back(tmp_path: Path) -> None:
    from pytest_infercheck.core.files import file_lock
    from pytest_infercheck.core.locks import held_lock

    (tmp_path / "locks").mkdir(mode=0o700)
    fifo = tmp_path / "locks" / "cpu-work.lock"
    os.mkfifo(fifo)
    done = threading.Event()

    def take() -> None:
        with pytest.raises(OSError, match="FIFO"):
            with file_lock(fifo):
                pass
        with held_lock("cpu-work.lock", tmp_path):  # the per-user temp dir instead
            done.set()

    worker = threading.Thread(target=take, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if not done.is_set():
        with open(fifo, "w"):  # release the blocked open so the thread ends
            pass
    assert done.is_set(), "opening the FIFO lock file waited for a writer"
