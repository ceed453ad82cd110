"""Does the partial-knowledge protocol score chance on null targets, and does it keep its power?
(run by hand; never in the test suite)

    python benchmarks/cv_null_bias.py [--runs 200] [--signal-runs 100] [--models mlp,logistic,cnn,threshold]
                                      [--sizes 32,128] [--cnn-sizes 32] [--first-seed 0] [--jobs 1]

Simulates null runs — features with no label dependence, of the shapes the attacks see — and runs each
attack model, on the same features and seeds, under three protocols:

- before: the protocol up to b3269ca — StratifiedKFold, the AUC of the pooled out-of-fold scores with
  DeLong's interval as is;
- pooled: the candidate fix that still pools — paired folds, DeLong's variance × (1 + ρ·q);
- after: mia_checks.protocol.cross_validate — paired folds; for a model that learns its ranking the AUC
  compares within folds, DeLong's variance × (1 + q) and the interval's upper end allows for the null
  AUC's left skew; a fixed ranking (ScoreThreshold) keeps the pooled AUC and plain DeLong.

Per row: mean AUC ± its standard error; the AUC's spread over runs against the interval's own σ
(√(factor · DeLong variance), averaged); the share of runs whose 95% interval lies wholly below ½ and
wholly above ½ (2.5% each for a valid interval); the same for accuracy with its Clopper–Pearson interval
(reported only: the fix is for the AUC); the share of runs the gate's default AUC bound fails (one-sided
at 0.05/12, > 0.55); and the 2.5% and 97.5% quantiles of (AUC − ½) / σ. Then a weak signal (members'
features shifted): the same figures, where the gate's share is its power.

Shapes: `mlp` E_img-like unit vectors (I-S; 32 dims at 32 + 32, 64 at 128 + 128); `logistic` II-P's six
distances; `cnn` I-P's generated pixels (K = 2, 8 × 8 × 3); `threshold` a white-box loss at four
timesteps (ScoreThreshold); `clid` CLiD's five measurements (CLiDThreshold).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # small fits: threads only contend
    os.environ.setdefault(_threads, "1")

import numpy as np

FOLDS = 5
GATE_LEVEL, GATE_THRESHOLD = 0.05 / 12, 0.55


def stratified_cross_validate(make_model, x, labels, folds, seed):
    """The protocol before the fix (mia_checks.protocol at b3269ca, known_fraction None): StratifiedKFold,
    pooled out-of-fold probabilities, DeLong's variance as is."""
    from sklearn.model_selection import StratifiedKFold

    from mia_checks.protocol import _checked, _fit

    scores = np.full(len(labels), np.nan)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        model = _fit(make_model(seed * 100 + fold), x[train], labels[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return _checked(labels, scores)


def features(model: str, n: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, labels) for n members + n non-members; members' features moved by `shift` (0: the null)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n, int), np.zeros(n, int)]
    member = labels.astype(bool)
    if model == "mlp":
        d = 32 if n <= 32 else 64
        x = rng.normal(size=(2 * n, d))
        x[member, :4] += shift  # a weak direction among many noise dimensions
        return x / np.linalg.norm(x, axis=1, keepdims=True), labels
    if model == "logistic":
        x = rng.normal(size=(2 * n, 6))
        x[member] -= shift  # members' generations a little closer to their images
        return x, labels
    if model == "cnn":
        x = rng.random((2 * n, 2, 8, 8, 3), dtype=np.float32)
        x[member] += shift  # members' generations a little brighter
        return x, labels
    if model == "threshold":
        x = rng.normal(size=(2 * n, 4))
        x[member] -= shift  # members' loss lower
        return x, labels
    if model == "clid":
        x = rng.normal(size=(2 * n, 5))
        x[member, 0] -= shift
        return x, labels
    raise ValueError(model)


def make_model(model: str):
    from mia_checks.attacks.base import ScoreThreshold, logistic, mlp
    from mia_checks.attacks.blackbox import SmallCNN
    from mia_checks.attacks.whitebox import CLiDThreshold

    return {"mlp": mlp, "logistic": logistic, "cnn": SmallCNN, "threshold": ScoreThreshold,
            "clid": CLiDThreshold}[model]


def one_run(job: tuple[str, int, float, int]) -> dict:
    from dataclasses import replace

    import torch

    from mia_checks import metrics
    from mia_checks.gate import lower_bound
    from mia_checks.protocol import cross_validate
    from mia_checks.results import evaluate

    torch.set_num_threads(1)
    model, n, shift, seed = job
    x, labels = features(model, n, seed, shift)
    before = stratified_cross_validate(make_model(model), x, labels, FOLDS, seed)
    after = cross_validate(make_model(model), x, labels, FOLDS, seed)
    # The candidate fix that still compares across folds: paired folds, the variance factor, pooled AUC.
    pooled = replace(after, auc_within_folds=False, auc_skewness=0.0)
    out = {}
    for protocol, oof in (("before", before), ("pooled", pooled), ("after", after)):
        result = evaluate(model, "sim", "partial-knowledge", oof)
        _, variance = metrics.auc_delong(labels, oof.scores, oof.auc_strata)
        out[protocol] = (result.auc.value, result.auc.low, result.auc.high, np.sqrt(oof.auc_variance_factor * variance),
                         result.accuracy.value, result.accuracy.low, result.accuracy.high,
                         lower_bound(result, "auc", GATE_LEVEL) > GATE_THRESHOLD)
    return out


def summarise(rows: list[dict], protocol: str) -> dict:
    a = np.array([r[protocol] for r in rows], dtype=float)
    auc, low, high, sd_claimed, acc, acc_low, acc_high, gate = a.T
    k = len(a)
    return {"auc": auc.mean(), "se": auc.std(ddof=1) / np.sqrt(k), "sd": auc.std(ddof=1), "claimed": sd_claimed.mean(),
            "below": np.mean(high < 0.5), "above": np.mean(low > 0.5), "acc": acc.mean(),
            "acc_below": np.mean(acc_high < 0.5), "acc_above": np.mean(acc_low > 0.5), "gate": gate.mean(), "runs": k,
            "z": np.quantile((auc - 0.5) / sd_claimed, [0.025, 0.975])}


SHIFTS = {"mlp": 0.6, "logistic": 0.35, "cnn": 0.03, "threshold": 0.35, "clid": 0.5}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200, help="null runs per model and size")
    parser.add_argument("--signal-runs", type=int, default=100, help="weak-signal runs per model and size (0: none)")
    parser.add_argument("--models", default="mlp,logistic,cnn,threshold")
    parser.add_argument("--sizes", default="32,128", help="members (= non-members) per run")
    parser.add_argument("--cnn-sizes", default="32", help="sizes for the small CNN (costly)")
    parser.add_argument("--first-seed", type=int, default=0, help="to extend a run: seeds first … first+runs−1")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    print(f"{FOLDS}-fold; before: StratifiedKFold, pooled AUC, DeLong as is; pooled: paired folds, pooled AUC, "
          "DeLong × (1 + ρq); after: mia_checks.protocol.cross_validate\n")
    header = (f"{'model':9s} {'n+n':>7s} {'signal':>6s} {'protocol':8s} {'mean AUC ± SE':>16s} {'sd':>6s} "
              f"{'intvl sd':>8s} {'below':>6s} {'above':>6s} | {'acc':>5s} {'below':>6s} {'above':>6s} | "
              f"{'gate':>5s} {'z 2.5%':>6s} {'97.5%':>6s} {'runs':>4s} {'s':>5s}")
    print(header)
    with ProcessPoolExecutor(args.jobs) as pool:
        for model in args.models.split(","):
            sizes = args.cnn_sizes if model == "cnn" else args.sizes
            for n in map(int, sizes.split(",")):
                for shift, runs in ((0.0, args.runs), (SHIFTS[model], args.signal_runs)):
                    if runs == 0:
                        continue
                    start = time.perf_counter()
                    seeds = range(args.first_seed, args.first_seed + runs)
                    rows = list(pool.map(one_run, [(model, n, shift, seed) for seed in seeds]))
                    seconds = time.perf_counter() - start
                    for protocol in ("before", "pooled", "after"):
                        s = summarise(rows, protocol)
                        print(f"{model:9s} {f'{n}+{n}':>7s} {shift:6.2f} {protocol:8s} "
                              f"{s['auc']:.4f} ± {s['se']:.4f} {s['sd']:6.3f} {s['claimed']:8.3f} "
                              f"{s['below']:6.1%} {s['above']:6.1%} | {s['acc']:.3f} {s['acc_below']:6.1%} "
                              f"{s['acc_above']:6.1%} | {s['gate']:5.0%} {s['z'][0]:6.2f} {s['z'][1]:6.2f} {s['runs']:4d} "
                              f"{seconds:5.0f}", flush=True)


if __name__ == "__main__":
    main()
