"""The pytest plugin (entry point `mia_checks.plugin`): the only code of mia-checks that knows pytest.

`hooks.py` the hooks, `options.py` the --mia-* options and their ini twins, `session.py` one run's state
and its end (reports, terminal summary), `fixtures.py` the fixtures for users' own tests, `gate_tests.py`
the collected module of gate tests.
"""

from .fixtures import mia_audit, mia_members, mia_nonmembers, mia_session, mia_settings, mia_target
from .hooks import (pytest_addoption, pytest_collection_modifyitems, pytest_configure, pytest_configure_node,
                    pytest_runtest_makereport, pytest_sessionfinish, pytest_terminal_summary, pytest_testnodedown,
                    pytest_unconfigure)
from .session import SESSION_KEY, MiaSession

__all__ = ["SESSION_KEY", "MiaSession", "mia_audit", "mia_members", "mia_nonmembers", "mia_session", "mia_settings",
           "mia_target", "pytest_addoption", "pytest_collection_modifyitems", "pytest_configure",
           "pytest_configure_node", "pytest_runtest_makereport", "pytest_sessionfinish", "pytest_terminal_summary",
           "pytest_testnodedown", "pytest_unconfigure"]
