"""White-box attacks: each score against a hand computation on a toy denoiser, the cache, the attack
models, and the errors a denoiser that cannot be queried gets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mia_checks.access.base import QueryBatch, WhiteBoxOptions
from mia_checks.access.denoiser import Denoiser, noise_seed
from mia_checks.attacks.base import ScoreThreshold, best_threshold
from mia_checks.attacks.whitebox import PROBES, CLiDThreshold, reduce_caption
from mia_checks.errors import WhiteBoxError
from mia_checks.measurements import WhiteBoxScores

SHAPE = (2, 4, 4)
OPTIONS = WhiteBoxOptions(loss_timesteps=(100, 300), sima_timesteps=(0, 50), pia_timestep=200, secmi_timestep=20,
                          secmi_interval=10, clid_timesteps=(440, 460), clid_captions=("null", "first"))
ALPHAS = np.linspace(0.999, 0.01, 1000)


class ToyDenoiser(Denoiser):
    """ε_θ(x, t, c) = 0.5·x + 0.001·t + c̄, c̄ = the caption's one 'hidden state' = len(caption) / 10."""

    def __init__(self):
        self.alphas = torch.as_tensor(ALPHAS)
        self.device, self.prediction_type = "cpu", "epsilon"
        self.calls = 0

    def eps(self, x_t, t, hidden):
        self.calls += 1
        return 0.5 * x_t + 0.001 * t + hidden.reshape(-1, 1, 1, 1)

    def text(self, captions):
        return torch.tensor([[[len(c) / 10]] for c in captions], dtype=torch.float64)


def toy_eps(x, t, c):
    return 0.5 * x + 0.001 * t + c


def hand_noise(h: str, seed: int, t: int) -> np.ndarray:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(noise_seed(seed, h, t))).double().numpy()


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    captions = ["a handwritten three, heavy ink, leaning right", "a handwritten one, light ink"]
    x0 = rng.normal(size=(2, *SHAPE))
    den = ToyDenoiser()
    return den, QueryBatch(torch.as_tensor(x0), den.text(captions), captions, ["h0", "h1"], 7), x0, captions


def _c(caption: str) -> float:
    return len(caption) / 10


def test_loss_is_the_noise_prediction_error_per_timestep(batch):
    den, b, x0, captions = batch
    got = PROBES["loss"].measure(den, b, OPTIONS).numpy()
    for i, h in enumerate(b.hashes):
        for j, t in enumerate(OPTIONS.loss_timesteps):
            eps, a = hand_noise(h, 7, t), ALPHAS[t]
            x_t = np.sqrt(a) * x0[i] + np.sqrt(1 - a) * eps
            assert got[i, j] == pytest.approx(((toy_eps(x_t, t, _c(captions[i])) - eps) ** 2).mean(), rel=1e-5)


def test_sima_is_the_4th_power_norm_of_the_prediction_at_the_clean_latent(batch):
    den, b, x0, captions = batch
    got = PROBES["SimA"].measure(den, b, OPTIONS).numpy()
    for i in range(2):
        expected = [(toy_eps(x0[i], t, _c(captions[i])) ** 4).sum() for t in OPTIONS.sima_timesteps]
        assert got[i] == pytest.approx(expected, rel=1e-6)


def test_pia_uses_the_models_own_prediction_at_t0_as_its_noise(batch):
    den, b, x0, captions = batch
    got = PROBES["PIA"].measure(den, b, OPTIONS).numpy()
    t, a = OPTIONS.pia_timestep, ALPHAS[OPTIONS.pia_timestep]
    for i in range(2):
        eps0 = toy_eps(x0[i], 0, _c(captions[i]))
        x_t = np.sqrt(a) * x0[i] + np.sqrt(1 - a) * eps0
        assert got[i, 0] == pytest.approx((np.abs(eps0 - toy_eps(x_t, t, _c(captions[i]))) ** 4).sum(), rel=1e-6)


def _ddim(x, t, s, c):
    eps = toy_eps(x, t, c)
    x0 = (x - np.sqrt(1 - ALPHAS[t]) * eps) / np.sqrt(ALPHAS[t])
    return np.sqrt(ALPHAS[s]) * x0 + np.sqrt(1 - ALPHAS[s]) * eps


def test_secmi_inverts_deterministically_then_scores_one_step_there_and_back(batch):
    den, b, x0, captions = batch
    den.calls = 0
    got = PROBES["SecMI"].measure(den, b, OPTIONS).numpy()
    t, k = OPTIONS.secmi_timestep, OPTIONS.secmi_interval
    assert den.calls == PROBES["SecMI"].calls(OPTIONS) == t // k + 2
    for i in range(2):
        c, x = _c(captions[i]), x0[i]
        for s in range(0, t, k):
            x = _ddim(x, s, s + k, c)
        back = _ddim(_ddim(x, t, t + k, c), t + k, t, c)
        assert got[i, 0] == pytest.approx(((x - back) ** 2).sum(), rel=1e-6)


def test_clid_features_are_the_loss_and_its_rise_under_reduced_captions(batch):
    den, b, x0, captions = batch
    got = PROBES["CLiD"].measure(den, b, OPTIONS).numpy()

    def loss(i, caption):
        values = []
        for t in OPTIONS.clid_timesteps:
            eps, a = hand_noise(b.hashes[i], 7, t), ALPHAS[t]
            x_t = np.sqrt(a) * x0[i] + np.sqrt(1 - a) * eps
            values.append(((toy_eps(x_t, t, _c(caption)) - eps) ** 2).mean())
        return np.mean(values)

    for i in range(2):
        full = loss(i, captions[i])
        expected = [full] + [loss(i, reduce_caption(captions[i], how)) - full for how in OPTIONS.clid_captions]
        assert got[i] == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_reduced_captions_are_the_null_caption_and_thirds_of_the_words():
    caption = "a b c d e f"
    assert [reduce_caption(caption, h) for h in ("null", "first", "middle", "last")] == ["", "a b", "c d", "e f"]
    assert reduce_caption("one", "last") == "one"


