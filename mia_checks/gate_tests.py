"""Kept for users' warning filters: `-W error::mia_checks.gate_tests.DistributionShiftWarning` (and
`LeakageWarning`) name this module, where the warnings lived before mia-checks' plugin became a package.
They live in `mia_checks.errors` now; the collected gate tests are `mia_checks/plugin/gate_tests.py`."""

from .errors import DistributionShiftWarning, LeakageWarning

__all__ = ["DistributionShiftWarning", "LeakageWarning"]
