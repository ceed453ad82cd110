"""White-box access to a real (test-bed) Stable Diffusion pipeline: prediction types, image sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mia_checks.access.denoiser import Denoiser
from mia_checks.errors import WhiteBoxError


def test_an_unsupported_prediction_type_is_a_clear_error(testbed):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(testbed / "sd-null", use_safetensors=True)
    pipe.scheduler.register_to_config(prediction_type="flow")
    with pytest.raises(WhiteBoxError, match="prediction_type 'flow' is not supported"):
        Denoiser(pipe, "sd-null/")


def test_v_prediction_is_converted_to_epsilon(testbed):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(testbed / "sd-null", use_safetensors=True)
    den = Denoiser(pipe, "sd-null/")
    x_t, hidden = torch.randn(2, 4, 8, 8), den.text(["a handwritten one", "a handwritten two"])
    with torch.no_grad():
        raw = den.eps(x_t, 300, hidden)
        den.prediction_type = "v_prediction"
        a = den.alpha(300)
        assert torch.allclose(den.eps(x_t, 300, hidden), a**0.5 * raw + (1 - a) ** 0.5 * x_t)


def test_query_images_of_another_size_than_the_models_are_a_clear_error(testbed):
    from diffusers import DiffusionPipeline

    den = Denoiser(DiffusionPipeline.from_pretrained(testbed / "sd-null", use_safetensors=True), "sd-null/")
    assert den.image_size == 32
    with pytest.raises(WhiteBoxError, match="28×28 pixels, but sd-null/ works at 32×32.*resize"):
        den.check_images([np.zeros((28, 28, 3), np.uint8)], "white-box attacks")
