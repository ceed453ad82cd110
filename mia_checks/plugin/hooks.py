"""pytest hooks of mia-checks. Thin by design: options (`options.py`), the run's state (`session.py`) and
every check and computation live elsewhere, in modules that know nothing of pytest.

Nothing heavy is imported unless --mia-target (or its ini twin mia_target) is set.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from ..errors import MiaUsageError
from .options import add_options, gate_requested, given_on_command_line, raw_options
from .session import RECORD_KEY, SESSION_KEY, MiaSession, active_session

GATE_TESTS = Path(__file__).with_name("gate_tests.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    raw = raw_options(config)
    try:
        if not gate_requested(raw, given_on_command_line(config)):
            return
    except MiaUsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    if hasattr(config, "workerinput"):
        # pytest-xdist workers share the machine's cores: torch's OpenMP threads must sleep, not spin, while
        # they wait (two workers on 2 cores took 273 s for what one does in 14 s). Set before torch loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..generation import Progress
    from ..preflight import preflight

    try:
        checked = preflight(raw)
    except MiaUsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    progress = Progress(checked.progress, _real_stderr() if checked.progress != "off" else None)
    run_id = getattr(config, "workerinput", {}).get("mia_run_id") or uuid.uuid4().hex
    config.stash[SESSION_KEY] = session = MiaSession(checked, progress, config=config, run_id=run_id)
    config.pluginmanager.register(session, "mia-checks-session")
    config.addinivalue_line("markers", "mia: a membership-inference gate test of mia-checks")


def _real_stderr():
    """A handle on this process's stderr as it is now, before pytest captures file descriptor 2 around each
    test: the progress bar reaches the terminal (or the CI log) without -s."""
    try:
        return os.fdopen(os.dup(sys.__stderr__.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):  # no usable stderr (pythonw, a closed descriptor)
        return None


def pytest_unconfigure(config: pytest.Config) -> None:
    mia = active_session(config)
    stream = getattr(mia and mia.progress, "stream", None)
    if stream is not None:
        stream.close()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The gate tests run with no test file of the user's: collect our module directly under the session
    (no directory walk, so no conftest of wherever the package is installed gets involved)."""
    if active_session(config) is None:
        return
    module = pytest.Module.from_parent(session, path=GATE_TESTS, nodeid="mia-checks")
    # A run without exposure tests (--mia-exposure=none) leaves test_exposure an empty parameter set: not collected.
    gate_items = [item for item in module.collect() if isinstance(item, pytest.Item) and not _empty_parameter_set(item)]
    for item in gate_items:
        config.hook.pytest_itemcollected(item=item)
    # Counted in "collected N items" like any collected module.
    config.hook.pytest_collectreport(report=pytest.CollectReport(module.nodeid, "passed", None, gate_items))
    items[:0] = gate_items


def _empty_parameter_set(item: pytest.Item) -> bool:
    return any(m.name == "skip" and str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
               for m in item.iter_markers())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Put the gate test's record on its call report: pytest-xdist carries report attributes to the controller."""
    report = yield
    if call.when == "call" and RECORD_KEY in item.stash:
        report.mia_record = item.stash[RECORD_KEY]
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist: workers share the controller's run id (one scope for run-only generations)."""
    mia = active_session(node.config)
    if mia is not None:
        node.workerinput["mia_run_id"] = mia.run_id


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist: keep what each worker generated, for the summary."""
    mia = active_session(node.config)
    stats = getattr(node, "workeroutput", {}).get("mia_generation")
    if mia is not None and stats:
        mia.worker_generation[node.gateway.id] = json.loads(stats)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker reports what it generated; the controller writes the reports asked for."""
    config = session.config
    mia = active_session(config)
    if mia is None:
        return
    if hasattr(config, "workeroutput"):
        stats = mia.generation_stats()
        if stats:
            config.workeroutput["mia_generation"] = json.dumps(stats)
    if not hasattr(config, "workerinput"):
        mia.finish(session)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    mia = active_session(config)
    if mia is not None:
        mia.summary(terminalreporter)
