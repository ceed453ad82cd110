"""How attack models are trained: the threat models. Nothing is ever fitted on the data it scores.

- partial-knowledge (`cross_validate`): k-fold over members ∪ non-members, every fold holding as many
  members as non-members (`paired_folds`). The attack model is fitted on k−1 folds (the part whose
  membership the attacker knows; `known_fraction` shrinks it) and scores the held-out fold; out-of-fold
  scores are pooled. The decision rule (the classifier's own boundary, probability ≥ ½) is learnt on the
  training folds only. How the AUC and its interval are drawn from such scores is set here too, because
  it depends on the protocol: see `cross_validate`.
- shadow-model (`apply_frozen`): fitted on a shadow model's features and labels, then applied, frozen,
  to the target's — decision rule included. The scores are independent given the frozen model: plain
  DeLong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import UnmeasurableError


# Tags of the protocol's own random streams, default_rng([tag, seed]): data drawn elsewhere from
# default_rng(seed) — a simulation, a test — shares no random numbers with the folds. (A first simulation
# did, and its features lined up with their folds.)
_FOLDS_STREAM, _KNOWN_STREAM = 0x666F6C6473, 0x6B6E6F776E

# Each fold's attack model (and its known part) is seeded seed·FOLD_SEEDS + fold; scikit-learn takes seeds
# below 2³², which bounds the run's seed (--mia-seed).
FOLD_SEEDS = 100
MAX_SEED = (2**32 - 1) // FOLD_SEEDS - 1

# The skewness allowed for in a learnt model's cross-validated AUC (see cross_validate).
LEARNT_AUC_SKEWNESS = -0.4


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold membership probabilities and decisions, aligned with the labels, and how an AUC is to be
    read from them (by metrics.auc_interval and metrics.auc_lower_bound; plain data, no computation).

    Cross-validated scores carry `folds` (the fold that scored each query). `auc_within_folds`: the AUC
    compares members with non-members of the same fold only; `auc_variance_factor` multiplies DeLong's
    variance; `auc_skewness` (< 0) lengthens the interval's upper end. The defaults — all pairs, plain
    DeLong — fit scores from one frozen model."""

    labels: np.ndarray
    scores: np.ndarray
    decisions: np.ndarray
    folds: np.ndarray | None = None
    auc_within_folds: bool = False
    auc_variance_factor: float = 1.0
    auc_skewness: float = 0.0

    @property
    def design_effect(self) -> float:
        """How much the dependence of out-of-fold outcomes inflates the variance of a count of them (correct
        decisions, true and false positives): 1 + (auc_variance_factor − 1) / 2, i.e. 1 + ρ·q/2 — the same
        mechanism as the AUC's (each query trains the models that score the others), half as strong on a
        count of decisions: 1.5 for a learnt model by default. Measured on 400 null runs each (logistic
        32 + 32 and 128 + 128, MLP 32 + 32; benchmarks/oof_dependence.py): read as independent, 8.5–11.8%
        of 95% accuracy intervals excluded ½ and the 5% shift test rejected 5.2–9.2%; at their effective
        size 2.8–5.0% and 4.0–5.2%. A fixed ranking (ρ = 0) keeps 1."""
        return 1.0 + (self.auc_variance_factor - 1.0) / 2

    @property
    def auc_strata(self) -> np.ndarray | None:
        """The strata the AUC compares within (metrics.auc_delong): the folds, or None for all pairs."""
        return self.folds if self.auc_within_folds else None


def _fit(model, x: np.ndarray, labels: np.ndarray):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # Small training sets: an MLP that stops at max_iter is still a valid attack model.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, labels)


def _checked(labels: np.ndarray, scores: np.ndarray, **auc) -> OutOfFold:
    if not np.isfinite(scores).all():
        raise FloatingPointError("the attack model produced non-finite scores")
    return OutOfFold(labels, scores, (scores >= 0.5).astype(int), **auc)


def apply_frozen(make_model: Callable[[int], object], shadow_x: np.ndarray, shadow_labels: np.ndarray,
                 x: np.ndarray, labels: np.ndarray, seed: int) -> OutOfFold:
    model = _fit(make_model(seed), shadow_x, np.asarray(shadow_labels))
    return _checked(np.asarray(labels), model.predict_proba(x)[:, 1])


