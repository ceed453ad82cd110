"""The test bed: real data, offline components, deterministic builds, and proof that membership is real."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mia_checks.data import load_reference_set
from mia_checks.testbed.digits import SPLIT_SIZES, load_digit_dataset, split_indices


def test_splits_are_disjoint_stratified_and_captions_mostly_unique():
    digits = load_digit_dataset()
    splits = split_indices(digits.labels)
    seen: set[int] = set()
    for name, idx in splits.items():
        assert not seen & set(idx.tolist()), name
        seen |= set(idx.tolist())
    assert len(seen) == len(digits.labels) == 1797
    for name, size in SPLIT_SIZES.items():
        assert len(splits[name]) == size
        assert len(np.unique(digits.labels[splits[name]])) == 10  # every class present
        captions = [digits.captions[i] for i in splits[name]]
        assert len(set(captions)) >= 0.8 * size, name
    assert digits.images.shape == (1797, 32, 32, 3) and digits.images.dtype == np.uint8


def test_split_folders_use_diffusers_training_format(testbed: Path):
    row = json.loads((testbed / "data" / "members" / "metadata.jsonl").read_text().splitlines()[0])
    assert set(row) == {"file_name", "text"} and row["text"].startswith("a handwritten")
    members = load_reference_set(testbed / "data" / "members", "members", "--mia-members")
    assert len(members) == SPLIT_SIZES["members"] and members.images[0].shape == (32, 32, 3)


def test_tokenizer_loads_with_clip_tokenizer_from_pretrained(testbed: Path):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(testbed / "tokenizer"))
    vocab = json.loads((testbed / "tokenizer" / "vocab.json").read_text())
    assert len(tokenizer) == len(vocab) > 100
    ids = tokenizer("a handwritten seven, heavy ink").input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ,", ",") == "a handwritten seven, heavy ink"


def test_tokenizer_build_is_reproducible(tmp_path):
    from mia_checks.testbed.tokenizer import build_tokenizer

    captions = load_digit_dataset().captions
    for name in ("a", "b"):
        build_tokenizer(tmp_path / name, captions)
    for f in ("vocab.json", "merges.txt"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_same_seed_gives_identical_weights():
    from mia_checks.testbed.train import train_vae

    images = load_digit_dataset().images[:64]
    torch.set_num_threads(1)
    a, b = (train_vae(images, steps=3, seed=5, batch_size=8) for _ in range(2))
    c = train_vae(images, steps=3, seed=6, batch_size=8)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))


@pytest.mark.parametrize("target", ["sd-leaky", "sd-mild", "sd-null", "sd-shadow", "ldm-leaky", "ldm-null"])
def test_targets_are_safetensors_pipelines_that_load_with_from_pretrained(testbed: Path, target: str):
    from diffusers import DiffusionPipeline

    folder = testbed / target
    assert list(folder.rglob("*.safetensors")) and not list(folder.rglob("*.bin"))
    pipe = DiffusionPipeline.from_pretrained(folder, use_safetensors=True)
    assert sum(p.numel() for p in pipe.unet.parameters()) == pytest.approx(1e6, rel=0.2)


@pytest.mark.parametrize("spec, kind", [("clip", "OpenClipEmbedder"), ("clip-hf", "TransformersEmbedder"),
                                        ("transformers:{testbed}/blip-itm", "TransformersEmbedder")])
def test_tiny_embedders_load_through_the_users_paths_and_match_captions(testbed: Path, spec: str, kind: str):
    from mia_checks.embedders import load_embedder

    # The same code paths as local-dir:/hf-hub open_clip models and transformers CLIP/BLIP models.
    embedder = load_embedder(spec.format(testbed=testbed) if "{" in spec else str(testbed / spec))
    assert type(embedder).__name__ == kind
    members = load_reference_set(testbed / "data" / "members", "members", "--mia-members")
    img = embedder.embed_images(list(members.images))
    txt = embedder.embed_texts(list(members.captions))
    assert np.allclose(np.linalg.norm(img, axis=1), 1, atol=1e-4)
    sims = img @ txt.T
    # Trained contrastively: an image is closer to its own caption than to the average other caption.
    assert np.mean(np.diag(sims)) > np.mean(sims) + 0.1


@pytest.mark.parametrize("target", ["sd-leaky", "ldm-leaky"])
def test_leaky_targets_memorised_their_members(whitebox_auc, target: str):
    assert whitebox_auc(target).value >= 0.8


def test_mild_target_leaks_above_chance(whitebox_auc):
    auc = whitebox_auc("sd-mild")
    assert auc.low > 0.5, auc  # one-sided 95%: a false alarm rate of 5% if mild did not leak
    assert auc.value < whitebox_auc("sd-leaky").value


def test_realistic_fine_tune_leaks_mildly_and_its_null_twin_does_not(whitebox_auc):
    """The realistic setting's leakage, held to the range issue 9 asks of it (white-box loss AUC in
    0.6–0.9 at 128 vs 128); the null twin, fine-tuned the same way on other images, at chance."""
    auc = whitebox_auc("sd-finetune")
    assert 0.6 <= auc.value <= 0.9 and auc.low > 0.5, auc
    assert abs(whitebox_auc("sd-finetune-null").value - 0.5) <= 0.1


def test_finetune_splits_are_disjoint_and_audited_captions_unique(testbed: Path):
    names = {}
    for split in ("ft_members", "ft_nonmembers", "ft_null", "pretrain"):
        rows = [json.loads(line) for line in (testbed / "data-ft" / split / "metadata.jsonl").read_text().splitlines()]
        names[split] = {r["file_name"] for r in rows}
        if split.startswith("ft_") and split != "ft_null":
            assert len({r["text"] for r in rows}) == len(rows) == 128
    assert sum(map(len, names.values())) == len(set().union(*names.values())) >= 1000 + 3 * 128
    audited = {json.loads(line)["file_name"] for s in ("members", "nonmembers")
               for line in (testbed / "data" / s / "metadata.jsonl").read_text().splitlines()}
    assert not audited & set().union(*names.values())  # the small-set targets' audited images stay out


@pytest.mark.parametrize("target", ["sd-null", "ldm-null", "sd-shadow"])
def test_models_that_never_saw_either_set_are_at_chance(whitebox_auc, target: str):
    assert abs(whitebox_auc(target).value - 0.5) <= 0.15


def test_an_artifact_folder_without_its_build_record_is_rebuilt(tmp_path):
    """A folder copied in part (here: an empty `tokenizer/`, as a hand-trimmed cache once carried to a GPU
    machine held) must not count as built: every build writes build.json last."""
    from mia_checks.testbed import ensure_built

    root = tmp_path / "testbed" / "v2"
    (root / "tokenizer").mkdir(parents=True)
    ensure_built(["tokenizer"], cache_root=tmp_path, log=lambda *_: None)
    assert (root / "tokenizer" / "build.json").is_file() and (root / "tokenizer" / "vocab.json").is_file()
