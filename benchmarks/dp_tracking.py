"""Does leakage fall as DP-SGD tightens, is the ε lower bound sound, and what does the defense cost the
model? (run by hand; issue 22)

    python benchmarks/dp_tracking.py --seeds 10 [--targets finetune,finetune-dp-control,finetune-dp50,...]
                                     [--utility] [--series DIR]

Targets: `sd-base` fine-tuned on the 128 members by the train_text_to_image.py recipe (`finetune`), the same
recipe with DP-SGD's per-sample clipping and Poisson sampling but no noise (`finetune-dp-control`), and with
noise for ε ≈ 50, 8, 1 (`finetune-dp50`, `-dp8`, `-dp1`; each folder's privacy.json says what the accountant
proved, at δ = 1/256). Per target and seed (the seed changes the white-box noise and timesteps, the folds and
the attack models): the best white-box attack's AUC and TPR@1%FPR with their intervals, and the largest ε
lower bound over every attack (white-box and black-box) against the declared ε.

--utility: what the defense costs, per target (seed 0): the held-out denoising error (the non-members' mean
ε-prediction MSE at t = 100, 300, …, 900, fixed noise), and how often a generation for a non-member's caption
shows the caption's digit (a logistic-regression reader trained on sklearn's 8×8 digits, none of which it is
scored on… the non-members' own images give its accuracy on real digits for scale).

--series DIR: also run the gate once per target (seed 0) through pytest with --mia-save into DIR and draw
`mia-checks history` of it (DIR/trend.html, DIR/trend.png): the README's picture.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mia_checks.attacks import GROUPS
from mia_checks.audit import Audit
from mia_checks.settings import build_settings
from mia_checks.testbed import audit_sets, ensure_built
from mia_checks.testbed.build import ALIASES

TARGETS = ("finetune", "finetune-dp-control", "finetune-dp50", "finetune-dp8", "finetune-dp1")


def raw_options(root: Path, target: str, seed: int, cache: str, attacks: str) -> dict:
    members, nonmembers = (str(root / s) for s in audit_sets(target))
    return {"target": str(root / ALIASES.get(target, target)), "members": members, "nonmembers": nonmembers,
            "embedder": str(root / "clip"), "guidance": "1", "seed": str(seed), "cache-dir": cache,
            "attacks": attacks}


def measure(root: Path, target: str, seed: int, cache: str, blackbox: bool) -> dict:
    audit = Audit(build_settings(raw_options(root, target, seed, cache, "all" if blackbox else "whitebox")),
                  progress=False)
    results = {a: audit.result(a) for a in audit.attacks}
    white = [results[a] for a in GROUPS["whitebox"] if a in results]
    best = max(white, key=lambda r: r.auc.value)
    bound_attack, bound = max(((a, r.epsilon_lower_bound) for a, r in results.items()), key=lambda ab: ab[1])
    privacy = audit.spec.privacy
    return {"best": best.attack, "auc": best.auc, "tpr": best.tpr_at_1pct_fpr, "eps_lb": bound,
            "eps_lb_attack": bound_attack, "declared": None if privacy is None else privacy.epsilon,
            "aucs": {a: round(r.auc.value, 3) for a, r in results.items()}}


def utility(root: Path, target: str) -> dict:
    """Held-out denoising error and digit correctness of generations (see the module docstring)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from mia_checks.testbed.build import _load_split
    from mia_checks.testbed.digits import NUMBER_WORDS
    from mia_checks.testbed.train import encode_latents, tokenize

    torch.manual_seed(0)
    pipe = StableDiffusionPipeline.from_pretrained(root / ALIASES.get(target, target), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    images, captions = _load_split(root, audit_sets("finetune")[1])  # every target on the fine-tunes' non-members
    with torch.no_grad():
        latents = encode_latents(pipe.vae, images)
        hidden = pipe.text_encoder(tokenize(pipe.tokenizer, captions))[0]
        errors = []
        g = torch.Generator().manual_seed(0)
        for t in (100, 300, 500, 700, 900):
            noise = torch.randn(latents.shape, generator=g)
            tt = torch.full((len(latents),), t)
            noisy = pipe.scheduler.add_noise(latents, noise, tt)
            errors.append(((pipe.unet(noisy, tt, encoder_hidden_states=hidden).sample - noise) ** 2).mean().item())
        generated = pipe(captions, num_inference_steps=25, guidance_scale=1.0, output_type="np",
                         generator=torch.Generator().manual_seed(0)).images
    digits = load_digits()
    reader = LogisticRegression(max_iter=5000).fit(digits.data / 16.0, digits.target)

    def read(batch: np.ndarray) -> np.ndarray:  # 32×32 RGB in [0, 1] → 8×8 means, as load_digits' scale
        grey = np.asarray(batch, float).mean(-1)
        return reader.predict(grey.reshape(len(grey), 8, 4, 8, 4).mean((2, 4)).reshape(len(grey), 64))

    truth = np.array([NUMBER_WORDS.index(c.split(",")[0].split()[-1]) for c in captions])
    return {"heldout_mse": float(np.mean(errors)), "digit_correct": float((read(generated) == truth).mean()),
            "reader_on_real": float((read(images / 255.0) == truth).mean())}


def save_series(root: Path, targets: list[str], folder: Path, cache: str) -> None:
    """The gate once per target through pytest, each run saved into `folder`; then its trend report."""
    folder.mkdir(parents=True, exist_ok=True)
    for target in targets:
        raw = raw_options(root, target, 0, cache, "all")
        args = [f"--mia-{k}={v}" for k, v in raw.items()] + [f"--mia-storage={folder}", f"--mia-save={target}",
                                                                "--mia-track", "-p", "no:cacheprovider", "-q"]
        with tempfile.TemporaryDirectory() as empty:
            subprocess.run([sys.executable, "-m", "pytest", *args, "--rootdir", empty], cwd=empty, check=False,
                           stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "mia_checks.cli", "history", f"--mia-storage={folder}",
                    f"--mia-history={folder / 'trend.html'}", f"--mia-history={folder / 'trend.png'}"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--blackbox", action="store_true", help="run the black-box attacks too (ε lower bound)")
    parser.add_argument("--utility", action="store_true")
    parser.add_argument("--series", type=Path, default=None)
    parser.add_argument("--cache-dir", default=None, help="generation cache (default: a temporary folder)")
    args = parser.parse_args()
    targets = args.targets.split(",")
    root = ensure_built(["data", "clip", "data-ft", *targets])
    cache = args.cache_dir or tempfile.mkdtemp(prefix="mia-dp-")
    if args.utility:
        for target in ["sd-base", *targets]:
            print(f"utility {target}: {json.dumps(utility(root, target))}", flush=True)
    for target in targets:
        start = time.perf_counter()
        rows = [measure(root, target, seed, cache, args.blackbox) for seed in range(args.seeds)]
        aucs = np.array([r["auc"].value for r in rows])
        tprs = np.array([r["tpr"] for r in rows])
        lows = np.array([r["auc"].low for r in rows])
        bounds = np.array([r["eps_lb"] for r in rows])
        declared = rows[0]["declared"]
        sound = "n/a (no DP claim)" if declared is None else f"{int((bounds <= declared).sum())}/{len(rows)} ≤ declared"
        highs = np.array([r["auc"].high for r in rows])
        print(f"{target}: declared ε {declared}; best white-box AUC mean {aucs.mean():.3f} [mean 95% interval "
              f"{lows.mean():.3f}, {highs.mean():.3f}] (seeds {aucs.min():.3f}–"
              f"{aucs.max():.3f}; lower bound > 0.5 in {int((lows > 0.5).sum())}/{len(rows)}); TPR@1%FPR mean "
              f"{np.nanmean(tprs):.3f}; best attacks {sorted({r['best'] for r in rows})}; largest ε lower bound "
              f"mean {bounds.mean():.2f}, max {bounds.max():.2f}; {sound}; {time.perf_counter() - start:.0f} s",
              flush=True)
        print(f"  seed 0: {rows[0]['aucs']}; best {rows[0]['best']} AUC {rows[0]['auc'].value:.3f} "
              f"[{rows[0]['auc'].low:.3f}, {rows[0]['auc'].high:.3f}]", flush=True)
    if args.series:
        save_series(root, targets, args.series, cache)


if __name__ == "__main__":
    main()
