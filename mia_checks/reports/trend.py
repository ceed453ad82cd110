"""The trend report of a series of saved runs (history.py): one self-contained HTML page (inline SVG, no
scripts, nothing fetched), or the same figure as a PNG.

The figure has one panel per attack: its gate metric in each run, the interval as an error bar, the
threshold it was judged against as a dashed line, and runs where it leaked in red. Where runs declare a DP
budget, a last panel draws the largest ε lower bound of each run against the declared ε and the most the
run's sets could certify (the bound's ceiling): a bound above the declared ε contradicts the DP claim.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from ..history import RunSummary, attacks_of
from ..settings import THRESHOLD_RANGES
from .html import MEMBER, NONMEMBER, _pyplot, _svg

TEMPLATE = Path(__file__).with_name("templates") / "trend.html"
FORMATS = (".html", ".png")


def trend_figure(series: list[RunSummary]):
    """The matplotlib figure of the series."""
    plt = _pyplot()
    attacks = attacks_of(series)
    with_epsilon = any(run.declared_epsilon is not None for run in series)
    panels = len(attacks) + with_epsilon
    columns = min(3, panels)
    rows = math.ceil(panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    x = list(range(len(series)))
    labels = [run.label for run in series]
    for ax, attack in zip(axes.flat, attacks):
        _metric_panel(ax, attack, series)
    if with_epsilon:
        _epsilon_panel(axes.flat[len(attacks)], series)
    for ax in list(axes.flat)[:panels]:
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.set_xlim(-0.5, len(series) - 0.5)
    for ax in list(axes.flat)[panels:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _metric_panel(ax, attack: str, series: list[RunSummary]) -> None:
    metric = series[-1].metric
    runs = [(i, run.points[attack]) for i, run in enumerate(series)
            if attack in run.points and run.points[attack].value is not None]
    for i, p in runs:
        low = p.value - p.low if p.low is not None else 0.0
        high = p.high - p.value if p.high is not None else 0.0
        ax.errorbar([i], [p.value], yerr=[[low], [high]], fmt="o", ms=5, capsize=3,
                    color=MEMBER if p.leaks else NONMEMBER)
    ax.plot([i for i, _ in runs], [p.value for _, p in runs], color="grey", lw=0.8, zorder=0)
    ax.step([i for i, _ in runs], [p.threshold for _, p in runs], where="mid", color="black", ls="--", lw=1,
            label="threshold")
    ax.set_title(f"{attack}: {metric}", fontsize=9)
    low, high = THRESHOLD_RANGES.get(metric, (0.0, 1.0))
    ax.set_ylim(low, high + 0.02)
    ax.axhline(0.5 if metric in ("auc", "accuracy") else 0.0, color="grey", lw=0.6, ls=":")


def _epsilon_panel(ax, series: list[RunSummary]) -> None:
    labelled: set[str] = set()

    def once(label: str) -> str | None:  # each legend entry on its first mark only
        return None if label in labelled or labelled.add(label) else label

    for i, run in enumerate(series):
        best = run.best_epsilon_lower_bound
        if best is not None:
            contradicted = run.declared_epsilon is not None and best[1] > run.declared_epsilon
            ax.plot([i], [best[1]], "o", color=MEMBER if contradicted else NONMEMBER,
                    label=once("largest ε lower bound"))
        if run.declared_epsilon is not None:
            ax.plot([i], [run.declared_epsilon], "s", mfc="none", color="black", label=once("declared ε"))
        if run.epsilon_ceiling is not None:
            ax.plot([i - 0.3, i + 0.3], [run.epsilon_ceiling] * 2, color="grey", ls="--", lw=1,
                    label=once("most the sets can certify"))
    ax.set_yscale("symlog", linthresh=1)
    ax.set_title("ε: lower bound (measured) vs declared", fontsize=9)
    ax.legend(fontsize=7, loc="best")


def run_rows(series: list[RunSummary]) -> list[list[str]]:
    """The table under the figure: one row per run."""
    rows = []
    for run in series:
        best = run.best_epsilon_lower_bound
        leaking = [a for a, p in run.points.items() if p.leaks]
        flags = ", ".join(f"{t} {n}" for t, n in run.exposure_flags.items() if n)
        rows.append([run.label, run.target, (run.checkpoint or "")[:12], f"{run.members} + {run.nonmembers}",
                     "" if run.declared_epsilon is None else f"{run.declared_epsilon:.3g}",
                     "" if best is None else f"{best[1]:.2f} ({best[0]})",
                     ", ".join(leaking) or "none", flags or "none", run.mode])
    return rows


RUN_HEADERS = ["run", "target", "checkpoint", "members + non-members", "declared ε", "largest ε lower bd",
               "attacks leaking", "members flagged", "mode"]


def render_trend_html(series: list[RunSummary], storage: str) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATE.parent), autoescape=select_autoescape(["html"]))
    metrics = sorted({run.metric for run in series})
    return env.get_template(TEMPLATE.name).render(
        storage=storage, runs=len(series), figure=_svg(trend_figure(series)), headers=RUN_HEADERS,
        rows=run_rows(series), metrics=metrics)


def write_trend(path: str | Path, series: list[RunSummary], storage: str) -> None:
    """Write the trend report; its format follows the suffix (FORMATS)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        plt = _pyplot()
        fig = trend_figure(series)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        path.write_bytes(buffer.getvalue())
    else:
        path.write_text(render_trend_html(series, storage), encoding="utf-8")
