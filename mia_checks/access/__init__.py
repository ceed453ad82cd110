"""White-box access to a target's weights: what the white-box attacks query, one kind per model family.

`open_access(kind, model, name)` wraps a loaded model (a diffusers pipeline, or a seq2seq model) in the
access of its kind; `base` defines the kinds, the options and what a probe is.
"""

from __future__ import annotations

from typing import Any

from .base import DENOISER, MASKED_TOKEN, NEXT_TOKEN, Probe, QueryBatch, WhiteBoxOptions
from .denoiser import Denoiser
from .tokens import MaskedTokenAccess, NextTokenAccess

ACCESS_CLASSES = {DENOISER: Denoiser, NEXT_TOKEN: NextTokenAccess, MASKED_TOKEN: MaskedTokenAccess}


def open_access(kind: str, model: Any, name: str):
    """The white-box access of `kind` to a loaded `model`; `name` names it in errors."""
    return ACCESS_CLASSES[kind](model, name)


__all__ = ["DENOISER", "MASKED_TOKEN", "NEXT_TOKEN", "Denoiser", "MaskedTokenAccess", "NextTokenAccess", "Probe",
           "QueryBatch", "WhiteBoxOptions", "open_access"]
