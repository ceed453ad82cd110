"""White-box attacks for the model's owner: they query the denoiser a few times per image instead of
sampling whole images. Definitions pinned in docs/attacks.md; lower error = member throughout.

| id    | measured per image (Denoiser notation)                                    | denoiser calls      | model              |
| loss  | ‖ε_θ(x_t, t, c) − ε‖² (mean over latent elements), per t of a grid        | one per t           | threshold on mean  |
| SimA  | ‖ε_θ(x₀, t, c)‖⁴₄, the clean latent at timestep t, per t of a grid         | one per t           | threshold on mean  |
| PIA   | Σ|ε₀ − ε_θ(√ᾱ_t·x₀ + √(1−ᾱ_t)·ε₀, t, c)|⁴, ε₀ = ε_θ(x₀, 0, c)              | 2                   | threshold          |
| SecMI | ‖x̃_t − Φ(Φ(x̃_t, t→t+k), t+k→t)‖², x̃_t the DDIM inversion of x₀ to t      | t/k + 2             | threshold          |
| CLiD  | L(x, c) and D_i = L(x, c*_i) − L(x, c) for reduced captions c*             | |T| × (1 + |c*|)    | CLiD_th            |

Noise ε is drawn per image from (seed, image content hash, t); no classifier-free guidance.

Token models (seq2seq DALL·E-style, aMUSEd) have no denoiser: their white-box access is the model's own
training loss on the query's VQ tokens (`access/tokens.py`), so only `loss` has a token probe:

| loss  | seq2seq: teacher-forced NLL of the image's codes                         | 1                   | threshold          |
| loss  | aMUSEd: cross-entropy of the masked codes at fixed seeded masks           | one per mask ratio  | threshold          |
"""

from __future__ import annotations

import numpy as np

from ..access.base import DENOISER, MASKED_TOKEN, NEXT_TOKEN, Probe, QueryBatch, WhiteBoxOptions
from .base import WHITE_BOX, Attack, ScoreThreshold, _sigmoid, best_threshold


