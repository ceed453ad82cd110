"""The plugin's options: every --mia-* option with its ini twin (mia_*), in one named group of
`pytest --help`. The command line beats the ini; defaults live in settings.AuditSettings."""

from __future__ import annotations

import pytest

from ..errors import MiaUsageError

# name (→ --mia-NAME and ini mia_NAME), help. Defaults live in AuditSettings; the command line beats the ini.
OPTIONS: tuple[tuple[str, str], ...] = (
    ("target", "model under audit: a diffusers pipeline folder, a single-file checkpoint (.safetensors), or "
               "package.module:function (black box)"),
    ("target-config", "single-file target: the diffusers pipeline folder (or hub id) whose configs describe it "
                      "(default: diffusers infers them from the checkpoint and fetches them from the hub)"),
    ("target-identity", "callable target: what it is (model version, weights hash, endpoint and revision); its "
                        "generations are cached under it and reused across runs. Without it (or the function's "
                        "mia_identity attribute) a callable's generations are not reused across runs"),
    ("lora", "LoRA adapter to apply on the target pipeline: the folder save_lora_weights wrote, or its .safetensors"),
    ("members", "member reference set: image folder with metadata.jsonl, or a .jsonl/.csv manifest"),
    ("nonmembers", "non-member reference set (held out, same distribution), same formats"),
    ("threshold", "leakage threshold of the gate metric, e.g. 0.6, or per attack: 0.55,II-P=0.6 "
                  "(defaults: accuracy/auc 0.55, tpr@1%fpr 0.05, advantage 0.1)"),
    ("gate-metric", "metric the gate compares: auc (default), accuracy (the paper's), tpr@1%fpr, advantage"),
    ("gate-rule", "bound (default: one-sided lower confidence bound, Bonferroni over attacks) or point"),
    ("alpha", "false-alarm rate of the bound rule over the whole run (default 0.05)"),
    ("attacks", "attacks to run, ids and groups: black-box I-P,I-S,II-P,II-S,III,IV; white-box loss,SimA,PIA,SecMI,CLiD; "
                "groups blackbox, whitebox, all (default all: white-box ones are skipped on targets without weights; "
                "token models, seq2seq and aMUSEd, run loss alone)"),
    ("loss-timesteps", "white-box loss attack: timesteps of its grid (default 100,200,300,400,500)"),
    ("sima-timesteps", "white-box SimA: timesteps at which the clean latent is fed (default 50,100,200)"),
    ("pia-timestep", "white-box PIA: its timestep t (default 200)"),
    ("secmi-timestep", "white-box SecMI: the timestep t_sec it scores (default 100)"),
    ("secmi-interval", "white-box SecMI: the DDIM interval k (default 10)"),
    ("clid-timesteps", "white-box CLiD: timesteps of its loss (default 440,450,460)"),
    ("clid-captions", "white-box CLiD: reduced captions null,first,middle,last (default all four)"),
    ("token-mask-ratios", "white-box loss on aMUSEd: the share of tokens masked, one fixed seeded mask per ratio "
                          "(default 0.25,0.5,0.75)"),
    ("lowpass", "white-box loss, PIA, SecMI, CLiD: FreMIA's low-pass filter on their errors, the half-width of the "
                "latent frequencies kept (default 0: off)"),
    ("exposure", "per-member exposure tests, each failing when any member is flagged: memorization (white-box: "
                 "Wen et al.'s text-conditional noise magnitude), regurgitation (any target: a generation copies its "
                 "member, by tiled L2 or embedding); all (default) or none"),
    ("memorization-steps", "memorization test: first sampling steps measured (default 1; 2 denoiser calls each)"),
    ("memorization-generations", "memorization test: starting noises per caption (default 4)"),
    ("exposed-csv", "write the most exposed members (file, caption, scores, ranks, flags) to this CSV, for whoever "
                    "curates the data"),
    ("exposed-top", "how many members the CSV and the HTML report show (default 20)"),
    ("combine", "operations combining embeddings in attack IV: concat,difference,product,cosine (default all)"),
    ("seed", "seed of generation, folds and attack models (default 0)"),
    ("steps", "denoising steps per generation (default 25)"),
    ("guidance", "classifier-free guidance scale (default: the pipeline's own)"),
    ("temperature", "seq2seq (DALL·E-style) targets: sampling temperature (default: the model's own)"),
    ("top-k", "seq2seq targets: sample from the k most likely image codes (default: the model's own)"),
    ("supercondition", "seq2seq targets: DALL·E mini's supercondition factor f, logits f·cond + (1−f)·uncond; "
                       "1 turns it off (default: the model's own)"),
    ("generations", "generations per query, K (default 2): distances take the best of K"),
    ("device", "auto (default), cpu, cuda, cuda:1 …"),
    ("batch-size", "prompts per generation batch (default 16)"),
    ("embedder", "image-text embedder of the semantic attacks: open_clip MODEL:TAG (default ViT-B-32:openai), "
                 "hf-hub:org/repo, transformers:openai/clip-vit-base-patch32 or transformers:Salesforce/blip-itm-base-coco, "
                 "or a local folder with open_clip_config.json"),
    ("captioner", "caption-less mode: a BLIP captioning model (e.g. Salesforce/blip-image-captioning-base, or a "
                  "local folder) captions every query, members and non-members alike; captions in the sets are ignored"),
    ("folds", "folds of the partial-knowledge protocol (default 5)"),
    ("known-fraction", "ablation: the attacker's known part as a fraction of all queries, at most (k-1)/k "
                       "(default: all k-1 training folds)"),
    ("cache-dir", "where generations are cached (default $MIA_CHECKS_CACHE or ~/.cache/mia-checks)"),
    ("json", "write the JSON report to this path"),
    ("max-samples", "use at most this many images per reference set (seeded sample)"),
    ("shadow-target", "shadow-model mode: a model of the same kind that you trained yourself; the attack models "
                      "are fitted on its features and applied, frozen, to the target"),
    ("shadow-members", "the shadow model's members (its training images)"),
    ("shadow-nonmembers", "the shadow model's non-members"),
    ("shift-check", "distribution-shift guard, a no-model attack on the query images alone: warn (default), "
                    "error (every attack test errors when it beats chance), off"),
    ("storage", "folder of saved runs (default .mia-checks)"),
    ("save", "save this run's JSON report in the storage folder as NNNN_NAME.json"),
    ("compare", "compare with a saved run: latest (the default when the flag has no value), a number, or a "
                ".json path; the table shows the baseline and the delta per attack"),
    ("compare-fail", "fail an attack whose metric rose beyond the baseline by more than allowed, e.g. "
                     "auc:0.02,accuracy:5% (absolute, or % of the baseline); implies --mia-compare=latest"),
    ("compare-rule", "bound (default: fail when the one-sided lower bound of the rise, paired bootstrap, exceeds "
                     "the allowance) or point (when the point difference does)"),
    ("html", "write the self-contained HTML report (table, ROC curves, score histograms, image pairs) here"),
    ("markdown", "write a Markdown summary (for pull-request comments) here"),
    ("progress", "generation progress on stderr, shown without -s/-v: auto (default: a bar with rate and ETA on a "
                 "terminal, a line every 30 s in a log such as CI's), bar, log, off"),
)
FLAGS = (
    ("allow-pickle", "allow pickle-based checkpoints (they can run code when loaded: trusted files only)"),
    ("autosave", "save this run in the storage folder, named after the time (UTC)"),
    ("save-incomplete", "save the run (--mia-save, --mia-autosave) even when an attack errored; by default such a "
                        "run is not saved, since as the next baseline it would leave that attack uncompared"),
    ("track", "tracking mode: report leakage and regressions (as warnings) without failing; errors stay errors"),
)
OPTIONAL_VALUE = {"compare": "latest"}  # --mia-compare alone means the latest saved run


