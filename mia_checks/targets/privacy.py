"""What a target declares about its own training: the (ε, δ) a DP accountant proved for it.

A checkpoint folder trained with differential privacy may carry `privacy.json` beside `model_index.json`:

    {"epsilon": 8.0, "delta": 0.0039, "noise_multiplier": 1.18, "max_grad_norm": 1.0, "steps": 320,
     "accountant": "prv", "mechanism": "DP-SGD (Opacus)"}

`epsilon` and `delta` are required; the rest is echoed in the report as given. The report then reads each
attack's empirical ε lower bound at that δ and says whether any bound contradicts the declared ε (Nasr et
al. 2021: a sound lower bound above the proven ε means the training, or its accounting, is broken).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MiaUsageError

PRIVACY_FILE = "privacy.json"


@dataclass(frozen=True)
class DeclaredPrivacy:
    epsilon: float
    delta: float
    source: str  # the file it was read from
    details: dict = field(default_factory=dict)  # noise multiplier, clipping norm, steps, … as declared

    def to_dict(self) -> dict:
        return {**self.details, "epsilon": self.epsilon, "delta": self.delta, "source": self.source}


def read_declared_privacy(target: str | Path, option: str = "--mia-target") -> DeclaredPrivacy | None:
    """The target folder's privacy.json, checked; None when the target carries none (or is not a folder)."""
    path = Path(target) / PRIVACY_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MiaUsageError(f"{option}: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise MiaUsageError(f"{option}: {path} must hold a JSON object with epsilon and delta")
    for key, low, high in (("epsilon", 0.0, math.inf), ("delta", 0.0, 1.0)):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value < high or (key == "epsilon" and value == 0):
            rule = "a finite number > 0" if key == "epsilon" else "a number in [0, 1)"
            raise MiaUsageError(f"{option}: {path}: {key} is {json.dumps(value)}, not {rule}. It declares the "
                                "(ε, δ) a DP accountant proved for this checkpoint; remove the file if there is none.")
    details = {k: v for k, v in data.items() if k not in ("epsilon", "delta")}
    return DeclaredPrivacy(float(data["epsilon"]), float(data["delta"]), str(path), details)
