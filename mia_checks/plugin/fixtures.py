"""The fixtures users' own tests get beside the built-in gate tests (README, *Writing your own tests*)."""

from __future__ import annotations

import pytest

from .session import MiaSession, active_session


@pytest.fixture(scope="session")
def mia_session(pytestconfig: pytest.Config) -> MiaSession:
    session = active_session(pytestconfig)
    if session is None:
        pytest.skip("mia-checks is not active: pass --mia-target, --mia-members and --mia-nonmembers")
    return session


@pytest.fixture(scope="session")
def mia_settings(mia_session: MiaSession):
    """The audit's settings (mia_checks.settings.AuditSettings)."""
    return mia_session.settings


@pytest.fixture(scope="session")
def mia_members(mia_session: MiaSession):
    """The member reference set (mia_checks.data.ReferenceSet)."""
    return mia_session.members


@pytest.fixture(scope="session")
def mia_nonmembers(mia_session: MiaSession):
    """The non-member reference set (mia_checks.data.ReferenceSet)."""
    return mia_session.nonmembers


@pytest.fixture(scope="session")
def mia_audit(mia_session: MiaSession):
    """The audit (mia_checks.audit.Audit): `mia_audit.result("II-P").auc.value`, `.verdict("IV")`, …"""
    return mia_session.get_audit()


@pytest.fixture(scope="session")
def mia_target(mia_audit):
    """The loaded target (mia_checks.targets.Target): `.generate(prompts, seeds)`."""
    return mia_audit.target
