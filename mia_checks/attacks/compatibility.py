"""Can attack X run on target Y, why not, and at what cost: the one answer every part of mia-checks reads —
the gate tests' skips, the report's `access` and `calls/img` columns and its `skipped:` line, and the check
of the attacks named in --mia-attacks.

A black-box attack reads generations: it runs on every target. A white-box attack needs the target's
weights (its TargetSpec's `access`) and a probe for that kind of access: the denoiser attacks on Stable
Diffusion and LDM pipelines, the token loss on token models (aMUSEd, seq2seq).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import MiaUsageError
from ..targets import TargetSpec
from . import ATTACKS, WHITE_BOX


def skip_reason(attack_id: str, targets: Sequence[TargetSpec]) -> str | None:
    """Why `attack_id` cannot run on these targets (the target, and the shadow model if any), or None."""
    attack = ATTACKS[attack_id]
    if attack.access != WHITE_BOX:
        return None
    for target in targets:
        if target.access is None:
            return target.no_access
        if attack.probe_for(target.access) is None:
            return (f"{target.spec} is a token model ({target.access}): of the white-box attacks only loss, on its "
                    "own tokens, applies; the others need a diffusion denoiser")
    return None


def skipped(attacks: Sequence[str], targets: Sequence[TargetSpec]) -> dict[str, str]:
    """attack → why it cannot run, for the attacks of `attacks` that cannot."""
    return {a: reason for a in attacks if (reason := skip_reason(a, targets))}


def runnable(attacks: Sequence[str], targets: Sequence[TargetSpec]) -> tuple[str, ...]:
    return tuple(a for a in attacks if skip_reason(a, targets) is None)


def calls_per_image(attack_id: str, target: TargetSpec, settings) -> int:
    """Cost per query image in model calls (UNet, or transformer for token models): a white-box probe's, or
    sampling's: on a diffusion pipeline steps × K (× 2 under classifier-free guidance, assumed on when the
    pipeline's default guidance is used); on a token-sampled target (seq2seq, min-dalle) one decoder call
    per image token × K (× 2 under supercondition ≠ 1, whose empty-caption row doubles each call), steps and
    guidance not applying. `settings`: the run's AuditSettings."""
    attack = ATTACKS[attack_id]
    if attack.access == WHITE_BOX:
        return attack.probe_for(target.access).calls(settings.whitebox)
    if target.image_tokens:
        return decoder_calls_per_generation(target, settings) * settings.generations
    guided = settings.guidance is None or settings.guidance > 1
    return settings.steps * settings.generations * (2 if guided else 1)


def supercondition(target: TargetSpec, settings) -> float:
    """The supercondition a token-sampled target samples with: --mia-supercondition, else the model's own."""
    return settings.supercondition if settings.supercondition is not None else (target.supercondition or 1.0)


def decoder_calls_per_generation(target: TargetSpec, settings) -> int:
    """A token-sampled target's decoder calls for one image: one per image token, on two rows (the caption
    and the empty caption) under supercondition ≠ 1 (targets/sampling.py), counted twice as guidance is."""
    return target.image_tokens * (2 if supercondition(target, settings) != 1.0 else 1)


def check_attack_choice(attacks: Sequence[str], chosen: bool, targets: Sequence[TargetSpec]) -> None:
    """Attacks named in --mia-attacks must be able to run: skipping them would pass a gate that never
    measured. (Under the default, all, they are skipped with the reason instead.)"""
    blocked = skipped(attacks, targets) if chosen else {}
    if blocked:
        reason = next(iter(blocked.values()))
        raise MiaUsageError(f"--mia-attacks: {', '.join(blocked)} are white-box attacks, but {reason}. Run the "
                            "black-box attacks (--mia-attacks=blackbox) or the white-box attacks this target supports, "
                            "or give the pipeline folder, single file or LoRA with its base.")
