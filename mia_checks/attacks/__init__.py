"""The attack registry: one family per access level, sharing the protocols, the metrics and the gate.

- black-box (`blackbox.py`): the six attacks of Wu et al. (2022) and NN, on generated images;
- white-box (`whitebox.py`): loss, SimA, PIA, SecMI and CLiD, on the owner's denoiser (loss also on token
  models' own training loss).

`--mia-attacks` takes ids and the groups `blackbox`, `whitebox` and `all`; which attacks can run on which
target, and at what cost, is `compatibility.py`'s table. Definitions: docs/attacks.md.
"""

from __future__ import annotations

from .base import BLACK_BOX, WHITE_BOX, Attack
from .blackbox import BASELINE, BLACK_BOX_ATTACKS, COMBINE_OPERATIONS
from .whitebox import WHITE_BOX_ATTACKS

ATTACKS: dict[str, Attack] = {a.id: a for a in BLACK_BOX_ATTACKS + WHITE_BOX_ATTACKS}
ATTACK_IDS = tuple(ATTACKS)
GROUPS: dict[str, tuple[str, ...]] = {
    "blackbox": tuple(a.id for a in BLACK_BOX_ATTACKS),
    "whitebox": tuple(a.id for a in WHITE_BOX_ATTACKS),
    "all": ATTACK_IDS,
}

__all__ = ["ATTACKS", "ATTACK_IDS", "BASELINE", "BLACK_BOX", "COMBINE_OPERATIONS", "GROUPS", "WHITE_BOX", "Attack"]
