"""The audit: one target, two reference sets, every attack under the partial-knowledge protocol.

Everything is lazy and computed once: the target loads when the first image is needed, images come from
the generation cache, features are shared by all attacks, and each attack's result is kept.
"""

from __future__ import annotations

import platform
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import metadata

import numpy as np

from .attacks import ATTACKS, BASELINE, BLACK_BOX, WHITE_BOX, Attack
from .data import LazyImages, ReferenceSet, balance, check_disjoint, load_reference_set
from .errors import MiaUsageError, ModelLoadError, WhiteBoxError
from .features import QueryFeatures, compute_features, compute_query_features
from .gate import Verdict, decide
from .generation import GenerationCache
from .html_report import ImagePair, top_members
from .protocol import apply_frozen, cross_validate
from .results import AttackResult, evaluate
from .settings import AuditSettings
from .targets import (GenerationSettings, Target, check_target_spec, load_target, resolve_device,
                      whitebox_skip_reason)

@contextmanager
def loading(what: str):
    """Turn whatever a library raises while loading a model into an error that names the model."""
    try:
        yield
    except (MiaUsageError, ModelLoadError):
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load {what}: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class DistributionShift:
    shifted: bool
    p_value: float
    baseline_accuracy: float
    message: str


def load_reference_sets(settings: AuditSettings, shadow: bool = False) -> tuple[ReferenceSet, ReferenceSet]:
    """Both sets (the target's, or the shadow model's), checked (existence, captions, readability, size,
    disjointness) and balanced."""
    prefix = "shadow-" if shadow else ""
    paths = (settings.shadow_members, settings.shadow_nonmembers) if shadow else (settings.members, settings.nonmembers)
    required = settings.captioner is None  # caption-less mode: captions are written by the captioner
    members = load_reference_set(paths[0], "members", f"--mia-{prefix}members", captions_required=required)
    nonmembers = load_reference_set(paths[1], "nonmembers", f"--mia-{prefix}nonmembers", captions_required=required)
    check_disjoint(members, nonmembers)
    return balance(members, nonmembers, settings.seed, settings.max_samples)


