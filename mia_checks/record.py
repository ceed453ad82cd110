"""The run document: what one run of the gate measured and concluded. The JSON report and the saved run are
this document; the terminal, Markdown, HTML and JUnit reports (reports/) render it.

A document is a header (the target, the reference sets, the protocol, the settings, the library versions,
and the baseline it was compared with: baselines.baseline_header) plus one record per attack (its result,
verdict, cost, the distribution-shift check and the comparison with the baseline) in the run's attack
order, and the errors of the attacks that could not measure. A record travels from a pytest-xdist worker to
the controller as JSON on its test's report, so the document is the same with and without xdist.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata

import numpy as np

from .access.base import MASKED_TOKEN, NEXT_TOKEN
from .attacks import ATTACKS, WHITE_BOX
from .attacks.compatibility import decoder_calls_per_generation, skipped, supercondition
from .exposure import ExposureResult
from .gate import DistributionShift, Verdict
from .metrics import epsilon_ceiling
from .results import CONFIDENCE, AttackResult


def attack_record(result: AttackResult, verdict: Verdict, shift: DistributionShift | None, calls: int,
                  baseline: dict | None = None) -> dict:
    """One attack's record: its result (baselines.compare_with_baseline gives `baseline`)."""
    record = result.to_dict()
    record["access"] = ATTACKS[result.attack].access
    record["denoiser_calls"] = calls
    record["distribution_shift"] = None if shift is None else {
        "shifted": shift.shifted, "p_value": shift.p_value, "baseline_accuracy": shift.baseline_accuracy,
        "message": shift.message}
    record["verdict"] = {"leaks": verdict.leaks, "label": verdict.label, "value": verdict.value,
                         "statistic": verdict.statistic, "threshold": verdict.threshold, "message": verdict.message}
    record["baseline"] = baseline
    return record


def exposure_record(result: ExposureResult, files: list[str], captions: list[str]) -> dict:
    """One exposure test's record: its result, each finding with the member's file and caption, and the
    message its gate test fails with."""
    record = result.to_dict()
    for finding in record["findings"]:
        finding.update(file=files[finding["member"]], caption=captions[finding["member"]])
    flagged = result.flagged
    shown = "; ".join(f"{f['file']} ({f['criterion']} {f['comparison']})" for f in record["findings"][:10])
    more = f"; and {len(record['findings']) - 10} more" if len(record["findings"]) > 10 else ""
    record["message"] = (
        f"{result.test}: {len(flagged)} of {result.members} members flagged"
        + (f": {shown}{more}" if flagged else "")
        + f" [rule: {result.rule}]")
    return record


# The run document's version, saved with every run (`schema_version`). 1: the documents before it was written
# (no `schema_version`), which history and comparisons still read; 2: adds `privacy` and `epsilon_bound`.
SCHEMA_VERSION = 2


def run_header(audit, mode: str) -> dict:
    """What the report says about this run, without generating anything; `audit` is the run's Audit, `mode`
    "gate" or "track"."""
    target, settings = audit.target, audit.settings  # the target is cheap: its model loads when first needed
    privacy, delta = audit.spec.privacy, audit.epsilon_delta
    return {
        "schema_version": SCHEMA_VERSION,
        "target": settings.target,
        "target_kind": target.kind,
        "sampling": target.sampling,
        "checkpoint_sha256": None if target.kind == "callable" else target.identity,
        "target_identity": target.identity_note,
        "lora": settings.lora,
        "captions": ({"source": "given"} if settings.captioner is None else
                     {"source": "generated", "captioner": settings.captioner, "captions": audit.captions}),
        "members": {"path": settings.members, "n": len(audit.members), "sha256": audit.members.digest,
                    "notes": list(audit.members.notes)},
        "nonmembers": {"path": settings.nonmembers, "n": len(audit.nonmembers), "sha256": audit.nonmembers.digest,
                       "notes": list(audit.nonmembers.notes)},
        "protocol": settings.protocol,
        "query_groups": _groups(*audit.grouping) if settings.protocol == "partial-knowledge" else None,
        "shadow_target": settings.shadow_target,
        "privacy": None if privacy is None else privacy.to_dict(),
        # How each attack's ε lower bound is read (results.evaluate), and the most these sets can certify.
        "epsilon_bound": {"confidence": CONFIDENCE, "delta": delta,
                          "ceiling": epsilon_ceiling(len(audit.members), len(audit.nonmembers),
                                                     1 - CONFIDENCE, delta)},
        "folds": settings.folds,
        "seed": settings.seed,
        "generations_per_query": settings.generations,
        "ablation": ablation(audit),
        "gate": audit.gate.describe(),
        "skipped": skipped(settings.attacks, audit.specs),
        "settings": settings.to_dict(),
        "versions": versions(),
        "mode": mode,
    }


