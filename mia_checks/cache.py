"""Where mia-checks keeps what it computes once: generations, white-box scores, file hashes, the test bed."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_root() -> Path:
    """$MIA_CHECKS_CACHE, else ~/.cache/mia-checks (XDG_CACHE_HOME honoured)."""
    if os.environ.get("MIA_CHECKS_CACHE"):
        return Path(os.environ["MIA_CHECKS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mia-checks"