def test_noise_depends_on_image_seed_and_timestep_only():
    assert noise_seed(0, "h", 100) == noise_seed(0, "h", 100)
    assert len({noise_seed(0, "h", 100), noise_seed(1, "h", 100), noise_seed(0, "g", 100), noise_seed(0, "h", 101)}) == 4


def test_scores_are_cached_so_a_warm_rerun_never_queries_the_denoiser(tmp_path):
    den = ToyDenoiser()
    den.latents = lambda images: torch.as_tensor(images[:, :, :4, 0].reshape(-1, *SHAPE) / 255.0)
    den.check_images = lambda images, what: None
    images = [np.random.default_rng(i).integers(0, 255, (8, 8, 3), dtype=np.uint8) for i in range(5)]
    hashes, captions = [f"h{i}" for i in range(5)], [f"caption {i}" for i in range(5)]
    loads = []

    def scores():
        return WhiteBoxScores(tmp_path, "id" * 12, "loss", PROBES["loss"], OPTIONS, 0, "cpu")

    def factory():
        loads.append(1)
        return den

    cold = scores().compute(images, hashes, captions, factory, batch_size=2)
    warm = scores().compute(images, hashes, captions, factory, batch_size=3)
    assert loads == [1] and np.array_equal(cold, warm)
    # One image at a time gives the same scores as batches: nothing depends on the batch.
    other = WhiteBoxScores(tmp_path / "b", "id" * 12, "loss", PROBES["loss"], OPTIONS, 0, "cpu")
    assert np.allclose(other.compute(images, hashes, captions, factory, batch_size=1), cold, rtol=1e-6)
    # Another setting is another cache entry.
    seed1 = WhiteBoxScores(tmp_path, "id" * 12, "loss", PROBES["loss"], OPTIONS, 1, "cpu")
    assert seed1.cached(hashes, captions) is None


def test_score_threshold_ranks_lower_loss_as_member_and_cuts_on_training_data():
    x = np.array([[0.1], [0.2], [0.8], [0.9]])
    y = np.array([1, 1, 0, 0])
    model = ScoreThreshold().fit(x, y)
    p = model.predict_proba(np.array([[0.15], [0.5], [0.85]]))[:, 1]
    assert p[0] > 0.5 > p[2] and p[0] > p[1] > p[2]
    assert best_threshold(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 0, 1, 1])) == 1.5
    # Training folds where members score higher: the direction is learnt, the ranking follows it.
    flipped = ScoreThreshold().fit(x, 1 - y)
    assert flipped.sign == -1 and flipped.predict_proba(np.array([[0.85]]))[0, 1] > 0.5


def test_clid_threshold_mixes_its_parts_at_a_fixed_alpha_and_learns_only_the_cut():
    """α is not fitted (it swung between folds): the same on any training folds, and the ranking is the
    stated mixture of the robust-scaled parts; members have lower loss and a larger rise when the caption
    is cut."""
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50), np.zeros(50)].astype(int)
    loss = rng.normal(size=100) - 1.5 * y
    rise = rng.normal(size=(100, 2)) + 1.5 * y[:, None]
    x = np.c_[loss, rise]
    model, noise = CLiDThreshold().fit(x, y), CLiDThreshold().fit(rng.normal(size=(100, 3)), y)
    assert model.alpha == noise.alpha == 0.25
    parts = np.c_[loss, -rise.mean(1)]
    scaled = (parts - np.median(parts, 0)) / np.subtract(*np.percentile(parts, [75, 25], axis=0))
    expected = -(0.75 * scaled[:, 0] + 0.25 * scaled[:, 1])
    p = model.predict_proba(x)[:, 1]
    assert np.array_equal(np.argsort(p, kind="stable"), np.argsort(expected, kind="stable"))
    assert ((p >= 0.5) == y).mean() > 0.8


class Scheduler:
    def __init__(self, prediction_type):
        self.config = {"prediction_type": prediction_type}
        self.alphas_cumprod = torch.as_tensor(ALPHAS)


def test_a_pipeline_without_a_denoiser_is_a_clear_error():
    class TokenPipeline:  # like aMUSEd: a transformer over tokens, no UNet
        transformer, vqvae, tokenizer, text_encoder = object(), object(), object(), object()
        scheduler = Scheduler("epsilon")

    with pytest.raises(WhiteBoxError, match="no a UNet denoiser.*--mia-attacks=blackbox"):
        Denoiser(TokenPipeline(), "amused/")


def test_fremia_lowpass_keeps_low_frequencies_and_drops_the_checkerboard():
    import torch

    from mia_checks.attacks.whitebox import lowpass

    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert lowpass(x, 0) is x  # off
    assert torch.allclose(lowpass(x, 4), x, atol=1e-5)  # half-width 4 of 8: every frequency kept
    flat = torch.full((1, 1, 8, 8), 3.0)
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1.0
    assert torch.allclose(lowpass(flat + checker, 1), flat, atol=1e-5)  # the DC term stays, Nyquist goes
