"""pytest hooks: options, marker, parametrisation, fixture, summary.  Each hook hands off.

Importing this module imports neither torch nor any engine: they load when a test runs a check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generator, Optional

import pytest

from .options import OptionError, add_options
from .session import InfercheckSession
from .settings import COLLECTION_KEYS, MARKER_KEYS, config_layers, parse_layer, resolve
from .spec import EngineSpec, expand_specs

SESSION = pytest.StashKey[InfercheckSession]()
MARKER_HELP = (
    "infercheck(backends=[...], precisions=[...], cuda_graphs=False|True|'both', budget='p99:30ms', "
    "atol=..., rtol=..., max_mismatch=..., max_rel_l2=..., min_cosine=..., tolerances={output: {...}}, dynamic_batch=False, ...): "
    "run the test's infercheck(...) call once per engine spec"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")
    try:
        layers = config_layers(config)
    except OptionError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[SESSION] = InfercheckSession(config, layers)


def session_of(config: pytest.Config) -> InfercheckSession:
    return config.stash[SESSION]


def _marker_layer(node: Any) -> dict[str, Any]:
    marker = node.get_closest_marker("infercheck")
    if marker is None:
        return {}
    if marker.args:
        raise OptionError("marker infercheck takes keyword arguments only, e.g. infercheck(backends=['onnxruntime'])")
    return parse_layer("marker infercheck", marker.kwargs, MARKER_KEYS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One item per engine spec for every test that uses the ``infercheck`` fixture."""
    if "infercheck" not in metafunc.fixturenames:
        return
    session = session_of(metafunc.config)
    marker = _marker_layer(metafunc.definition)
    settings = resolve(session.layers + [("marker", {k: v for k, v in marker.items() if k in COLLECTION_KEYS})])
    specs = expand_specs(settings.backends, settings.precisions, settings.cuda_graphs)
    metafunc.parametrize("infercheck_spec", specs, ids=[spec.id for spec in specs])


@pytest.fixture
def infercheck_spec() -> EngineSpec:
    """The engine spec of this item; the plugin parametrises it for every test using ``infercheck``."""
    raise pytest.UsageError("infercheck_spec is set by pytest-infercheck's parametrisation; request `infercheck` instead")


@pytest.fixture
def infercheck(request: pytest.FixtureRequest, infercheck_spec: EngineSpec) -> Any:
    """``infercheck(model, example_inputs, calibration=None, **settings) -> CheckResult`` for this item's engine."""
    from .check import CheckContext, Infercheck
    from .progress import ProgressReporter

    session = session_of(request.config)
    layers = session.layers + [("marker", _marker_layer(request.node))]
    seed = resolve(layers).seed
    import torch

    torch.manual_seed(seed)  # random weights come out the same on every run, so the cache can hit
    context = CheckContext(
        nodeid=request.node.nodeid,
        spec=infercheck_spec,
        layers=layers,
        cache=session.cache,
        record=lambda result: session.record(request.node, result),
        gpu_lock=session.gpu_lock,
        baseline=lambda: session.baseline,
        progress=ProgressReporter.for_config(request.config),
    )
    return Infercheck(context)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, Any]:
    report = yield
    session_of(item.config).attach(item, report)
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # pytest_runtest_logreport has no config argument: register a bound collector instead.
    infer = session_of(session.config)
    session.config.pluginmanager.register(_Collector(infer), "infercheck-collector")
    if not infer.is_worker:
        infer.baseline  # read and validate now: a broken file is a usage error before any test runs


class _Collector:
    def __init__(self, session: InfercheckSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.collect(report)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from .report.table import reasons, render_text

    session = session_of(config)
    if not session.results:
        return
    terminalreporter.section("infercheck summary")
    for line in render_text(session.results):
        terminalreporter.write_line(line)
    skipped = reasons(session.results)
    if skipped:
        terminalreporter.write_line("")
        terminalreporter.write_line("skipped engines:")
        for line in skipped:
            terminalreporter.write_line(f"  {line}")
    from .gate import summary_lines

    gate = summary_lines(session.results, session.run_settings.baseline, session.baseline_update)
    if gate:
        terminalreporter.write_line("")
        for line in gate:
            terminalreporter.write_line(line, red=line.lstrip().startswith(("REGRESSION", "FINGERPRINT")))
    settings = session.run_settings
    for label, path in (("JSON", settings.report), ("Markdown", settings.markdown), ("HTML", settings.html)):
        if path:
            terminalreporter.write_line(f"infercheck {label} report: {path}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    infer = session_of(session.config)
    if infer.is_worker:
        return
    report: Optional[str] = infer.run_settings.report
    if report:
        from .report.json_report import write_json_report

        write_json_report(Path(report), infer.results)
    infer.finish_gate()
