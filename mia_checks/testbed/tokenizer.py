"""An offline CLIP-style BPE tokenizer trained on the test bed's captions.

transformers 5 ignores vocab/merges passed to CLIPTokenizer's constructor, so the files are written into
a folder and loaded with CLIPTokenizer.from_pretrained(folder), exactly as a hub tokenizer would be.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 32


def build_tokenizer(folder: Path, corpus: list[str], vocab_size: int = 400):
    """Train a byte-pair tokenizer on corpus, save vocab.json + merges.txt, return the loaded CLIPTokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    alphabet = sorted(set(string.ascii_lowercase + string.digits + ",.'-!?"))
    tokenizer = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS],
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tokenizer.train_from_iterator(sorted(corpus), trainer=trainer)
    merges = [m if isinstance(m, str) else " ".join(m) for m in json.loads(tokenizer.to_str())["model"]["merges"]]
    # The trainer's token ids vary from run to run; the merges do not. Lay the vocabulary out as CLIP's is:
    # special tokens, every character inside a word and at a word's end, then one token per merge in order.
    pieces = [BOS, EOS] + [p for ch in alphabet for p in (ch, ch + "</w>")] + [m.replace(" ", "") for m in merges]
    vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, sort_keys=True), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    loaded = CLIPTokenizer.from_pretrained(str(folder), model_max_length=MAX_LENGTH, pad_token=EOS)
    if len(loaded) != len(vocab):
        raise RuntimeError(f"tokenizer in {folder} has {len(loaded)} tokens, expected {len(vocab)}")
    loaded.save_pretrained(str(folder))
    return loaded
