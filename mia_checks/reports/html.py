"""The HTML report: one self-contained file (inline SVG plots, images as data URIs, no scripts, nothing
fetched) with the privacy table, per-attack ROC curves on linear and log FPR axes, member vs non-member
score histograms, and query / generated image pairs of the members an attack is surest about."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .terminal import error_line, exposure_lines, format_header, format_shift, outcome, table

if TYPE_CHECKING:
    from ..audit import ImagePair

TEMPLATE = Path(__file__).with_name("templates") / "report.html"
MEMBER, NONMEMBER = "#c0392b", "#2471a3"


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: the SVG is inlined in HTML


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.hashsalt": "mia-checks", "svg.fonttype": "none", "font.size": 9})
    import matplotlib.pyplot as plt

    return plt


def roc_svg(record: dict) -> str:
    """ROC curve of one attack's out-of-fold scores: linear axes, and log FPR (where low-FPR leakage shows).
    The curve pools the folds; the AUC in its legend is the run's, compared within folds where it has them."""
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    labels, scores = np.asarray(record["labels"]), np.asarray(record["scores"])
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, (linear, log) = plt.subplots(1, 2, figsize=(7.2, 3.2))
    floor = 1 / (2 * max(record["nonmembers"], 1))  # FPR 0 cannot sit on a log axis: draw it at half a step
    legend = f"AUC {record['auc']['value']:.3f}" + (" (within folds)" if record.get("auc_within_folds") else "")
    for ax, x in ((linear, fpr), (log, np.maximum(fpr, floor))):
        ax.plot(x, tpr, color=MEMBER, lw=1.8, drawstyle="steps-post", label=legend)
        chance = np.logspace(np.log10(floor), 0, 50) if ax is log else np.linspace(0, 1, 2)
        ax.plot(chance, chance, color="grey", lw=1, ls="--", label="chance")
        ax.set_xlabel("false-positive rate" + (" (log)" if ax is log else ""))
        ax.set_ylabel("true-positive rate")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    log.set_xscale("log")
    log.set_xlim(floor, 1)
    linear.set_xlim(0, 1)
    linear.legend(loc="lower right")
    linear.set_title(f"{record['attack']}: ROC")
    log.set_title(f"{record['attack']}: ROC, log FPR")
    return _svg(fig)


def histogram_svg(record: dict) -> str:
    """Membership scores of members vs non-members."""
    plt = _pyplot()
    labels, scores = np.asarray(record["labels"]), np.asarray(record["scores"])
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    bins = np.linspace(0, 1, 21)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, color=MEMBER, label="members")
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, color=NONMEMBER, label="non-members")
    ax.axvline(0.5, color="black", lw=1, ls=":")
    ax.set_xlabel("membership score")
    ax.set_ylabel("images")
    ax.set_title(f"{record['attack']}: scores")
    ax.legend()
    return _svg(fig)


def png_data_uri(image: np.ndarray, size: int = 96) -> str:
    from PIL import Image

    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if max(picture.size) < size:  # tiny images: enlarge without smoothing so pixels stay visible
        picture = picture.resize((size, size * picture.height // picture.width), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def top_members(record: dict, n: int = 6) -> list[int]:
    """Indices (into the run's queries, members first) of the n members with the highest scores."""
    labels, scores = np.asarray(record["labels"]), np.asarray(record["scores"])
    members = np.flatnonzero(labels == 1)
    return [int(i) for i in members[np.argsort(-scores[members], kind="stable")][:n]]


def strongest(records: list[dict]) -> dict | None:
    """The attack with the highest AUC: its surest members are the report's image pairs."""
    scored = [r for r in records if r["auc"]["value"] is not None]
    return max(scored, key=lambda r: r["auc"]["value"]) if scored else None


def flagged_members(document: dict, top: int = 20) -> list[int]:
    """Indices of the members the exposure tests flagged (the most exposed first), at most `top`."""
    rows = [f["member"] for record in document.get("exposure", []) for f in record["findings"]]
    return list(dict.fromkeys(rows))[:top]


def exposed_figures(document: dict, pairs: dict[int, ImagePair]) -> list[dict]:
    """Each finding whose member's images are at hand: the member beside its closest generation (regurgitation,
    with the distance), or beside its caption's generations (memorization)."""
    out = []
    for record in document.get("exposure", []):
        for f in record["findings"]:
            pair = pairs.get(f["member"])
            if pair is None:
                continue
            closest = f["evidence"].get("generation")
            generated = pair.generated if closest is None else [pair.generated[closest]]
            out.append({"test": record["test"], "criterion": f["criterion"], "file": f["file"], "caption": f["caption"],
                        "comparison": f["comparison"],
                        "generation": closest, "query": png_data_uri(pair.query),
                        "generated": [png_data_uri(g) for g in generated]})
    return out


def render_html(document: dict, pairs: list[tuple[float, ImagePair]] | None = None,
                pairs_attack: str | None = None, exposed: dict[int, ImagePair] | None = None) -> str:
    """The page; `pairs`: (score, query / generated pair) of the members `pairs_attack` is surest about;
    `exposed`: member index → its pair, for the members the exposure tests flagged."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATE.parent), autoescape=select_autoescape(["html"]))
    records = document["results"]
    headers, rows = table(records)
    return env.get_template(TEMPLATE.name).render(
        outcome=outcome(document),
        failed=outcome(document).startswith("FAIL"),
        header_lines=format_header(document).splitlines(),
        shift=format_shift(records),
        headers=headers,
        rows=rows,
        errors=[error_line(a, e) for a, e in sorted(document["errors"].items())],
        attacks=[{"id": r["attack"], "intuition": r["intuition"], "protocol": r["protocol"],
                  "roc": roc_svg(r), "histogram": histogram_svg(r)} for r in records],
        pairs=[{"caption": p.caption, "score": f"{score:.3f}", "query": png_data_uri(p.query),
                "generated": [png_data_uri(g) for g in p.generated]} for score, p in pairs or []],
        pairs_attack=pairs_attack,
        exposure_lines=exposure_lines(document, top=0),
        exposed=exposed_figures(document, exposed or {}),
        versions=document.get("versions", {}),
    )


def write_html(path: str | Path, document: dict, pairs: list[tuple[float, ImagePair]] | None = None,
               pairs_attack: str | None = None, exposed: dict[int, ImagePair] | None = None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(render_html(document, pairs, pairs_attack, exposed), encoding="utf-8")