class Audit:
    def __init__(self, settings: AuditSettings, members: ReferenceSet | None = None,
                 nonmembers: ReferenceSet | None = None, progress: bool = True, run_id: str | None = None):
        self.settings = settings
        self.run_id = run_id  # scope of an undeclared callable target's generations
        check_target_spec(settings.target, settings.allow_pickle, lora=settings.lora, config=settings.target_config)
        if members is None or nonmembers is None:
            members, nonmembers = load_reference_sets(settings)
        self.members, self.nonmembers = members, nonmembers
        self.progress = progress
        self._results: dict[str, AttackResult] = {}
        self._generated = False  # the generation cache holds every image this audit reads

    @cached_property
    def target(self) -> Target:
        s = self.settings
        return load_target(s.target, self.generation_settings, s.allow_pickle, lora=s.lora, config=s.target_config,
                           identity=s.target_identity, run_id=self.run_id)

    @cached_property
    def generation_settings(self) -> GenerationSettings:
        s = self.settings
        return GenerationSettings(s.steps, s.guidance, resolve_device(s.device), s.temperature, s.top_k, s.supercondition)

    @property
    def labels(self) -> np.ndarray:
        return np.r_[np.ones(len(self.members), int), np.zeros(len(self.nonmembers), int)]

    @cached_property
    def captions(self) -> list[str]:
        """The queries' captions, members first: the sets' own, or in caption-less mode the captioner's."""
        if self.settings.captioner is None:
            return list(self.members.captions) + list(self.nonmembers.captions)
        from .captioning import caption_queries

        s = self.settings
        with loading(f"the captioner {s.captioner}"):
            queries = self.query_images
            return caption_queries(s.captioner, queries, list(queries.hashes), s.cache_root(),
                                   resolve_device(s.device), s.allow_pickle)

    @cached_property
    def generation_cache(self) -> GenerationCache:
        g = self.generation_settings
        key = {"steps": g.steps, "guidance": g.guidance, "device": g.device.split(":")[0]}
        if self.target.sampling is not None:  # seq2seq: the sampling in effect (other kinds keep their keys)
            key["sampling"] = self.target.sampling
        return GenerationCache(self.settings.cache_root(), self.target, key)

    def read_generated(self, rows: list[int]) -> np.ndarray:
        """(len(rows), K, H, W, 3) uint8: the generations of those queries, generated first if missing."""
        s = self.settings
        if not self._generated:
            self.generation_cache.ensure(self.captions, s.seed, s.generations, s.batch_size, self.progress)
            self._generated = True
        return self.generation_cache.read(self.captions, s.seed, s.generations, rows)

    def image_pairs(self, record: dict, n: int = 6) -> list[ImagePair] | None:
        """Query / generated pairs of the n members `record`'s attack scores highest; from the cache only
        (None when the generations are not there: a report never triggers generation)."""
        rows = top_members(record, n)
        try:
            generated = self.generation_cache.read(self.captions, self.settings.seed, self.settings.generations, rows)
        except (OSError, SyntaxError, ValueError):
            return None
        queries, captions = self.members.images, self.captions
        return [ImagePair(captions[i], record["scores"][i], queries[i], list(g)) for i, g in zip(rows, generated)]

    @cached_property
    def embedder(self):
        from .embedders import load_embedder

        with loading(f"the embedder {self.settings.embedder}"):
            return load_embedder(self.settings.embedder, resolve_device(self.settings.device), self.settings.allow_pickle)

    @property
    def query_images(self) -> LazyImages:
        """Members then non-members, decoded when read."""
        m, n = self.members, self.nonmembers
        return LazyImages(m.files + n.files, m.hashes + n.hashes, "--mia-members/--mia-nonmembers")

    @cached_property
    def query_features(self) -> QueryFeatures:
        """The queries alone (no model): what the distribution-shift guard reads."""
        return compute_query_features(self.labels, self.query_images, self.members.sizes + self.nonmembers.sizes,
                                      self.embedder, self.settings.batch_size)

    @cached_property
    def features(self) -> QueryFeatures:
        return compute_features(self.query_features, self.query_images, self.captions, self.read_generated,
                                self.embedder, self.settings.batch_size)

    def skip_reason(self, attack_id: str) -> str | None:
        """Why an attack of the default set does not run on this target (None: it runs)."""
        if ATTACKS[attack_id].access != WHITE_BOX:
            return None
        s = self.settings
        if self.target.whitebox_unsupported:  # the loaded target knows (a callable's kind needs loading)
            return self.target.whitebox_unsupported
        return whitebox_skip_reason(attack_id, [t for t in (s.target, s.shadow_target) if t], s.target_config)

    @property
    def attacks(self) -> tuple[str, ...]:
        """The attacks that run: the chosen ones, less white-box attacks the target cannot serve."""
        return tuple(a for a in self.settings.attacks if self.skip_reason(a) is None)

    @cached_property
    def gate(self):
        return self.settings.gate_for(self.attacks)

    @cached_property
    def whitebox_access(self):
        """White-box access to the target's weights (loads the checkpoint): a Denoiser, or a token model's."""
        from .attacks.whitebox import DENOISER, MASKED_TOKEN
        from .denoiser import Denoiser
        from .token_loss import MaskedTokenAccess, NextTokenAccess

        if self.target.pipeline_fn is None:
            raise WhiteBoxError(f"{self.settings.target}: {self.target.whitebox_unsupported}")
        with loading(f"the target {self.settings.target}"):
            model = self.target.pipeline_fn()
        access = {DENOISER: Denoiser, MASKED_TOKEN: MaskedTokenAccess}.get(self.target.whitebox_kind, NextTokenAccess)
        return access(model, self.settings.target)

    def measurements(self, attack: Attack) -> np.ndarray:
        """A white-box attack's per-query measurements, from the score cache or the denoiser."""
        from .whitebox import WhiteBoxScores

        s = self.settings
        scores = WhiteBoxScores(s.cache_root(), self.target.identity, attack.id,
                                attack.probe_for(self.target.whitebox_kind), s.whitebox, s.seed,
                                self.generation_settings.device.split(":")[0])
        queries = self.query_images
        return scores.compute(queries, list(queries.hashes), self.captions, lambda: self.whitebox_access, s.batch_size)

    def denoiser_calls(self, attack_id: str) -> int:
        """Cost per query image in model calls (UNet, or transformer for token models): a white-box probe's,
        or sampling's steps × K (× 2 under classifier-free guidance, assumed on when the pipeline's default
        guidance is used)."""
        attack, s = ATTACKS[attack_id], self.settings
        if attack.access == WHITE_BOX:
            return attack.probe_for(self.target.whitebox_kind).calls(s.whitebox)
        guided = s.guidance is None or s.guidance > 1
        return s.steps * s.generations * (2 if guided else 1)

    @cached_property
    def shadow(self) -> Audit:
        """The shadow model's audit: same settings, its own checkpoint and reference sets."""
        s = self.settings
        shadow_settings = replace(s, target=s.shadow_target, members=s.shadow_members, nonmembers=s.shadow_nonmembers,
                                  lora=None, shadow_target=None, shadow_members=None, shadow_nonmembers=None)
        return Audit(shadow_settings, *load_reference_sets(s, shadow=True), progress=self.progress, run_id=self.run_id)

    def result(self, attack_id: str) -> AttackResult:
        """An attack's result under the run's protocol; "baseline" is the no-model attack of the
        distribution-shift guard, always partial-knowledge on the target's own sets."""
        if attack_id not in self._results:
            attack = BASELINE if attack_id == BASELINE.id else ATTACKS[attack_id]
            x = attack.features(self.inputs(attack), self.settings.combine)
            protocol = "partial-knowledge" if attack is BASELINE else self.settings.protocol
            if protocol == "shadow-model":
                oof = apply_frozen(attack.model, attack.features(self.shadow.inputs(attack), self.settings.combine),
                                   self.shadow.labels, x, self.labels, self.settings.seed)
            else:
                oof = cross_validate(attack.model, x, self.labels, self.settings.folds, self.settings.seed,
                                     None if attack is BASELINE else self.settings.known_fraction)
            self._results[attack_id] = evaluate(attack.id, attack.intuition, protocol, oof, seed=self.settings.seed)
        return self._results[attack_id]

    def inputs(self, attack: Attack):
        """What an attack reads: the generation features (black-box) or its probe's measurements (white-box)."""
        if attack is BASELINE:
            return self.query_features
        return self.features if attack.access == BLACK_BOX else self.measurements(attack)

    def verdict(self, attack_id: str) -> Verdict:
        return decide(self.result(attack_id), self.gate, self.settings.seed)

    def distribution_shift(self) -> DistributionShift:
        """Does the no-model baseline separate members from non-members? One-sided Clopper–Pearson test of
        its accuracy > ½ at level alpha: a false alarm rate of alpha on sets from one distribution."""
        from scipy.stats import binomtest

        result = self.result(BASELINE.id)
        n = result.members + result.nonmembers
        correct = round(result.accuracy.value * n)
        p_value = binomtest(correct, n, 0.5, alternative="greater").pvalue
        p_value = float(p_value)
        shifted = bool(p_value < self.settings.alpha)
        message = (
            f"no-model baseline (query images alone, no generation) accuracy {result.accuracy.format()}, "
            f"p = {p_value:.3g}: "
            + ("members and non-members differ in distribution; every verdict of this run is unreliable. "
               "Draw non-members from the same distribution as the training data."
               if shifted else "no evidence of a distribution shift")
        )
        return DistributionShift(shifted, p_value, result.accuracy.value, message)

    def ablation(self) -> dict:
        """The paper's ablation axes as set for this run (echoed in every report)."""
        s, folds = self.settings, self.settings.folds
        return {"steps": s.steps, "guidance": s.guidance, "generations_per_query": s.generations,
                "known_fraction": s.known_fraction if s.known_fraction is not None else round((folds - 1) / folds, 6),
                "combine": list(s.combine), "embedder": s.embedder,
                "whitebox": self._whitebox_ablation()
                if any(ATTACKS[a].access == WHITE_BOX for a in self.attacks) else None}

    def _whitebox_ablation(self) -> dict | None:
        from .attacks.whitebox import MASKED_TOKEN, NEXT_TOKEN

        kind, options = self.target.whitebox_kind, self.settings.whitebox.to_dict()
        ratios = options.pop("token_mask_ratios")
        if kind == NEXT_TOKEN:
            return {"access": kind, "loss": "teacher-forced NLL of the image's VQ codes given its caption"}
        if kind == MASKED_TOKEN:
            return {"access": kind, "token_mask_ratios": ratios,
                    "loss": f"cross-entropy of the masked VQ codes, one fixed mask (seeded) per ratio {_ts(ratios)}"}
        return {"access": kind, **options, "noise": "per image, from (seed, image sha256, t)", "guidance": "none",
                "alphas": "the target's scheduler config"}

    def header(self) -> dict:
        """What the report says about this run, without generating anything."""
        target = self.target  # cheap: the pipeline itself loads only when an image is missing
        spec = self.settings.target
        return {
            "target": spec,
            "target_kind": target.kind,
            "sampling": target.sampling,
            "checkpoint_sha256": None if target.kind == "callable" else target.identity,
            "target_identity": target.identity_note,
            "lora": self.settings.lora,
            "captions": ({"source": "given"} if self.settings.captioner is None else
                         {"source": "generated", "captioner": self.settings.captioner, "captions": self.captions}),
            "members": {"path": self.settings.members, "n": len(self.members), "sha256": self.members.digest},
            "nonmembers": {"path": self.settings.nonmembers, "n": len(self.nonmembers), "sha256": self.nonmembers.digest},
            "protocol": self.settings.protocol,
            "shadow_target": self.settings.shadow_target,
            "folds": self.settings.folds,
            "seed": self.settings.seed,
            "generations_per_query": self.settings.generations,
            "ablation": self.ablation(),
            "gate": self.gate.describe(),
            "skipped": {a: reason for a in self.settings.attacks if (reason := self.skip_reason(a))},
            "settings": self.settings.to_dict(),
            "versions": versions(),
        }


def _ts(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("mia-checks", "torch", "diffusers", "transformers", "open_clip_torch", "scikit-learn", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out

