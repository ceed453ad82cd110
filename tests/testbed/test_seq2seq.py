"""Seq2seq (DALL·E-style) targets: the folder kind, its sampling, and real checkpoints in min-dalle's layout
(on a tiny model saved in that layout, never downloaded weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mia_checks.attacks.compatibility import calls_per_image
from mia_checks.errors import MiaUsageError, ModelLoadError
from mia_checks.preflight import preflight
from mia_checks.settings import build_settings
from mia_checks.targets import GenerationSettings, load_target, resolve
from mia_checks.targets.min_dalle import MASK, BpeTokenizer, check_min_dalle_folder, load_min_dalle
from mia_checks.targets.sampling import Sampling, draw_code, sample_images
from mia_checks.targets.seq2seq import load_seq2seq
from mia_checks.testbed.dalle import save_tiny_min_dalle

PROMPTS = ["a handwritten one, heavy ink, upright, wide, written high",
           "a handwritten eight, light ink, leaning left, narrow, written low"]


def test_draw_code_keeps_only_the_top_k_codes():
    logits = torch.tensor([0.0, 3.0, 1.0, 2.9])
    draws = {int(draw_code(logits, Sampling(top_k=2), torch.Generator().manual_seed(s))) for s in range(200)}
    assert draws == {1, 3}
    cold = {int(draw_code(logits, Sampling(temperature=1e-3), torch.Generator().manual_seed(s))) for s in range(50)}
    assert cold == {1}


def test_seq2seq_folder_loads_strictly_and_names_the_file(testbed, tmp_path):
    folder = tmp_path / "dalle"
    shutil.copytree(testbed / "dalle-null", folder)
    model = load_seq2seq(folder)
    assert (model.codebook_size, model.n_image_tokens, model.image_start_token_id) == (64, 64, len(model.tokenizer) + 64)
    from safetensors.torch import load_file, save_file

    weights = folder / "bart" / "model.safetensors"
    state = load_file(str(weights))
    key = next(k for k in state if "encoder.layers.0.fc1.weight" in k)
    state[key.replace("fc1", "fc_one")] = state.pop(key)
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"dalle/bart.*(missing|unexpected).*fc"):
        load_seq2seq(folder)


def test_sampling_options_reach_the_target_and_are_refused_elsewhere(testbed, tmp_path):
    base = {"members": str(testbed / "data" / "members"), "nonmembers": str(testbed / "data" / "nonmembers"),
            "cache-dir": str(tmp_path)}
    settings = preflight({**base, "target": str(testbed / "dalle-null"), "temperature": "0.5", "top-k": "8"}).settings
    assert (settings.temperature, settings.top_k, settings.supercondition) == (0.5, 8, None)
    target = load_target(settings.target, GenerationSettings(temperature=0.5, top_k=8))
    assert target.sampling == {"temperature": 0.5, "top_k": 8, "supercondition": 1.0}
    with pytest.raises(MiaUsageError, match="--mia-top-k: sampling options apply to seq2seq"):
        preflight({**base, "target": str(testbed / "sd-null"), "top-k": "8"})
    with pytest.raises(MiaUsageError, match="--mia-temperature"):
        preflight({**base, "target": str(testbed / "dalle-null"), "temperature": "0"})


def test_a_lower_temperature_changes_the_images(testbed):
    hot = load_target(str(testbed / "dalle-null"), GenerationSettings(temperature=1.0)).generate(PROMPTS, [3, 4])
    cold = load_target(str(testbed / "dalle-null"), GenerationSettings(temperature=0.05)).generate(PROMPTS, [3, 4])
    assert any(not np.array_equal(a, b) for a, b in zip(hot, cold))


@pytest.fixture
def tiny_min_dalle(tmp_path) -> Path:
    save_tiny_min_dalle(tmp_path / "pretrained")
    return tmp_path / "pretrained"


def test_min_dalle_layout_loads_offline_with_sizes_from_the_weights(tiny_min_dalle):
    grad, threads, rng = torch.is_grad_enabled(), torch.get_num_threads(), torch.random.get_rng_state()
    with pytest.raises(MiaUsageError, match=r"encoder.pt is a pickle-based weights file.*--mia-allow-pickle"):
        resolve(str(tiny_min_dalle))
    spec = resolve(str(tiny_min_dalle), allow_pickle=True)
    target = load_target(str(tiny_min_dalle), GenerationSettings(top_k=5), allow_pickle=True)
    assert target.kind == "min-dalle:dalle_bart_mini"
    assert target.sampling == {"temperature": 1.0, "top_k": 5, "supercondition": 16.0}  # min-dalle's defaults
    # No VQGAN encoder in min-dalle's files: the token loss cannot encode queries, so white-box is skipped.
    assert target.model_fn is None and spec.access is None and "VQGAN decoder only" in spec.no_access
    pair = target.generate(["ab c", "a"], [7, 7])
    alone = target.generate(["a"], [7])
    assert [im.shape for im in pair] == [(8, 8, 3)] * 2  # 4×4 codes, one upsampling level: read, not assumed
    assert np.array_equal(pair[1], alone[0]) and not np.array_equal(pair[0], pair[1])
    model = load_min_dalle(tiny_min_dalle / "dalle_bart_mini", allow_pickle=True)  # the dalle_bart_* folder itself
    assert (model.text_token_count, model.n_image_tokens, model.codebook_size) == (8, 16, 40)
    assert torch.is_grad_enabled() == grad and torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_min_dalle_safetensors_need_no_pickle_and_match_the_pt_files(tmp_path):
    save_tiny_min_dalle(tmp_path / "pt")
    save_tiny_min_dalle(tmp_path / "st", safetensors=True)
    resolve(str(tmp_path / "st"))
    a = load_target(str(tmp_path / "pt"), GenerationSettings(), allow_pickle=True).generate(["ab"], [1])
    b = load_target(str(tmp_path / "st"), GenerationSettings()).generate(["ab"], [1])
    assert np.array_equal(a[0], b[0])


def test_min_dalle_mis_keyed_or_truncated_files_are_errors_that_name_the_file(tiny_min_dalle):
    encoder = tiny_min_dalle / "dalle_bart_mini" / "encoder.pt"
    original = torch.load(encoder, weights_only=True)
    state = dict(original)
    state["layers.0.glu.fc_extra.weight"] = state.pop("layers.0.glu.fc1.weight")
    torch.save(state, encoder)
    with pytest.raises(ModelLoadError, match=r"encoder.pt does not match its model: missing keys \(1\): "
                                             r"layers.0.glu.fc1.weight; unexpected keys \(1\): layers.0.glu.fc_extra"):
        load_min_dalle(tiny_min_dalle, allow_pickle=True)
    torch.save(original, encoder)
    detoker = tiny_min_dalle / "vqgan" / "detoker.pt"
    detoker.write_bytes(detoker.read_bytes()[: detoker.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match=r"cannot read .*vqgan/detoker.pt \(truncated"):
        load_min_dalle(tiny_min_dalle, allow_pickle=True)


def test_min_dalle_layout_errors_are_usage_errors(tmp_path):
    save_tiny_min_dalle(tmp_path / "both", safetensors=True)
    save_tiny_min_dalle(tmp_path / "both", safetensors=True, name="dalle_bart_mega")
    with pytest.raises(MiaUsageError, match="holds 2 dalle_bart_\\* folders"):
        resolve(str(tmp_path / "both"))
    (tmp_path / "both" / "dalle_bart_mega" / "decoder.safetensors").unlink()
    with pytest.raises(MiaUsageError, match=r"dalle_bart_mega/decoder.safetensors \(or .pt\) is missing"):
        check_min_dalle_folder(tmp_path / "both" / "dalle_bart_mega", allow_pickle=False)


def test_bpe_tokenizer_merges_by_rank_as_by_hand(tiny_min_dalle):
    tokenizer = BpeTokenizer.from_folder(tiny_min_dalle / "dalle_bart_mini")
    # "ab" → Ġ a b → (Ġ a) → (Ġa b) = Ġab; "c" → Ġ c (no merge); "A" lower-cased → Ġa; é dropped (ASCII only)
    assert tokenizer("ab c Aé") == [0, 7, 5, 8, 4, 2]


def _rewrite_vocab(folder: Path, edit) -> None:
    path = folder / "dalle_bart_mini" / "vocab.json"
    vocab = json.loads(path.read_text())
    edit(vocab)
    path.write_text(json.dumps(vocab))


def test_min_dalle_mask_one_past_the_embeddings_loads_as_dalle_mini_ships_it(tiny_min_dalle):
    """DALL·E mini's vocab.json has 50,265 entries for 50,264 encoder rows: <mask> = 50264 is one past the
    end (min-dalle issue #93). The tiny model has that relation (10 entries, 9 rows); it loads, and no
    caption — "<mask>" spelt out, or merged into one piece by a hostile merges.txt — reaches id 9."""
    folder = tiny_min_dalle / "dalle_bart_mini"
    vocab = json.loads((folder / "vocab.json").read_text())
    encoder = torch.load(folder / "encoder.pt", weights_only=True)["embed_tokens.weight"]
    assert len(vocab) == encoder.shape[0] + 1 and max(vocab, key=vocab.get) == "<mask>" == MASK
    model = load_min_dalle(tiny_min_dalle, allow_pickle=True)
    assert model.tokenizer("a <mask> ab") == [0, 4, 5, *[3] * 6, 7, 2]  # Ġ, then < m a s k > each <unk>
    with open(folder / "merges.txt", "a") as f:  # merges that spell "<mask>" as one piece after the bare Ġ
        f.write("< m\n<m a\n<ma s\n<mas k\n<mask >\n")
    model = load_min_dalle(tiny_min_dalle, allow_pickle=True)
    assert model.tokenizer.word("<mask>") == ["Ġ", "<mask>"]
    assert model.tokenizer("<mask>") == [0, 5, 3, 2]  # <mask>'s id 9 never reaches the 9-row table
    target = load_target(str(tiny_min_dalle), GenerationSettings(), allow_pickle=True)
    assert target.generate(["<mask>", "<MASK> <mask>"], [0, 0])[0].shape == (8, 8, 3)


@pytest.mark.parametrize("edit, shown", [
    (lambda v: v.update({"<mask>": 10, "c": 9}), r"2 id\(s\) beyond .* 9 token embeddings \('c' = 9, '<mask>' = 10\)"),
    (lambda v: v.update({"<mask>": 50264}), r"1 id\(s\) beyond .* \('<mask>' = 50264\)"),
    (lambda v: (v.pop("<mask>"), v.update({"Ġc": 9})), r"\('Ġc' = 9\); only BART's <mask> may sit one past the end"),
])
def test_min_dalle_other_ids_beyond_the_embeddings_are_refused(tiny_min_dalle, edit, shown):
    _rewrite_vocab(tiny_min_dalle, edit)
    with pytest.raises(ModelLoadError, match=r"dalle_bart_mini/vocab.json has .*" + shown):
        load_min_dalle(tiny_min_dalle, allow_pickle=True)


def test_min_dalle_vocab_ids_must_be_non_negative_integers(tiny_min_dalle):
    _rewrite_vocab(tiny_min_dalle, lambda v: v.update({"c": -1}))
    with pytest.raises(ModelLoadError, match="vocab.json must map each token to a non-negative integer id"):
        load_min_dalle(tiny_min_dalle, allow_pickle=True)


def test_token_models_cost_one_decoder_call_per_image_token_not_steps(tiny_min_dalle, testbed):
    """calls/img on a token-sampled target: image tokens (read from the weights) × K, × 2 under
    supercondition ≠ 1 (the sampler's empty-caption row); --mia-steps does not change it."""
    base = {"target": str(tiny_min_dalle), "members": "m", "nonmembers": "n"}
    spec = resolve(str(tiny_min_dalle), allow_pickle=True)
    assert (spec.image_tokens, spec.supercondition) == (16, 16.0)
    save_tiny_min_dalle(tiny_min_dalle.parent / "st", safetensors=True)
    assert resolve(str(tiny_min_dalle.parent / "st")).image_tokens == 16  # the safetensors header, as the .pt
    costs = {opts: calls_per_image("II-P", spec, build_settings({**base, **dict(opts)})) for opts in
             [(), (("steps", "50"),), (("supercondition", "1"),), (("generations", "3"), ("supercondition", "1"))]}
    assert list(costs.values()) == [16 * 2 * 2, 16 * 2 * 2, 16 * 2, 16 * 3]
    seq2seq = resolve(str(testbed / "dalle-null"))
    assert (seq2seq.image_tokens, seq2seq.supercondition) == (64, 1.0)
    assert calls_per_image("II-P", seq2seq, build_settings({**base, "steps": "50"})) == 64 * 2


def test_min_dalle_teacher_forced_training_logits_are_the_sampling_logits(tiny_min_dalle):
    """The twins are trained on whole sequences (testbed/dalle.py decoder_logits) and sampled one token at
    a time with caches (targets/min_dalle.py): the same logits at every position."""
    from mia_checks.testbed.dalle import decoder_logits

    model = load_min_dalle(tiny_min_dalle, allow_pickle=True)
    codes = torch.randint(model.codebook_size, (1, model.n_image_tokens), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        step = model.start(["ab c"])
        stepped = [step(None)] + [step(codes[:, i]) for i in range(model.n_image_tokens - 1)]
        ids = model.tokenizer("ab c")
        ids = torch.tensor([ids + [1] * (model.text_token_count - len(ids))])
        text, mask = model.encoder(ids)
        inputs = torch.cat([torch.full((1, 1), model.start_token), codes[:, :-1]], dim=1)
        whole = decoder_logits(model.decoder, inputs, text, mask)[0, :, : model.codebook_size]
    torch.testing.assert_close(torch.cat(stepped), whole, atol=1e-5, rtol=1e-5)


def test_min_dalle_vocabulary_merges_each_caption_word_to_one_piece_with_mask_last():
    from mia_checks.testbed.dalle import min_dalle_vocabulary

    captions = ["a handwritten one, heavy ink", "a handwritten two"]
    vocab, merges = min_dalle_vocabulary(captions)
    assert vocab["<mask>"] == len(vocab) - 1 and sorted(vocab.values()) == list(range(len(vocab)))
    tokenizer = BpeTokenizer(vocab, merges).within(vocab["<mask>"])
    pieces = {"Ġa", "Ġhandwritten", "Ġone,", "Ġheavy", "Ġink", "Ġtwo"}
    assert tokenizer("a handwritten one, heavy ink") == [0, *(vocab[p] for p in ["Ġa", "Ġhandwritten", "Ġone,",
                                                                                 "Ġheavy", "Ġink"]), 2]
    assert pieces <= set(vocab) and tokenizer("zebra")[:3] == [0, vocab["Ġ"], vocab["<unk>"]]


def test_sample_images_are_independent_of_the_batch(testbed):
    model = load_seq2seq(testbed / "dalle-leaky")
    pair = sample_images(model, PROMPTS, [11, 11], Sampling())
    alone = sample_images(model, PROMPTS[1:], [11], Sampling())
    assert np.array_equal(pair[1], alone[0])


def test_seq2seq_folder_checks_are_usage_errors(tmp_path):
    folder = tmp_path / "dalle"
    folder.mkdir()
    (folder / "seq2seq_index.json").write_text('{"format": "mia-checks-seq2seq", "version": 2}')
    with pytest.raises(MiaUsageError, match="seq2seq_index.json is not a mia-checks-seq2seq version 1 index"):
        resolve(str(folder))
    (folder / "seq2seq_index.json").write_text('{"format": "mia-checks-seq2seq", "version": 1}')
    with pytest.raises(MiaUsageError, match="has no bart/ folder"):
        resolve(str(folder))
    for part in ("bart", "tokenizer", "vqvae"):
        (folder / part).mkdir()
    (folder / "bart" / "pytorch_model.bin").write_bytes(b"pickle")
    (folder / "vqvae" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(MiaUsageError, match=r"dalle/bart holds only pickle-based weights \(pytorch_model.bin\).*--mia-allow-pickle"):
        resolve(str(folder))
    # The image token count sets the cost (calls/img): an index without it is refused before anything loads.
    with pytest.raises(MiaUsageError, match=r"seq2seq_index.json has no valid image_tokens \[H, W\]"):
        resolve(str(folder), allow_pickle=True)
    (folder / "seq2seq_index.json").write_text('{"format": "mia-checks-seq2seq", "version": 1, "image_tokens": [4, 4]}')
    assert resolve(str(folder), allow_pickle=True).image_tokens == 16
    with pytest.raises(MiaUsageError, match="--mia-lora: a LoRA adapter applies to a diffusers pipeline, not to a seq2seq"):
        resolve(str(folder), allow_pickle=True, lora=str(tmp_path))


def test_dalle_training_is_deterministic_and_saves_loadably(testbed, tmp_path):
    from diffusers import VQModel
    from transformers import CLIPTokenizer

    from mia_checks.targets.seq2seq import save_seq2seq
    from mia_checks.testbed.build import _load_split
    from mia_checks.testbed.dalle import train_dalle

    images, captions = _load_split(testbed, "members")
    tokenizer, vq = CLIPTokenizer.from_pretrained(str(testbed / "tokenizer")), VQModel.from_pretrained(testbed / "vq")
    a, b = (train_dalle(tokenizer, vq, images[:4], captions[:4], steps=3, seed=1) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.bart.state_dict().values(), b.bart.state_dict().values()))
    save_seq2seq(a, tmp_path / "m")
    loaded = load_seq2seq(tmp_path / "m")
    assert sample_images(loaded, captions[:1], [0], Sampling())[0].shape == (32, 32, 3)


def test_the_ablation_line_gives_dalle_minis_decoder_calls_not_steps():
    from mia_checks.reports.terminal import _format_ablation

    ablation = {"steps": None, "guidance": None, "generations_per_query": 2, "known_fraction": 0.8,
                "combine": ["cosine"], "embedder": "clip", "whitebox": None,
                "token_sampling": {"decoder_calls_per_generation": 512, "image_tokens": 256, "supercondition": 16.0,
                                   "ignored": []}}
    assert _format_ablation(ablation).startswith(
        "ablation: 512 decoder calls per generation (256 image tokens, one call each, ×2 under supercondition 16: "
        "caption and empty caption; denoising steps and guidance do not apply), 2 generation(s) per query")


def test_min_dalle_twin_training_is_deterministic_and_saves_in_the_real_layout(testbed, tmp_path):
    from diffusers import VQModel

    from mia_checks.testbed.build import _load_split
    from mia_checks.testbed.dalle import min_dalle_vocabulary, save_min_dalle, train_min_dalle

    images, captions = _load_split(testbed, "members")
    vocab, merges = min_dalle_vocabulary(captions)
    vq = VQModel.from_pretrained(testbed / "vq").eval()
    (a, _), (b, _) = (train_min_dalle(vocab, merges, vq, images[:4], captions[:4], steps=3, seed=1) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    encoder, decoder = train_min_dalle(vocab, merges, vq, images[:4], captions[:4], steps=3, seed=1)
    save_min_dalle(tmp_path / "m", vocab, merges, encoder, decoder)
    shutil.copyfile(testbed / "min-dalle-vqgan" / "detoker.pt", tmp_path / "m" / "vqgan" / "detoker.pt")
    model = load_min_dalle(tmp_path / "m", allow_pickle=True)
    assert model.tokenizer.limit == encoder.embed_tokens.num_embeddings == len(vocab) - 1
    assert sample_images(model, captions[:1], [0], Sampling())[0].shape == (32, 32, 3)


def test_token_targets_cache_generations_whatever_the_steps_and_guidance_diffusion_targets_by_them(testbed, tmp_path):
    """Steps and guidance do not apply to token sampling: changing them must not regenerate a token model's
    images; for a diffusion pipeline they are part of what an image is."""
    from mia_checks.audit import Audit
    from mia_checks.preflight import preflight

    def folder(target: str, steps: str, guidance: str):
        checked = preflight({"target": str(testbed / target), "members": str(testbed / "data" / "members"),
                             "nonmembers": str(testbed / "data" / "nonmembers"), "embedder": str(testbed / "clip"),
                             "steps": steps, "guidance": guidance, "cache-dir": str(tmp_path)})
        return Audit(checked.settings, checked.members, checked.nonmembers, progress="off",
                     spec=checked.target).generation_cache.folder

    assert folder("dalle-null", "25", "1") == folder("dalle-null", "50", "3")
    assert folder("sd-null", "25", "1") != folder("sd-null", "50", "1")
