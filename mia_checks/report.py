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
    lines = [
        f"target: {header['target']} ({header['target_kind']})"
        + (f" with LoRA adapter {header['lora']}" if header.get("lora") else ""),
        f"members: {m['n']} from {m['path']}   non-members: {n['n']} from {n['path']}",
        (f"protocol: shadow-model (attack models fitted on {header['shadow_target']}, applied frozen); "
         if header.get("shadow_target") else f"protocol: {header['protocol']}, {header['folds']}-fold; ")
        + f"seed {header['seed']}",
        _format_ablation(header.get("ablation")),
        f"gate: {header['gate']}" + ("; tracking mode: leakage and regressions are reported, not failed"
                                     if header.get("mode") == "track" else ""),
    ]
    baseline = header.get("baseline")
    if baseline:
        lines.append(f"baseline: {baseline['run']} ({baseline['path']})"
                     + (f"; fails on a rise beyond {baseline['compare_fail']}" if baseline.get("compare_fail") else "")
                     + "".join(f"; NOTE: {note}" for note in baseline.get("notes", [])))
    elif header.get("baseline_missing"):
        lines.append(f"baseline: {header['baseline_missing']}")
    return "\n".join(line for line in lines if line)


def _format_ablation(ablation: dict | None) -> str:
    if not ablation:
        return ""
    known = ablation["known_fraction"]
    return (f"ablation: {ablation['steps']} steps, guidance "
            f"{'the pipeline default' if ablation['guidance'] is None else ablation['guidance']}, "
            f"{ablation['generations_per_query']} generation(s) per query, attacker knows {known:.0%} of the queries, "
            f"IV combines {'+'.join(ablation['combine'])}, embedder {ablation['embedder']}")


def format_shift(records: list[dict]) -> str | None:
    """The distribution-shift guard's line (the same in every record of a run)."""
    shift = next((r["distribution_shift"] for r in records if r.get("distribution_shift")), None)
    if shift is None:
        return None
    return ("WARNING: distribution shift: " if shift["shifted"] else "distribution shift check: ") + shift["message"]


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def table(records: list[dict], with_intervals: bool = True) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the privacy table; with baseline columns (value and Δ per compared metric) when
    the records were compared with a saved run."""
    fmt = _fmt if with_intervals else (lambda e: _num(e["value"] if e else None))
    headers = ["attack", "accuracy [95% CI]" if with_intervals else "accuracy",
               "AUC [95% CI]" if with_intervals else "AUC", "TPR@1%FPR", "TPR@0.1%FPR", "advantage", "ε lower bd",
               "threshold", "verdict"]
    rows = [
        [r["attack"], fmt(r["accuracy"]), fmt(r["auc"]), _num(r["tpr_at_1pct_fpr"]), _num(r["tpr_at_01pct_fpr"]),
         _num(r["advantage"]["value"]), f"{r['epsilon_lower_bound']:.2f}", _num(r["verdict"]["threshold"]),
         r["verdict"]["label"]]
        for r in records
    ]
    compared = [c["metric"] for c in next((r["baseline"]["changes"] for r in records if r.get("baseline")), [])]
    for metric in compared:
        headers += [f"baseline {metric}", f"Δ {metric}"]
        for r, row in zip(records, rows):
            change = next((c for c in (r.get("baseline") or {}).get("changes", []) if c["metric"] == metric), None)
            if change is None:
                row += ["n/a", "n/a"]
                continue
            row += [_num(change["baseline"]), _signed(change["delta"]) + (" REGRESSED" if change["regressed"] else "")]
    return headers, rows


def format_table(records: list[dict], tablefmt: str = "simple", with_intervals: bool = True) -> str:
    from tabulate import tabulate

    headers, rows = table(records, with_intervals)
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)  # keep our 3 decimals


def outcome(document: dict) -> str:
    """One line: what the run concluded."""
    records, errors = document["results"], document["errors"]
    leaking = [r["attack"] for r in records if r["verdict"]["leaks"]]
    regressed = [r["attack"] for r in records
                 if any(c["regressed"] for c in (r.get("baseline") or {}).get("changes", []))]
    parts = []
    if errors:
        parts.append(f"could not measure {', '.join(sorted(errors))}")
    parts.append(f"{len(leaking)} of {len(records)} attacks leak beyond the threshold"
                 + (f" ({', '.join(leaking)})" if leaking else ""))
    if document.get("baseline"):
        parts.append(f"{len(regressed)} regressed against {document['baseline']['run']}"
                     + (f" ({', '.join(regressed)})" if regressed else ""))
    failed = bool(errors) or ((leaking or regressed) and document.get("mode") != "track")
    word = "FAIL" if failed else ("PASS (tracking mode)" if leaking or regressed else "PASS")
    return f"{word}: " + "; ".join(parts)


def format_markdown(document: dict) -> str:
    """A summary for pull-request comments: outcome, run header and the table (GitHub-flavoured)."""
    lines = [f"## mia-checks privacy report: {outcome(document)}", ""]
    lines += [f"- {line}" for line in format_header(document).splitlines()]
    shift = format_shift(document["results"])
    if shift:
        lines.append(f"- {'**' + shift + '**' if shift.startswith('WARNING') else shift}")
    lines += ["", format_table(document["results"], tablefmt="github"), ""]
    lines += [f"- {attack}: could not measure: {error}" for attack, error in sorted(document["errors"].items())]
    return "\n".join(lines).rstrip() + "\n"


def write_json(path: str | Path, document: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