def _groups(groups, kept, fallback: str | None) -> dict:
    """How the folds were constrained: queries in groups of two or more (shared captions, near-duplicate
    images), which each stay in one fold — or, when they could not, why the folds ignore them."""
    import numpy as np

    sizes = np.bincount(groups)
    return {"queries": int(len(groups)), "groups": int(len(sizes)), "grouped": int(sizes[sizes > 1].sum()),
            "shared": int((sizes > 1).sum()), "largest": int(sizes.max()), "kept_whole": kept is not None,
            "fallback": fallback}


def ablation(audit) -> dict:
    """The paper's ablation axes as set for this run (echoed in every report), and the white-box choices.
    On a token-sampled target (seq2seq, min-dalle) denoising steps and guidance do not apply: `steps` and
    `guidance` are None and `token_sampling` says what a generation costs instead (and which of those
    options, given, were ignored)."""
    s, folds = audit.settings, audit.settings.folds
    whitebox = any(ATTACKS[a].access == WHITE_BOX for a in audit.attacks)
    sampled = _token_sampling(audit.spec, s)
    return {"steps": None if sampled else s.steps, "guidance": None if sampled else s.guidance,
            "generations_per_query": s.generations,
            "known_fraction": s.known_fraction if s.known_fraction is not None else round((folds - 1) / folds, 6),
            "combine": list(s.combine), "embedder": s.embedder,
            "whitebox": _whitebox_ablation(audit.spec.access, s.whitebox.to_dict()) if whitebox else None,
            **({"token_sampling": sampled} if sampled else {})}


def _token_sampling(spec, settings) -> dict | None:
    """A token-sampled target's cost of one generation: decoder calls, image tokens, supercondition; and the
    ignored --mia-steps / --mia-guidance. (A note, not a usage error: these options are often set project-
    wide, in an ini file or a CI template shared by the diffusion targets, for which they are right.)"""
    if not spec.image_tokens:
        return None
    ignored = []
    if settings.steps != type(settings).__dataclass_fields__["steps"].default:
        ignored.append(f"--mia-steps={settings.steps}")
    if settings.guidance is not None:
        ignored.append(f"--mia-guidance={settings.guidance:g}")
    return {"decoder_calls_per_generation": decoder_calls_per_generation(spec, settings),
            "image_tokens": spec.image_tokens, "supercondition": supercondition(spec, settings),
            "ignored": ignored}


