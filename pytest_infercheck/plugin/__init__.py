"""pytest hooks: options, marker, parametrisation, fixture, summary.  Each hook hands off.

Importing this module imports neither torch nor any engine: they load when a test runs a check.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Generator

import pytest

from ..core.cpu_threads import share_compile_threads
from ..core.gpus import configure as configure_gpus
from ..config.options import OptionError, add_options
from .session import FIXTURE_ON_ITEM, InfercheckSession
from ..config.settings import MARKER_KEYS, MATRIX_KEYS, Layer, SettingsConflict, config_layers, parse_layer, resolve
from ..core.spec import EngineSpec, expand_specs

SESSION = pytest.StashKey[InfercheckSession]()
MARKER_HELP = (
    "infercheck(backends=[...], precisions=[...], cuda_graphs=False|True|'both', engines=['onnxruntime-fp16', ...], "
    "budget='p99:30ms', atol=..., rtol=..., max_mismatch=..., max_rel_l2=..., min_cosine=..., "
    "tolerances={output: {...}}, dynamic_batch=False, ...): run the test's infercheck(...) call once per engine"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    try:
        session = config.stash[SESSION] = InfercheckSession(config, config_layers(config))
    except OptionError as err:
        raise pytest.UsageError(str(err)) from None
    gpu_problem = configure_gpus(config, session.run_settings.gpus)  # an xdist worker's GPU, before CUDA starts
    if gpu_problem:
        raise pytest.UsageError(gpu_problem)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # its share of the host's CPUs for Inductor's compile subprocesses
        share_compile_threads(os.environ, int(workerinput.get("workercount", 1)))
    else:  # the controller checks once; workers inherit its verdict
        from .session_files import usage_problems

        problems = usage_problems(session)
        if problems:
            raise pytest.UsageError("\n".join(problems))


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is not None:
        session.close()


def session_of(config: pytest.Config) -> InfercheckSession:
    return config.stash[SESSION]


@dataclass(frozen=True)
class MarkerError:
    """Stands in for the engine specs of a test whose marker is wrong: its one item fails, naming why."""

    message: str

    @property
    def id(self) -> str:
        return "invalid-marker"


def marker_layers(node: Any) -> list[Layer]:
    """Every infercheck marker on ``node`` as settings layers, farthest first (a module's ``pytestmark``, then
    a class's, base classes before derived ones, then the test's own, then a ``pytest.param(marks=...)``'s),
    so a nearer marker overrides key by key and per-output tolerances merge, as the command line overrides
    the ini file.  A mistake is an OptionError naming the key; two markers stacked on the test itself that
    set one key differently are one too (which was meant cannot be told).  A parameter set's marker may not
    set the engine matrix: the engines are the test's items, decided before its parameter sets are."""
    levels: list[tuple[Any, list[Any]]] = []  # (marked node, its markers in pytest's order), nearest first
    for owner, marker in node.iter_markers_with_node("infercheck"):
        if levels and levels[-1][0] is owner:
            levels[-1][1].append(marker)
        else:
            levels.append((owner, [marker]))
    from_param = {id(mark) for mark in getattr(getattr(node, "callspec", None), "marks", ())}
    layers: list[Layer] = []
    for owner, markers in reversed(levels):
        own = [marker for marker in markers if id(marker) not in from_param]
        param = [marker for marker in markers if id(marker) in from_param]
        # A class level lists its bases' markers first (pytest walks the MRO), so a derived class's wins.
        stacked = isinstance(owner, pytest.Function) and len(own) > 1  # the collection's definition is one too
        seen: dict[str, tuple[Any, Any]] = {}  # key -> (parsed, as written) on the test itself
        for marker in own:
            layer = _marker_layer(marker)
            if stacked:
                clash = sorted(name for name in layer if name != "tolerances" and name in seen
                               and seen[name][0] != layer[name])
                if clash:
                    values = "; ".join(f"{seen[n][1]!r} and {marker.kwargs[n]!r}" for n in clash)
                    raise OptionError(f": two markers stacked on {owner.name} set {', '.join(clash)} to different "
                                      f"values ({values}); give each key once (markers of the module, the class and "
                                      "the test merge, the nearest winning)")
                seen.update((name, (value, marker.kwargs[name])) for name, value in layer.items())
            layers.append(("marker", layer))
        for marker in param:
            layer = _marker_layer(marker)
            matrix = sorted(name for name in layer if name in MATRIX_KEYS)
            if matrix:
                raise OptionError(f": a pytest.param(marks=...) marker cannot set {', '.join(matrix)}: the engines "
                                  "are the test's items, decided before its parameter sets; give them in the "
                                  "test's own marker")
            layers.append(("marker", layer))
    return layers


def _marker_layer(marker: Any) -> dict[str, Any]:
    if marker.args:
        raise OptionError(f": takes keyword arguments only, got {len(marker.args)} positional "
                          f"({', '.join(map(repr, marker.args))}); e.g. infercheck(backends=['onnxruntime'])")
    return parse_layer("", marker.kwargs, MARKER_KEYS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One item per engine spec for every test that uses the ``infercheck`` fixture."""
    if "infercheck" not in metafunc.fixturenames:
        return
    session = session_of(metafunc.config)
    try:
        # All of it: a floor above a cap fails here too.
        settings = resolve(session.layers + marker_layers(metafunc.definition))
    except OptionError as err:
        # That test alone fails, at its own line; every other test runs.
        where = _location(metafunc.function)
        message = f"{where}: @pytest.mark.infercheck{': ' if isinstance(err, SettingsConflict) else ''}{err}"
        metafunc.parametrize("infercheck_spec", [MarkerError(message)], ids=["invalid-marker"])
        return
    specs = list(settings.engines) if settings.engines else expand_specs(settings.backends, settings.precisions,
                                                                          settings.cuda_graphs)
    metafunc.parametrize("infercheck_spec", specs, ids=[spec.id for spec in specs])


def _location(function: Any) -> str:
    try:
        return f"{inspect.getsourcefile(function)}:{function.__code__.co_firstlineno}"
    except (TypeError, AttributeError):
        return getattr(function, "__qualname__", "the test")


@pytest.fixture
def infercheck_spec() -> EngineSpec:
    """The engine spec of this item; the plugin parametrises it for every test using ``infercheck``."""
    raise pytest.UsageError("infercheck_spec is set by pytest-infercheck's parametrisation; request `infercheck` instead")


@pytest.fixture
def infercheck(request: pytest.FixtureRequest, infercheck_spec: Any) -> Any:
    """``infercheck(model, example_inputs, calibration=None, **settings) -> CheckResult`` for this item's engine."""
    if isinstance(infercheck_spec, MarkerError):
        pytest.fail(infercheck_spec.message, pytrace=False)
    from ..check import CheckContext, Infercheck
    from .xdist_groups import plain_nodeid
    from ..core.progress import ProgressReporter

    session = session_of(request.config)
    try:
        layers = session.layers + marker_layers(request.node)
    except OptionError as err:  # a parameter set's marker (the collection saw the test's own): at the test's line
        where = _location(request.function)
        pytest.fail(f"{where}: @pytest.mark.infercheck{err}", pytrace=False)
    nodeid = plain_nodeid(request.node.nodeid)
    session.run.start_test(nodeid.split("[", 1)[0])
    import torch

    from ..core.process_exit import skip_final_collections_at_exit

    skip_final_collections_at_exit()  # torch is loaded in this process now: its exit need not walk the heap
    torch.manual_seed(resolve(layers).seed)  # random weights come out the same on every run, so the cache can hit
    context = CheckContext(
        nodeid=nodeid,
        spec=infercheck_spec,
        layers=layers,
        cache=session.engine_cache(),
        run=session.run,
        record=lambda result: session.record(request.node, result),
        timing_lock=session.timing_lock,
        build_lock=session.build_lock,
        baseline=session.baseline,
        progress=ProgressReporter.for_config(request.config),
    )
    fixture = request.node.stash[FIXTURE_ON_ITEM] = Infercheck(context)
    return fixture


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own choice, which is never None
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With --dist load: a test's engines that share one build run on one worker (xdist_groups.py)."""
    from .xdist_groups import make_scheduler, wanted

    settings = session_of(config).run_settings
    return make_scheduler(config, log) if wanted(config, settings.xdist_groups, settings.gpus) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, Any]:
    report = yield
    session_of(item.config).attach(item, report, call)
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # pytest_runtest_logreport has no config argument: register a bound collector instead.
    infer = session_of(session.config)
    session.config.pluginmanager.register(_Collector(infer), "infercheck-collector")
    if not infer.is_worker:
        infer.baseline()  # read and validate now: a broken file is a usage error before any test runs


class _Collector:
    def __init__(self, session: InfercheckSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.collect(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.session.collection_failed(report)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from ..report.terminal import summary_lines, table_width

    session = session_of(config)
    if not session.results:
        return
    terminalreporter.section("infercheck summary")
    for line, red in summary_lines(session, table_width(terminalreporter)):
        terminalreporter.write_line(line, red=red)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    infer = session_of(session.config)
    if not infer.is_worker:
        from .session_files import write_outputs

        problems = write_outputs(infer)
        if session.exitstatus == pytest.ExitCode.OK:
            # A baseline update refused for its content is a usage error; a report or baseline that was
            # asked for and not written fails the run: CI must not go green with the update lost. The
            # summary names each file and why.
            if infer.baseline_refused:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
            elif problems:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