def query_groups(captions: Sequence[str], linked: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """Group ids of the queries (0, 1, …, in order of first appearance): queries that share a caption — and
    so share their generations, which are seeded by caption — are one group, and so are the pairs in `linked`
    (near-duplicate query images). Connected components, by union-find."""
    parent = list(range(len(captions)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    pairs = [(first.setdefault(c, i), i) for i, c in enumerate(captions)] + [tuple(p) for p in linked]
    for i, j in pairs:
        parent[root(i)] = root(j)
    roots = [root(i) for i in range(len(captions))]
    ids: dict[int, int] = {}
    return np.array([ids.setdefault(r, len(ids)) for r in roots], dtype=int)


def paired_folds(labels: np.ndarray, folds: int, seed: int,
                 groups: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) index pairs, seeded: members and non-members are shuffled apart and dealt
    round-robin, so the i-th member and the i-th non-member share a fold. With as many members as
    non-members (the audit balances them) every test fold, and so every training set, is balanced.

    Why not StratifiedKFold: it balances each fold's size, not its classes — 32 + 32 in 5 folds gives
    test folds of 7 + 6, whose training folds hold 25 + 26. A model whose base rate or cut follows its
    training folds then leans towards the class its test fold has fewer of, and the pooled scores
    anti-correlate with the labels: the pessimistic bias of cross-validation at no signal (Parker et al.
    2007, "Stratification bias in low signal microarray studies"). A model that learns only the base rate
    scores a pooled AUC of 0.463 on 32 + 32 with StratifiedKFold, exactly ½ with paired folds;
    ScoreThreshold, over 1,000 null runs, 0.4928 ± 0.0021 and 0.4976 ± 0.0021.

    `groups` (query_groups) keep queries together: each group of two or more goes whole into one fold
    (largest first, to the fold it leaves most even), then the other queries are dealt, class by class, to
    the folds with the fewest of their class. Why: a member and a non-member with one caption get identical
    generations, hence identical generation features; in different folds each teaches the model the opposite
    label for the other — anti-learning, which read 0.35–0.46 AUC on a real fine-tune and hides real leakage.
    Without groups of two or more the folds are exactly the ungrouped ones. A fold left without members
    or without non-members is an UnmeasurableError: nothing in it could be compared."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([_FOLDS_STREAM, seed])
    fold_of = np.full(len(labels), -1)
    counts = np.zeros((folds, 2), dtype=int)  # test-fold sizes, [fold, class]
    if groups is not None:
        ids, sizes = np.unique(groups, return_counts=True)
        shared = rng.permutation(ids[sizes > 1]) if (sizes > 1).any() else []
        for group in sorted(shared, key=lambda g: -sizes[np.searchsorted(ids, g)]):
            where = np.flatnonzero(groups == group)
            added = np.bincount(labels[where], minlength=2)
            fold = int(np.argmin(((counts + added) ** 2).sum(1)))
            fold_of[where], counts[fold] = fold, counts[fold] + added
    for cls in (1, 0):
        for i in rng.permutation(np.flatnonzero((labels == cls) & (fold_of < 0))):
            fold = int(np.argmin(counts[:, cls]))  # with nothing placed: round-robin, i % k
            fold_of[i], counts[fold, cls] = fold, counts[fold, cls] + 1
    empty = [f for f in range(folds) if not counts[f].all()]
    if empty:
        largest = 0 if groups is None else int(np.bincount(groups).max())
        raise UnmeasurableError(
            f"the queries cannot be split into {folds} folds that each hold members and non-members: queries that "
            f"share a caption (or are near-duplicate images) stay in one fold, and the largest such group holds "
            f"{largest} of {len(labels)}. Give the sets more distinct captions, or use fewer folds (--mia-folds).")
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]


def known_part(train: np.ndarray, labels: np.ndarray, known_fraction: float | None, seed: int) -> np.ndarray:
    """The training folds cut down to `known_fraction` of all queries, drawn per class in proportion to
    the training folds' own counts (seeded): the ablation of the attacker's knowledge. None keeps all k−1
    folds. Balanced training folds stay exactly balanced — so the part may be one query off the fraction —
    which keeps `paired_folds`' protection against base-rate bias."""
    size = None if known_fraction is None else max(round(known_fraction * len(labels)), 4)
    if size is None or size >= len(train):
        return train
    rng = np.random.default_rng([_KNOWN_STREAM, seed])
    kept = []
    for cls in (1, 0):
        part = train[labels[train] == cls]
        take = min(len(part), max(1, round(size * len(part) / len(train))))
        kept.append(rng.choice(part, take, replace=False))
    return np.sort(np.concatenate(kept))


def _ranking_learnt(model) -> float:
    """ρ, how much of the model's ranking of queries it learns from its training labels: 1 (the default)
    for a classifier on features; 0 for a model that ranks by a fixed score and learns only its direction
    and cut; in between for one that picks among a few fixed rankings. A model declares it as
    `ranking_learnt`."""
    return float(getattr(model, "ranking_learnt", 1.0))


def cross_validate(make_model: Callable[[int], object], x: np.ndarray, labels: np.ndarray, folds: int, seed: int,
                   known_fraction: float | None = None, groups: np.ndarray | None = None) -> OutOfFold:
    """Out-of-fold scores over `paired_folds` (with `groups`, queries that share a caption or an image stay in
    one fold); with `known_fraction`, each attack model learns from only that fraction of all queries (drawn
    from its training folds), so the held-out folds are scored exactly as before.

    How the AUC is read from them. Out-of-fold scores are not independent: query j trains the model that
    scores query i, and i the one that scores j. Where the model learns its ranking from labels (ρ, see
    `_ranking_learnt`), this has three effects on a null target, measured over seeded null runs
    (benchmarks/cv_null_bias.py; README there):

    1. Spread. The chance agreement that model f fits between the labels of folds g and f shows twice: in
       f's scores under a model trained on g, and in g's under one trained on f. The AUC varies twice as
       much as DeLong's variance says (which assumes independent scores): for a linear score exactly 2,
       for any k (Var Σ_{f≠g} D_f·D_g = 2·d·Σ_f N_f(N − N_f), DeLong's d·Σ_f N_f(N − N_f), D_f fold f's
       member-minus-non-member feature sum). Measured var(AUC) / DeLong: logistic regression and MLP
       1.7–2.0 at no signal (200–1,000 runs, 32 + 32 and 128 + 128), 1.7–2.1 at AUC 0.6–0.8; the small
       CNN 1.2–1.5, for which 2 is conservative. With a part q of the training folds known, a pair trains
       each other's models with probability q², and the factor is 1 + q (measured 1.40 at q = 0.39). The
       variance factor is 1 + ρ·q: 2 by default, 1 for a fixed ranking.
    2. Bias, when scores from different folds are compared. i's score carries j's label against it (j
       trained i's model as a non-member) and j's carries i's; the folds both models share separate i
       and j least when they are alike, just when that pull is strongest. The pooled AUC of a null linear
       model is 0.4855 on 2 features, 0.4925 on 6, 0.4971 on 32 (3,000–4,000 runs; SE 0.002). Compared
       within folds (each fold scored by one model that never saw it) the AUC is exactly ½ in expectation
       (measured 0.4990–0.5013). So a learnt model's AUC compares within folds (ρ ≥ ½); a fixed ranking's
       compares all pairs: it has no such bias, and small folds would only make DeLong's variance noisier.
    3. Skew. The null AUC of a learnt model is skewed to the left (its 2.5% quantile 2.0–2.15 standard
       deviations below ½, its 97.5% 1.8–1.95 above: 10,000 runs of a linear model, 6 to 64 features), so
       a symmetric 95% interval lies wholly below ½ in 3% of null runs. The interval's upper end allows
       for a skewness of −0.4 (Cornish–Fisher: + 0.19·σ at 95%); its lower end — the gate's bound — is
       left as it is, already on the safe side."""
    labels = np.asarray(labels)
    scores = np.full(len(labels), np.nan)
    fold_of = np.full(len(labels), -1)
    known, learnt = [], 1.0
    for fold, (train, test) in enumerate(paired_folds(labels, folds, seed, groups)):
        kept = known_part(train, labels, known_fraction, seed * FOLD_SEEDS + fold)
        known.append(len(kept) / len(train))
        model = make_model(seed * FOLD_SEEDS + fold)
        learnt = _ranking_learnt(model)
        scores[test] = _fit(model, x[kept], labels[kept]).predict_proba(x[test])[:, 1]
        fold_of[test] = fold
    within = learnt >= 0.5
    return _checked(labels, scores, folds=fold_of, auc_within_folds=within,
                    auc_variance_factor=1.0 + learnt * float(np.mean(known)),
                    auc_skewness=LEARNT_AUC_SKEWNESS if within else 0.0)