def dest(name: str) -> str:
    return "mia_" + name.replace("-", "_")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("mia-checks", "mia-checks: membership-inference privacy gate for text-to-image models")
    for name, help_text in OPTIONS:
        optional = {"nargs": "?", "const": OPTIONAL_VALUE[name]} if name in OPTIONAL_VALUE else {}
        group.addoption(f"--mia-{name}", dest=dest(name), default=None, metavar=name.split("-")[-1].upper(),
                        help=help_text.replace("%", "%%"), **optional)
        parser.addini(dest(name), help=f"default of --mia-{name}", default=None)
    for name, help_text in FLAGS:
        group.addoption(f"--mia-{name}", dest=dest(name), action="store_true", default=None, help=help_text)
        parser.addini(dest(name), help=f"default of --mia-{name}", type="bool", default=False)


def given_on_command_line(config: pytest.Config) -> list[str]:
    """The --mia-* options set on the command line (not from the ini)."""
    return [f"--mia-{name}" for name, _ in OPTIONS + FLAGS if config.getoption(dest(name)) is not None]


def gate_requested(raw: dict[str, str | None], given: list[str]) -> bool:
    """Whether the gate runs: --mia-target is set. A blank --mia-target (an unset CI variable), or other --mia-*
    options on the command line without one, are usage errors: the gate would switch itself off, run the
    project's other tests and exit 0, passing every model."""
    target = raw.get("target")
    if target is not None and not str(target).strip():
        raise MiaUsageError("--mia-target is empty (an unset variable in CI?): give the checkpoint folder, single file "
                            "or package.module:function to audit; the gate does not run without it.")
    if target is None and given:
        raise MiaUsageError(f"{', '.join(given)} given without --mia-target: the gate runs only on a target. Add "
                            "--mia-target (the model to audit), or drop the --mia-* options.")
    return target is not None


def raw_options(config: pytest.Config) -> dict[str, str | None]:
    """option name (without --mia-) → its value from the command line, else from the ini, else None."""
    raw = {}
    for name, _ in OPTIONS + FLAGS:
        value = config.getoption(dest(name))
        raw[name] = value if value is not None else config.getini(dest(name))
    return raw