def _whitebox_ablation(kind: str, options: dict) -> dict:
    ratios = options.pop("token_mask_ratios")
    if kind == NEXT_TOKEN:
        return {"access": kind, "loss": "teacher-forced NLL of the image's VQ codes given its caption"}
    if kind == MASKED_TOKEN:
        return {"access": kind, "token_mask_ratios": ratios,
                "loss": f"cross-entropy of the masked VQ codes, one fixed mask (seeded) per ratio "
                        f"{','.join(f'{v:g}' for v in ratios)}"}
    return {"access": kind, **options, "noise": "per image, from (seed, image sha256, t)", "guidance": "none",
            "alphas": "the target's scheduler config"}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("mia-checks", "torch", "diffusers", "transformers", "open_clip_torch", "scikit-learn", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def run_document(header: dict, records: dict[str, dict], attacks: tuple[str, ...], errors: dict[str, str],
                 exposure: dict[str, dict] | None = None, members: list[dict] | None = None) -> dict:
    """The whole document: the header, the records in the run's attack order, the errors, the exposure tests'
    records and the per-member findings (`member_findings`)."""
    return {**header, "results": [records[a] for a in attacks if a in records], "errors": dict(errors),
            "exposure": [exposure[t] for t in sorted(exposure or {})], "member_findings": members or []}


def member_findings(results: list[dict], exposure: list[dict], files: list[str], captions: list[str]) -> list[dict]:
    """Per member, most exposed first: its file and caption, each attack's out-of-fold score and its rank among
    the members (1 = the attack's surest member), and what each exposure test found about it.

    Order: members flagged by an exposure test first (by how far past its bound), then by their rank under
    the strongest attack (the highest AUC)."""
    m = len(files)
    rows = [{"member": i, "file": files[i], "caption": captions[i], "scores": {}, "ranks": {}, "flags": []}
            for i in range(m)]
    for record in results:
        scores = np.asarray(record["scores"][:m], dtype=float)
        ranks = np.empty(m, int)
        ranks[np.argsort(-scores, kind="stable")] = np.arange(1, m + 1)
        for i in range(m):
            rows[i]["scores"][record["attack"]] = round(float(scores[i]), 6)
            rows[i]["ranks"][record["attack"]] = int(ranks[i])
    for record in exposure:
        for finding in record["findings"]:
            rows[finding["member"]]["flags"].append(
                {"test": record["test"], **{k: finding[k] for k in ("criterion", "comparison", "excess", "evidence")}})
    strongest = max(results, key=lambda r: r["auc"]["value"] or 0.0)["attack"] if results else None

    def order(row: dict):
        excess = max((f["excess"] for f in row["flags"]), default=0.0)
        return (-excess, row["ranks"].get(strongest, 0), row["member"])

    return sorted(rows, key=order)


# What a saved run must hold for a comparison: the parts of the JSON report that compare() and the header
# read. A schema in miniature: a dict maps keys to schemas ("key?" optional), [schema] is a list of them,
# a tuple of types a leaf.
_NUMBER, _OPTIONAL_NUMBER = (int, float), (int, float, type(None))
_ESTIMATE = {"value": _OPTIONAL_NUMBER, "low?": _OPTIONAL_NUMBER, "high?": _OPTIONAL_NUMBER}
SAVED_RUN_SCHEMA = {
    "members?": {"sha256": (str,)},
    "nonmembers?": {"sha256": (str,)},
    "results": [{"attack": (str,), "accuracy": _ESTIMATE, "auc": _ESTIMATE, "advantage": _ESTIMATE,
                 "tpr_at_1pct_fpr": _OPTIONAL_NUMBER, "epsilon_lower_bound": _OPTIONAL_NUMBER,
                 "labels?": [(int,)], "scores?": [_NUMBER]}],
}


def schema_problem(value, schema, where: str = "the document") -> str | None:
    """The first way `value` departs from `schema`, or None."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{where} is a {type(value).__name__}, not an object"
        for key, sub in schema.items():
            key, optional = key.rstrip("?"), key.endswith("?")
            if key not in value:
                if optional:
                    continue
                return f"{where} has no {key!r}"
            problem = schema_problem(value[key], sub, key if where == "the document" else f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{where} is a {type(value).__name__}, not a list"
        return next((p for i, item in enumerate(value) if (p := schema_problem(item, schema[0], f"{where}[{i}]"))), None)
    if isinstance(value, bool) or not isinstance(value, schema):
        return f"{where} is {json.dumps(value)[:40]}, not {' or '.join(t.__name__ for t in schema)}"
    return None




def document_problem(document) -> str | None:
    """Why `document` is not a run document that can be compared with (None when it is)."""
    return schema_problem(document, SAVED_RUN_SCHEMA) or next(
        (f"results[{i}] has {len(r['labels'])} labels but {len(r['scores'])} scores"
         for i, r in enumerate(document["results"]) if len(r.get("labels", [])) != len(r.get("scores", []))), None)
