"""The privacy report: a terminal table (tabulate) and a JSON document, built from per-attack records.

A record is the JSON-ready dict a test attaches to its report (so pytest-xdist workers' results reach
the controller): the AttackResult's fields plus the gate's verdict.
"""

from __future__ import annotations

import json
from pathlib import Path


def _fmt(estimate: dict | None, digits: int = 3) -> str:
    if not estimate or estimate.get("value") is None:
        return "n/a"
    return f"{estimate['value']:.{digits}f} [{estimate['low']:.{digits}f}, {estimate['high']:.{digits}f}]"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_header(header: dict) -> str:
    m, n = header["members"], header["nonmembers"]
    return "\n".join([
        f"target: {header['target']} ({header['target_kind']})",
        f"members: {m['n']} from {m['path']}   non-members: {n['n']} from {n['path']}",
        (f"protocol: shadow-model (attack models fitted on {header['shadow_target']}, applied frozen); "
         if header.get("shadow_target") else f"protocol: {header['protocol']}, {header['folds']}-fold; ")
        + f"seed {header['seed']}; "
        f"{header['generations_per_query']} generation(s) per query",
        f"gate: {header['gate']}",
    ])


def format_shift(records: list[dict]) -> str | None:
    """The distribution-shift guard's line (the same in every record of a run)."""
    shift = next((r["distribution_shift"] for r in records if r.get("distribution_shift")), None)
    if shift is None:
        return None
    return ("WARNING: distribution shift: " if shift["shifted"] else "distribution shift check: ") + shift["message"]


def format_table(records: list[dict]) -> str:
    from tabulate import tabulate

    rows = [
        [
            r["attack"],
            _fmt(r["accuracy"]),
            _fmt(r["auc"]),
            _num(r["tpr_at_1pct_fpr"]),
            _num(r["tpr_at_01pct_fpr"]),
            _num(r["advantage"]["value"]),
            f"{r['epsilon_lower_bound']:.2f}",
            _num(r["verdict"]["threshold"]),
            r["verdict"]["label"],
        ]
        for r in records
    ]
    headers = ["attack", "accuracy [95% CI]", "AUC [95% CI]", "TPR@1%FPR", "TPR@0.1%FPR", "advantage",
               "ε lower bd", "threshold", "verdict"]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)  # keep our 3 decimals


def write_json(path: str | Path, header: dict, records: list[dict], errors: dict[str, str]) -> None:
    document = {**header, "results": records, "errors": errors}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
