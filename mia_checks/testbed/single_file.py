"""Save a test-bed pipeline as one original-layout Stable Diffusion checkpoint (`model.diffusion_model.*`,
`first_stage_model.*`, `cond_stage_model.transformer.*` in a single .safetensors file), the format that
diffusers' `from_single_file` reads. The inverse of diffusers' own conversion, for any block layout."""

from __future__ import annotations

from pathlib import Path

RESNET = [("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."),
          ("emb_layers.1.", "time_emb_proj."), ("skip_connection.", "conv_shortcut.")]
VAE_RESNET = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out")]
VAE_ATTENTION = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]


def unet_prefixes(config: dict) -> list[tuple[str, str]]:
    """(original prefix, diffusers prefix) pairs of the UNet's blocks."""
    layers, n = config["layers_per_block"], len(config["block_out_channels"])
    pairs = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
             ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."),
             ("middle_block.1.", "mid_block.attentions.0.")]
    pairs += [(f"middle_block.{2 * j}.", f"mid_block.resnets.{j}.") for j in range(2)]
    for i in range(n):
        for j in range(layers):
            pairs.append((f"input_blocks.{(layers + 1) * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if "CrossAttn" in config["down_block_types"][i]:
                pairs.append((f"input_blocks.{(layers + 1) * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        if i < n - 1:
            pairs.append((f"input_blocks.{(layers + 1) * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
        up_attention = "CrossAttn" in config["up_block_types"][i]
        for j in range(layers + 1):
            pairs.append((f"output_blocks.{(layers + 1) * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if up_attention:
                pairs.append((f"output_blocks.{(layers + 1) * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < n - 1:
            pairs.append((f"output_blocks.{(layers + 1) * i + layers}.{2 if up_attention else 1}.",
                          f"up_blocks.{i}.upsamplers.0."))
    return pairs


def _rename(key: str, pairs: list[tuple[str, str]]) -> str:
    for original, diffusers in sorted(pairs, key=lambda p: -len(p[1])):
        if key.startswith(diffusers):
            return original + key[len(diffusers):]
    return key


def _replace_parts(key: str, pairs: list[tuple[str, str]]) -> str:
    for original, diffusers in pairs:
        key = key.replace(diffusers, original)
    return key


def unet_to_original(state: dict, config: dict) -> dict:
    out, pairs = {}, sorted(unet_prefixes(config), key=lambda p: -len(p[1]))
    for key, value in state.items():
        original, diffusers = next(((o, d) for o, d in pairs if key.startswith(d)), ("", ""))
        rest = key[len(diffusers):]
        if ".resnets." in diffusers:  # a resnet's own layers have other names too
            rest = _rename(rest, RESNET)
        out["model.diffusion_model." + original + rest] = value
    return out


def vae_to_original(state: dict, config: dict) -> dict:
    n = len(config["block_out_channels"])
    pairs = [("encoder.mid.attn_1.", "encoder.mid_block.attentions.0."), ("decoder.mid.attn_1.", "decoder.mid_block.attentions.0.")]
    for part in ("encoder", "decoder"):
        pairs += [(f"{part}.mid.block_{j + 1}.", f"{part}.mid_block.resnets.{j}.") for j in range(2)]
    for i in range(n):
        for j in range(config["layers_per_block"]):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        for j in range(config["layers_per_block"] + 1):
            pairs.append((f"decoder.up.{n - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
        if i < n - 1:
            pairs.append((f"encoder.down.{i}.downsample.conv.", f"encoder.down_blocks.{i}.downsamplers.0.conv."))
            pairs.append((f"decoder.up.{n - 1 - i}.upsample.conv.", f"decoder.up_blocks.{i}.upsamplers.0.conv."))
    out = {}
    for key, value in state.items():
        key = _replace_parts(_rename(key, pairs), VAE_RESNET)
        if ".attn_1." in key:
            key = _replace_parts(key, VAE_ATTENTION)
            if value.ndim == 2:  # the original attention projections are 1×1 convolutions
                value = value[:, :, None, None]
        out["first_stage_model." + key] = value
    return out


def save_single_file(pipeline_folder: Path, out_file: Path) -> Path:
    """Write the pipeline's UNet, VAE and CLIP text encoder as one original-layout safetensors file."""
    import json

    from safetensors.torch import load_file, save_file

    unet_config = json.loads((pipeline_folder / "unet" / "config.json").read_text())
    vae_config = json.loads((pipeline_folder / "vae" / "config.json").read_text())
    state = unet_to_original(load_file(pipeline_folder / "unet" / "diffusion_pytorch_model.safetensors"), unet_config)
    state |= vae_to_original(load_file(pipeline_folder / "vae" / "diffusion_pytorch_model.safetensors"), vae_config)
    text = load_file(pipeline_folder / "text_encoder" / "model.safetensors")
    # transformers ≥ 5 saves CLIPTextModel without its `text_model.` prefix; the original layout has it.
    state |= {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
              for k, v in text.items()}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, out_file)
    return out_file
