"""The audit: one target, two reference sets, every attack under the run's protocol. Orchestration only.

Everything is lazy and computed once: the target loads when the first image (or white-box score) is
needed, images come from the generation cache, features are shared by all attacks, and each attack's
result is kept. The spine: reference sets → generations → features | white-box measurements → attack
models under the protocol → results → the gate's verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from . import targets
from .access.base import DENOISER
from .attacks import ATTACKS, BASELINE, BLACK_BOX, WHITE_BOX, Attack
from .attacks.compatibility import calls_per_image, runnable, skip_reason
from .data import LazyImages, ReferenceSet, near_duplicates
from .errors import UnmeasurableError, WhiteBoxError, loading
from .exposure import ExposureResult, exposure_skip_reason, flag_members
from .features import QueryFeatures, compute_features, compute_query_features
from .gate import DistributionShift, GateRule, Verdict, decide, distribution_shift
from .generation import GenerationCache
from .measurements import WhiteBoxScores
from .preflight import load_reference_sets
from .protocol import apply_frozen, cross_validate, paired_folds, query_groups
from .results import AttackResult, evaluate
from .settings import AuditSettings
from .targets import GenerationSettings, Target, TargetSpec, resolve_device


@dataclass(frozen=True)
class ImagePair:
    """A member query image and what the target generated for its caption."""

    caption: str
    query: np.ndarray  # H×W×3 uint8
    generated: list[np.ndarray]  # K images


class Audit:
    def __init__(self, settings: AuditSettings, members: ReferenceSet | None = None,
                 nonmembers: ReferenceSet | None = None, progress: bool = True, run_id: str | None = None,
                 spec: TargetSpec | None = None, shadow_spec: TargetSpec | None = None):
        """`spec`, `shadow_spec`: the targets as preflight resolved them (resolved here when not given)."""
        self.settings = settings
        self.run_id = run_id  # scope of an undeclared callable target's generations
        s = settings
        self.spec = spec or targets.resolve(s.target, allow_pickle=s.allow_pickle, config=s.target_config,
                                            lora=s.lora)
        if shadow_spec is None and s.shadow_target:
            shadow_spec = targets.resolve(s.shadow_target, "--mia-shadow-target", allow_pickle=s.allow_pickle,
                                          config=s.target_config)
        self.shadow_spec = shadow_spec
        if members is None or nonmembers is None:
            members, nonmembers = load_reference_sets(settings)
        self.members, self.nonmembers = members, nonmembers
        self.progress = progress
        self._results: dict[str, AttackResult] = {}
        self._exposure: dict[str, ExposureResult] = {}
        self._generated = False  # the generation cache holds every image this audit reads

    @property
    def specs(self) -> list[TargetSpec]:
        """The target, and the shadow model in shadow mode: what an attack must be able to run on."""
        return [t for t in (self.spec, self.shadow_spec) if t is not None]

    @cached_property
    def target(self) -> Target:
        s = self.settings
        return targets.load(self.spec, self.generation_settings, s.allow_pickle, s.target_identity, self.run_id)

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
    def grouping(self) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        """(the query groups, the groups the folds keep whole, why not). Groups (protocol.query_groups):
        queries that share a caption, and so their generations, and near-duplicate query images
        (data.near_duplicates, within a set: across the sets they are refused). When they cannot make folds
        that each hold members and non-members — one caption for a whole DreamBooth-style set — the folds
        fall back to ungrouped, and the report says what that costs."""
        thumbnails = np.concatenate([self.members.thumbnail_array(), self.nonmembers.thumbnail_array()])
        linked = [(i, j) for i, j, _ in near_duplicates(thumbnails, thumbnails) if i != j]
        groups = query_groups(self.captions, linked)
        try:
            paired_folds(self.labels, self.settings.folds, self.settings.seed, groups)
        except UnmeasurableError:
            largest = int(np.bincount(groups).max())
            return groups, None, (
                f"the largest group of queries sharing a caption or an image holds {largest} of {len(groups)}, "
                f"too many to keep in one of {self.settings.folds} balanced folds: the folds ignore the groups, so "
                "queries with one caption can sit in different folds with identical generations, and the attacks "
                "that read generations alone (I-P, I-S) cannot tell them apart and may read below chance")
        return groups, groups, None

    @property
    def query_groups(self) -> np.ndarray | None:
        """The groups the folds keep whole, or None when they cannot (see `grouping`)."""
        return self.grouping[1]

    @cached_property
    def generation_cache(self) -> GenerationCache:
        g = self.generation_settings
        key = {"steps": g.steps, "guidance": g.guidance, "device": g.device.split(":")[0]}
        if self.target.sampling is not None:  # token sampling: its own settings; steps and guidance do not apply
            key = {"device": key["device"], "sampling": self.target.sampling}
        return GenerationCache(self.settings.cache_root(), self.target, key)

    def read_generated(self, rows: list[int]) -> np.ndarray:
        """(len(rows), K, H, W, 3) uint8: the generations of those queries, generated first if missing."""
        s = self.settings
        if not self._generated:
            self.generation_cache.ensure(self.captions, s.seed, s.generations, s.batch_size, self.progress)
            self._generated = True
        return self.generation_cache.read(self.captions, s.seed, s.generations, rows)

    def image_pairs(self, rows: list[int]) -> list[ImagePair] | None:
        """Query / generated pairs of the queries `rows` (members: indices below len(members)); from the cache
        only (None when the generations are not there: a report never triggers generation)."""
        try:
            generated = self.generation_cache.read(self.captions, self.settings.seed, self.settings.generations, rows)
        except (OSError, SyntaxError, ValueError):
            return None
        queries = self.query_images
        return [ImagePair(self.captions[i], queries[i], list(g)) for i, g in zip(rows, generated)]

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
        """Why an attack of the run does not run on this target (None: it runs): attacks.compatibility."""
        return skip_reason(attack_id, self.specs)

    @property
    def attacks(self) -> tuple[str, ...]:
        """The attacks that run: the chosen ones, less white-box attacks the target cannot serve."""
        return runnable(self.settings.attacks, self.specs)

    def calls_per_image(self, attack_id: str) -> int:
        return calls_per_image(attack_id, self.spec, self.settings)

    @cached_property
    def gate(self) -> GateRule:
        return self.settings.gate_for(self.attacks, self.exposure_tests)

    @cached_property
    def whitebox_access(self):
        """White-box access to the target's weights (loads the checkpoint): a Denoiser, or a token model's."""
        from .access import open_access

        if self.target.model_fn is None:
            raise WhiteBoxError(f"{self.settings.target}: {self.spec.no_access}")
        with loading(f"the target {self.settings.target}"):
            model = self.target.model_fn()
        return open_access(self.spec.access, model, self.settings.target)

    def measurements(self, attack: Attack) -> np.ndarray:
        """A white-box attack's per-query measurements, from the score cache or the model."""
        return self._whitebox_scores(attack.id, attack.probe_for(self.spec.access))

    @cached_property
    def shadow(self) -> Audit:
        """The shadow model's audit: same settings, its own checkpoint and reference sets."""
        s = self.settings
        shadow_settings = replace(s, target=s.shadow_target, members=s.shadow_members, nonmembers=s.shadow_nonmembers,
                                  lora=None, shadow_target=None, shadow_members=None, shadow_nonmembers=None)
        return Audit(shadow_settings, *load_reference_sets(s, shadow=True), progress=self.progress, run_id=self.run_id,
                     spec=self.shadow_spec)

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
                                     None if attack is BASELINE else self.settings.known_fraction, self.query_groups)
            self._results[attack_id] = evaluate(attack.id, attack.intuition, protocol, oof, seed=self.settings.seed,
                                                delta=self.epsilon_delta)
        return self._results[attack_id]

    @property
    def epsilon_delta(self) -> float:
        """The δ at which each ε lower bound is read: the one the target declares (pure DP, δ = 0, when none)."""
        return self.spec.privacy.delta if self.spec.privacy else 0.0

    def inputs(self, attack: Attack):
        """What an attack reads: the generation features (black-box) or its probe's measurements (white-box)."""
        if attack is BASELINE:
            return self.query_features
        return self.features if attack.access == BLACK_BOX else self.measurements(attack)

    # -- exposure tests: which members are exposed (exposure/) ----------------------------------------------

    def exposure_skip_reason(self, test: str) -> str | None:
        """Why an exposure test does not run in this audit (None: it runs): exposure.exposure_skip_reason."""
        return exposure_skip_reason(test, self.spec)

    @property
    def exposure_tests(self) -> tuple[str, ...]:
        """The exposure tests that run: those the run holds (settings.exposure_tests) that this target can serve."""
        return tuple(t for t in self.settings.exposure_tests if self.exposure_skip_reason(t) is None)

    def exposure_calls_per_image(self, test: str) -> int:
        """Model calls per query image: the memorization probes' (the noise magnitude's and the loss's, which
        the loss attack shares), or none beyond the audit's own generations."""
        from .exposure.memorization import PROBE

        if test != "memorization":
            return 0
        return PROBE.calls(self.settings.whitebox) + ATTACKS["loss"].probe_for(DENOISER).calls(self.settings.whitebox)

    def exposure(self, test: str) -> ExposureResult:
        """An exposure test over the members, its null calibrated on the non-members."""
        if test not in self._exposure:
            self._exposure[test] = self._memorization() if test == "memorization" else self._regurgitation()
        return self._exposure[test]

    def _memorization(self) -> ExposureResult:
        """Two criteria: Wen et al.'s noise magnitude of the caption (no image needed), and the denoising loss of
        the member image itself (the loss attack's measurements, shared with it): how much better the model
        fits a member than any image it never saw."""
        from .exposure.memorization import PROBE, caption_null

        s, m = self.settings, len(self.members)
        magnitude = self._whitebox_scores("memorization", PROBE).mean(1)
        loss = self._whitebox_scores("loss", ATTACKS["loss"].probe_for(DENOISER)).mean(1)
        criteria = {"noise magnitude": (magnitude[:m], caption_null(magnitude[m:], self.captions[m:]), False),
                    "denoising loss": (loss[:m], loss[m:], True)}
        return flag_members("memorization", WHITE_BOX, criteria, self.gate.level,
                            self.exposure_calls_per_image("memorization"),
                            null_label="non-members' (distinct captions for the noise magnitude)")

    def _whitebox_scores(self, name: str, probe) -> np.ndarray:
        s = self.settings
        scores = WhiteBoxScores(s.cache_root(), self.target.identity, name, probe, s.whitebox, s.seed,
                                self.generation_settings.device.split(":")[0])
        queries = self.query_images
        return scores.compute(queries, list(queries.hashes), self.captions, lambda: self.whitebox_access, s.batch_size)

    def _regurgitation(self) -> ExposureResult:
        from .exposure.regurgitation import copy_distances

        f, m = self.features, len(self.members)
        distances = copy_distances(f.query_thumbnails, f.generated_thumbnails, f.query_embeddings,
                                   f.generated_embeddings)
        # Pixel distances on the log scale, 1 − cosine on its own (calibration.flag_members: measured tails).
        criteria = {name: (d[:m], d[m:], True, name == "pixel") for name, (d, _) in distances.items()}

        def evidence(name: str, member: int) -> dict:
            return {"generation": int(distances[name][1][member])}

        return flag_members("regurgitation", BLACK_BOX, criteria, self.gate.level, 0, evidence,
                            null_label="non-members (each against its own caption's generations)")

    def verdict(self, attack_id: str) -> Verdict:
        return decide(self.result(attack_id), self.gate, self.settings.seed)

    def distribution_shift(self) -> DistributionShift:
        """The guard: does an attack on the query images alone (no model) separate the sets? (gate.py)"""
        return distribution_shift(self.result(BASELINE.id), self.settings.alpha)
