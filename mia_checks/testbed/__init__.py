"""The test bed: tiny text-to-image targets genuinely trained on real digits and on
captioned colour emoji (the emoji tier), built offline.

`ensure_built()` builds what is missing into the cache; `python -m mia_checks.testbed` builds everything.
"""

from .build import (
    ALIASES,
    ALL_ARTIFACTS,
    BUILDER_VERSION,
    SUITE_ARTIFACTS,
    audit_sets,
    embedder_for,
    ensure_built,
    testbed_root,
)

__all__ = ["ALIASES", "ALL_ARTIFACTS", "BUILDER_VERSION", "SUITE_ARTIFACTS", "audit_sets", "embedder_for",
           "ensure_built", "testbed_root"]