def lowpass(x, half_width: int):
    """FreMIA's filter (ICML 2026): keep the spatial frequencies within `half_width` of zero (a centred square
    of the shifted 2-D spectrum), drop the rest; 0 = off. Applied to an error (prediction − target), which
    is filtering both, since the filter is linear: high frequencies the model cannot reproduce for anyone
    add spread to members' and non-members' errors alike."""
    if not half_width:
        return x
    import torch

    spectrum = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    h, w = x.shape[-2:]
    mask = torch.zeros(h, w, device=x.device)
    mask[max(h // 2 - half_width, 0) : h // 2 + half_width, max(w // 2 - half_width, 0) : w // 2 + half_width] = 1
    return torch.fft.ifftn(torch.fft.ifftshift(spectrum * mask, dim=(-2, -1)), dim=(-2, -1)).real


def _noise(den, batch: QueryBatch, t: int):
    return den.noise(batch.hashes, batch.seed, t, tuple(batch.x0.shape[1:]))


def _denoising_losses(den, batch: QueryBatch, hidden, timesteps, o: WhiteBoxOptions) -> list:
    """‖ε_θ(x_t, t, c) − ε‖² per t, the same ε for every caption of a query."""
    out = []
    for t in timesteps:
        eps = _noise(den, batch, t)
        error = lowpass(den.eps(den.add_noise(batch.x0, eps, t), t, hidden) - eps, o.lowpass)
        out.append((error**2).flatten(1).mean(1))
    return out


def measure_loss(den, batch: QueryBatch, o: WhiteBoxOptions):
    import torch

    return torch.stack(_denoising_losses(den, batch, batch.hidden, o.loss_timesteps, o), 1)


def measure_sima(den, batch: QueryBatch, o: WhiteBoxOptions):
    import torch

    return torch.stack([(den.eps(batch.x0, t, batch.hidden) ** 4).flatten(1).sum(1) for t in o.sima_timesteps], 1)


def measure_pia(den, batch: QueryBatch, o: WhiteBoxOptions):
    t = o.pia_timestep
    eps0 = den.eps(batch.x0, 0, batch.hidden)
    x_t = den.add_noise(batch.x0, eps0, t)
    return (lowpass(eps0 - den.eps(x_t, t, batch.hidden), o.lowpass).abs() ** 4).flatten(1).sum(1)[:, None]


def measure_secmi(den, batch: QueryBatch, o: WhiteBoxOptions):
    t, k = o.secmi_timestep, o.secmi_interval
    x = batch.x0
    for s in range(0, t, k):  # deterministic DDIM inversion 0 → k → … → t
        x = den.ddim_step(x, s, s + k, batch.hidden)
    back = den.ddim_step(den.ddim_step(x, t, t + k, batch.hidden), t + k, t, batch.hidden)
    return (lowpass(x - back, o.lowpass) ** 2).flatten(1).sum(1)[:, None]


def reduce_caption(caption: str, how: str) -> str:
    """CLiD's "simple clipping": the null caption, or the first / middle / last third of the words."""
    if how == "null":
        return ""
    words = caption.split()
    k = max(1, round(len(words) / 3))
    start = {"first": 0, "middle": (len(words) - k) // 2, "last": len(words) - k}[how]
    return " ".join(words[start : start + k])


def measure_clid(den, batch: QueryBatch, o: WhiteBoxOptions):
    """(L, D₁…D_k): L = mean ε-MSE over the t grid with the caption, D_i the rise with reduced caption i."""
    import torch

    def loss(hidden):
        return torch.stack(_denoising_losses(den, batch, hidden, o.clid_timesteps, o), 1).mean(1)

    full = loss(batch.hidden)
    rises = [loss(den.text([reduce_caption(c, how) for c in batch.captions])) - full for how in o.clid_captions]
    return torch.stack([full, *rises], 1)


class CLiDThreshold:
    """CLiD_th: s = (1−α)·S(L) + α·S(−mean D), S a RobustScaler fitted on the training folds (no labels), α
    fixed, the cut the most accurate on the training folds; lower s = member.

    Why α is fixed (issue 19): fitted per fold among 0, 0.1, …, 1, it swung between folds — on a real
    fine-tune of 100 members the folds chose 0.4, 0.1, 0, 0, 0.4 and CLiD read below its own
    conditional-loss term; on its null twin they chose 1, 1, 0, 0, 1 and the interval lay wholly below ½.
    A two-parameter rule fitted on 80 images a fold is unstable (CLiD's authors pick α once, on a shadow
    model). α = 0.25, mean AUC over 20 fold seeds on the test bed (fitted per fold → fixed 0.25; α = 0, the
    conditional loss alone): `sd-finetune` 0.661 → 0.681 (0.663), `sd-finetune-null` 0.521 → 0.489
    (0.475), `leaky` 1.000 → 0.983 (1.000), `mild` 0.512 → 0.494 (0.512), `sd-null` 0.513 → 0.538 (0.533);
    no interval wholly below ½ in any of them."""

    ALPHA = 0.25
    # Ranks by a fixed mixture (its scaler sees no labels): only the cut is learnt, and the cross-validated
    # AUC keeps DeLong's variance (protocol.cross_validate).
    ranking_learnt = 0.0

    def __init__(self, seed: int = 0):
        self.seed, self.alpha = seed, self.ALPHA

    def _parts(self, x: np.ndarray) -> np.ndarray:
        return np.stack([x[:, 0], -x[:, 1:].mean(1)], 1)

    def _score(self, x: np.ndarray, alpha: float) -> np.ndarray:
        scaled = self.scaler.transform(self._parts(x))
        return -((1 - alpha) * scaled[:, 0] + alpha * scaled[:, 1])  # higher = member

    def fit(self, x: np.ndarray, y: np.ndarray) -> CLiDThreshold:
        from sklearn.preprocessing import RobustScaler

        self.scaler = RobustScaler().fit(self._parts(x))
        s = self._score(x, self.alpha)
        self.cut, self.scale = best_threshold(s, np.asarray(y)), float(s.std()) or 1.0
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = _sigmoid((self._score(x, self.alpha) - self.cut) / self.scale)
        return np.stack([1 - p, p], axis=1)


def _measurements(m: np.ndarray, ops) -> np.ndarray:
    return m


def measure_token_loss(access, batch, o: WhiteBoxOptions):
    """The token model's own training loss on the query's VQ codes, (b, 1)."""
    return access.loss(batch, o)[:, None]


def _filtered(settings):
    """A probe's settings, plus FreMIA's low-pass when it is on (off, the cache keys are what they were)."""
    return lambda o: {**settings(o), **({"lowpass": o.lowpass} if o.lowpass else {})}


# Denoiser probes, by attack id; token models have the loss probe alone.
PROBES = {
    "loss": Probe(measure_loss, _filtered(lambda o: {"timesteps": list(o.loss_timesteps)}), lambda o: len(o.loss_timesteps),
                  lambda o: max(o.loss_timesteps), "--mia-loss-timesteps"),
    "SimA": Probe(measure_sima, lambda o: {"timesteps": list(o.sima_timesteps)}, lambda o: len(o.sima_timesteps),
                  lambda o: max(o.sima_timesteps), "--mia-sima-timesteps"),
    "PIA": Probe(measure_pia, _filtered(lambda o: {"timestep": o.pia_timestep}), lambda o: 2, lambda o: o.pia_timestep,
                 "--mia-pia-timestep"),
    "SecMI": Probe(measure_secmi, _filtered(lambda o: {"timestep": o.secmi_timestep, "interval": o.secmi_interval}),
                   lambda o: o.secmi_timestep // o.secmi_interval + 2,
                   lambda o: o.secmi_timestep + o.secmi_interval,  # it steps to t + k and back
                   "--mia-secmi-timestep + --mia-secmi-interval"),
    "CLiD": Probe(measure_clid, _filtered(lambda o: {"timesteps": list(o.clid_timesteps),
                                                     "captions": list(o.clid_captions)}),
                  lambda o: len(o.clid_timesteps) * (1 + len(o.clid_captions)), lambda o: max(o.clid_timesteps),
                  "--mia-clid-timesteps"),
}

TOKEN_PROBES = {
    NEXT_TOKEN: Probe(measure_token_loss, lambda o: {}, lambda o: 1),
    MASKED_TOKEN: Probe(measure_token_loss, lambda o: {"mask_ratios": list(o.token_mask_ratios)},
                        lambda o: len(o.token_mask_ratios)),
}

WHITE_BOX_ATTACKS: tuple[Attack, ...] = (
    Attack("loss", "training loss", WHITE_BOX, _measurements, ScoreThreshold,
           {DENOISER: PROBES["loss"], **TOKEN_PROBES}),
    Attack("SimA", "predicted-noise norm", WHITE_BOX, _measurements, ScoreThreshold, {DENOISER: PROBES["SimA"]}),
    Attack("PIA", "proximal initialisation", WHITE_BOX, _measurements, ScoreThreshold, {DENOISER: PROBES["PIA"]}),
    Attack("SecMI", "step-wise error", WHITE_BOX, _measurements, ScoreThreshold, {DENOISER: PROBES["SecMI"]}),
    Attack("CLiD", "conditional likelihood discrepancy", WHITE_BOX, _measurements, CLiDThreshold, {DENOISER: PROBES["CLiD"]}),
)
