"""Configs of the test bed's tiny components, built the diffusers way: from a config, saved with
save_pretrained, loaded with from_pretrained. Sizes: fixtures/README.md."""

from __future__ import annotations

LATENT_CHANNELS = 4
TEXT_WIDTH = 32

# Encoder/decoder shared by the KL autoencoder and the VQ one: 32×32×3 ↔ 8×8 latents.
AUTOENCODER_BASE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 32),
    layers_per_block=1,
    norm_num_groups=8,
    sample_size=32,
)
VAE_CONFIG = dict(AUTOENCODER_BASE, latent_channels=LATENT_CHANNELS)
# The emoji tier's: 48×48×3 → 12×12×4 (factor 4, as the digits'; a factor-8 autoencoder at 64 px was 2.5× slower
# to train and still blurred colours after 600 steps).
# Widths (16, 32, 32) reached reconstruction MSE 0.064 in 400 steps, (16, 32, 64) 0.050.
EMOJI_VAE_CONFIG = dict(VAE_CONFIG, sample_size=48, block_out_channels=(16, 32, 64))
UNET_CONFIG = dict(
    sample_size=8,
    in_channels=LATENT_CHANNELS,
    out_channels=LATENT_CHANNELS,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=TEXT_WIDTH,
    attention_head_dim=8,
    norm_num_groups=32,
)
EMOJI_UNET_CONFIG = dict(UNET_CONFIG, sample_size=12)

# The training schedule of Stable Diffusion; generation uses DDIM built from the same config.
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    steps_offset=1,
)


def make_vae(config: dict | None = None):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**(config or VAE_CONFIG))


def make_unet(config: dict | None = None):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**(config or UNET_CONFIG))


def make_clip_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_WIDTH,
        intermediate_size=2 * TEXT_WIDTH,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def make_ldm_bert(tokenizer):
    from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion import LDMBertConfig, LDMBertModel

    # LDMTextToImagePipeline pads every prompt to 77 tokens.
    config = LDMBertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        encoder_layers=2,
        encoder_ffn_dim=2 * TEXT_WIDTH,
        encoder_attention_heads=4,
        head_dim=8,
        d_model=TEXT_WIDTH,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LDMBertModel(config)


def make_train_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULER_CONFIG)


def make_sample_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER_CONFIG, set_alpha_to_one=False)


def assemble_pipeline(family: str, tokenizer, vae, text_encoder, unet):
    """A Stable Diffusion pipeline (an LDM one for family "ldm") of the components, sampling with DDIM."""
    if family == "ldm":
        from diffusers import LDMTextToImagePipeline

        return LDMTextToImagePipeline(
            vqvae=vae, bert=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=make_sample_scheduler()
        )
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=make_sample_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
