"""The reports are pure functions of the run document (reports/): rendered here in milliseconds from a real
document, tests/data/leaky-run.json (the gate's JSON report of the test bed's `leaky` target, 12 attacks).
The same renderers through the gate, and the HTML in headless Chromium: tests/plugin/test_release_gate.py."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_checks.audit import ImagePair
from mia_checks.baselines import comparability_notes
from mia_checks.record import document_problem
from mia_checks.reports.files import write_reports
from mia_checks.reports.html import render_html, strongest, top_members
from mia_checks.reports.junit import junit_properties, suite_properties
from mia_checks.reports.markdown import format_markdown
from mia_checks.reports.terminal import error_line, format_header, format_shift, format_table, generation_line, outcome
from mia_checks.reports.text import markdown_text, terminal_text
from mia_checks.settings import build_settings

LEAKY = Path(__file__).parents[1] / "data" / "leaky-run.json"
ATTACKS = ["I-P", "I-S", "II-P", "II-S", "III", "IV", "NN", "loss", "SimA", "PIA", "SecMI", "CLiD"]


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(LEAKY.read_text())


def test_the_committed_document_is_a_run_document(document):
    assert document_problem(document) is None and [r["attack"] for r in document["results"]] == ATTACKS


def test_the_terminal_report_has_its_header_a_row_per_attack_and_the_outcome(document):
    header = format_header(document).splitlines()
    assert header[0] == "target: ~/.cache/mia-checks/testbed/v2/sd-leaky (diffusers:StableDiffusionPipeline)"
    assert header[-1].startswith("gate: 99.6% one-sided lower bound of auc > threshold")
    rows = format_table(document["results"]).splitlines()
    assert rows[0].split()[:3] == ["attack", "access", "calls/img"] and len(rows) == 2 + 12
    assert re.match(r"II-P +black-box +50 +0\.\d{3} \[", rows[4]) and rows[4].endswith("FAIL")
    assert outcome(document) == "FAIL: 7 of 12 attacks leak beyond the threshold (II-P, NN, loss, SimA, PIA, SecMI, CLiD)"
    tracked = {**document, "mode": "track"}
    assert outcome(tracked).startswith("PASS (tracking mode): 7 of 12")
    errored = {**document, "errors": {"IV": "IV: cannot measure: blank images"}}
    assert outcome(errored).startswith("FAIL: could not measure IV; 7 of 12")


def test_the_markdown_summary_is_the_outcome_header_and_a_github_table(document):
    md = format_markdown(document)
    assert md.startswith("## mia-checks privacy report: FAIL: 7 of 12 attacks leak")
    assert "- target: ~/.cache/mia-checks/testbed/v2/sd-leaky" in md
    assert sum(line.startswith("| II-P ") for line in md.splitlines()) == 1 and "| FAIL " in md


def test_the_html_report_holds_every_attack_s_plots_and_the_image_pairs(document):
    top = strongest(document["results"])
    rows = top_members(top, 3)
    assert top["attack"] == "loss" and all(document["results"][7]["labels"][i] == 1 for i in rows)
    image = np.zeros((32, 32, 3), np.uint8)
    pairs = [(top["scores"][i], ImagePair(f"caption {i}", image, [image, image])) for i in rows]
    html = render_html(document, pairs, top["attack"])
    for attack in ATTACKS:
        assert f'<figure class="roc" data-attack="{attack}"><svg' in html
        assert f'<figure class="histogram" data-attack="{attack}"><svg' in html
    assert html.count('<figure class="pair">') == 3 and html.count('alt="generated image"') == 6
    assert re.findall(r'(?:src|href)="(?!data:|#)[^"]*"', html) == []  # self-contained


def test_junit_properties_name_each_attack_on_the_suite(document):
    ii_p = document["results"][2]
    assert dict(junit_properties(ii_p))["mia.verdict"] == "FAIL"
    assert dict(suite_properties(ii_p))["mia.II-P.auc"] == ii_p["auc"]["value"]


def test_reports_are_written_where_asked_and_one_that_cannot_be_is_named(document, tmp_path):
    settings = build_settings({"target": "t", "members": "m", "nonmembers": "n", "json": str(tmp_path / "r.json"),
                               "markdown": str(tmp_path / "md"), "html": str(tmp_path / "r.html")})
    (tmp_path / "md").mkdir()  # the Markdown path is a folder: that report cannot be written
    written = write_reports(document, settings, lambda rows: None)
    assert json.loads((tmp_path / "r.json").read_text()) == document and (tmp_path / "r.html").is_file()
    assert list(written.errors) == ["Markdown summary"] and "IsADirectoryError" in written.errors["Markdown summary"]
    assert [line for line, _ in written.lines()] == [f"JSON report: {tmp_path / 'r.json'}",
                                                     f"HTML report: {tmp_path / 'r.html'}",
                                                     "ERROR: " + written.errors["Markdown summary"]]


def test_a_worker_s_generation_line():
    stats = {"rank": 1, "world": 2, "generated": 1, "cached": 24, "seconds": 12.4}
    assert generation_line("gw1", stats) == "gw1 generated 1 image in 12 s (shard 2 of 2; 24 already cached)"


# -- strings from users' files, paths and saved runs: escaped in the Markdown and terminal reports ----------------

USER_FIELDS = ("target", "target_kind", "target_identity", "lora", "members", "nonmembers", "captioner",
               "shadow_target", "embedder", "skipped_attack", "skipped_reason", "baseline_run", "baseline_path",
               "compare_fail", "compare_rule", "note", "errored", "error", "unmeasured", "why", "attack", "access",
               "label", "shift", "metric")
PLAIN = dict.fromkeys(USER_FIELDS, "x")


def with_user_strings(document: dict, s: dict[str, str]) -> dict:
    """`document` (3 of its attacks) with every string that is not ours set from `s` (field → text): what a
    run's settings, its sets, its target and a saved run compared with can put there. Attack ids and error
    keys get a suffix so that they stay distinct."""
    records = []
    for i, record in enumerate(document["results"][:3]):
        change = {"metric": s["metric"], "baseline": 0.5, "current": 0.6, "delta": 0.1, "low": 0.02, "high": 0.2,
                  "regressed": i == 0, "within_noise": i == 1}
        records.append({**record, "attack": f"{s['attack']}{i}", "access": s["access"],
                        "verdict": {**record["verdict"], "label": s["label"], "leaks": i != 1},
                        "distribution_shift": {**record["distribution_shift"], "message": s["shift"]},
                        "baseline": {"run": s["baseline_run"], "changes": [change]}})
    return {
        **document, "results": records, "target": s["target"], "target_kind": s["target_kind"],
        "target_identity": s["target_identity"], "lora": s["lora"],
        "members": {**document["members"], "path": s["members"]},
        "nonmembers": {**document["nonmembers"], "path": s["nonmembers"]},
        "captions": {"source": "generated", "captioner": s["captioner"]}, "shadow_target": s["shadow_target"],
        "ablation": {**document["ablation"], "embedder": s["embedder"]},
        "skipped": {s["skipped_attack"]: s["skipped_reason"]},
        "baseline": {"run": s["baseline_run"], "path": s["baseline_path"], "compare_fail": s["compare_fail"],
                     "compare_rule": s["compare_rule"], "notes": [s["note"]]},
        "errors": {f"{s['errored']}1": s["error"],
                   f"{s['unmeasured']}2": f"{s['unmeasured']}2: cannot measure: {s['why']}"},
    }


def terminal_report(document: dict) -> str:
    """The privacy report as the plugin prints it (plugin/session.py, MiaSession.summary)."""
    lines = [format_header(document), format_shift(document["results"]) or "", "", format_table(document["results"])]
    lines += [error_line(attack, error) for attack, error in sorted(document["errors"].items())]
    return "\n".join([*lines, outcome(document)])


def _unescaped(line: str, chars: str) -> list[str]:
    """The characters of `chars` in a Markdown line that are not backslash-escaped (as GitHub reads a table
    row: a backslash and the character after it are one token)."""
    return [token for token in re.findall(r"\\.|.", line) if token in chars]


def _headings(markdown: str) -> list[tuple[int, str]]:
    """(line, text before its first colon) of every line that renders as a heading, in a list item too."""
    return [(i, line.split(":")[0]) for i, line in enumerate(markdown.splitlines())
            if re.match(r" {0,3}(?:[-+*] +)*#", line)]


# Any text, lone surrogates too (a path's undecodable bytes), with what breaks reports drawn more often.
_BREAKERS = "\n\r\x1b\x00\b\t\v\f\x85\u2028\u2029\u202e\u200b<>&|`*_[]()#~$\\!-+=.1 "
_CHARACTERS = st.one_of(st.characters(exclude_categories=()), st.sampled_from(list(_BREAKERS)))
user_strings = st.fixed_dictionaries({field: st.text(_CHARACTERS, min_size=1) for field in USER_FIELDS})


@settings(max_examples=150, deadline=None)
@given(strings=user_strings)
def test_user_strings_add_no_line_heading_html_or_cell_to_the_markdown(document, strings):
    plain = format_markdown(with_user_strings(document, PLAIN))
    md = format_markdown(with_user_strings(document, strings))
    assert len(md.splitlines()) == len(plain.splitlines()) and md.count("\n") == plain.count("\n")
    assert _headings(md) == _headings(plain) == [(0, "## mia-checks privacy report")]
    assert md.startswith("## mia-checks privacy report: FAIL: ")
    assert "<" not in md  # no tag, comment or autolink: ours has none, and users' are &lt;
    for ours, theirs in zip(plain.splitlines(), md.splitlines()):
        # Markdown punctuation unescaped is ours alone: each line has as much of it as with plain strings
        assert sorted(_unescaped(theirs, "`*_[]#|$\\")) == sorted(_unescaped(ours, "`*_[]#|$\\")), theirs
        assert not re.match(r"- +(?:[-+*=]|\d{1,9}[.)])", theirs), theirs  # a list item opens no list
        tokens = re.findall(r"\\.|.", theirs)  # an unescaped ~ only opens a home-relative path: ~/
        assert all(after == "/" for token, after in zip(tokens, [*tokens[1:], ""]) if token == "~"), theirs
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in theirs)
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 3 and all(len(_unescaped(row, "|")) == len(_unescaped(rows[0], "|")) for row in rows)


@settings(max_examples=150, deadline=None)
@given(strings=user_strings)
def test_user_strings_add_no_line_or_control_character_to_the_terminal_report(document, strings):
    plain = terminal_report(with_user_strings(document, PLAIN))
    text = terminal_report(with_user_strings(document, strings))
    assert len(text.splitlines()) == len(plain.splitlines()) == text.count("\n") + 1
    # no C0 / C1 control but the line feeds, no line or paragraph separator, no bidi or other invisible format
    # character, no lone surrogate
    assert [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")] == []
    assert text.splitlines()[-1].startswith("FAIL: ")


def test_a_set_folder_named_like_a_pass_heading_adds_no_heading_to_the_summary(document):
    forged = {**document, "members": {**document["members"], "path": "data\n## mia-checks privacy report: PASS\n"}}
    md = format_markdown(forged)
    assert _headings(md) == [(0, "## mia-checks privacy report")]
    assert md.startswith("## mia-checks privacy report: FAIL")
    assert r"- members: 32 from data\n\#\# mia-checks privacy report: PASS\n   non-members: 32 from ~/" in md
    assert len(md.splitlines()) == len(format_markdown(document).splitlines())


def test_html_in_a_saved_run_s_fields_reaches_the_summary_as_text(document):
    baseline = {**document, "protocol": "<img src=x onerror=alert(1)>", "seed": "<details><summary>PASS"}
    header = {"run": "0001_<!-- the rest is hidden", "path": ".mia-checks/0001_x.json", "compare_fail": "",
              "compare_rule": "bound", "notes": comparability_notes(document, baseline)}
    md = format_markdown({**document, "baseline": header})
    assert "<" not in md and ">" not in md.replace("&gt;", "")
    assert "protocol differs (&lt;img src=x onerror=alert(1)&gt; in the baseline, partial-knowledge now)" in md
    assert "seed differs (&lt;details&gt;&lt;summary&gt;PASS in the baseline, 0 now)" in md
    assert "- baseline: 0001\\_&lt;!-- the rest is hidden (" in md
    assert "regressed against 0001\\_&lt;!-- the rest is hidden" in md.splitlines()[0]


def test_an_ansi_escape_in_a_path_or_a_model_name_is_shown_not_obeyed(document):
    forged = {**document, "target": "~/models/x\x1b[2K\r\x1b[32mPASS\x1b[0m",
              "captions": {"source": "generated", "captioner": "blip\u202eSSAP\u2028\x00\b"}}
    text = terminal_report(forged)
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\u2028" not in text
    lines = text.splitlines()
    assert lines[0] == r"target: ~/models/x\x1b[2K\r\x1b[32mPASS\x1b[0m (diffusers:StableDiffusionPipeline)"
    assert r"captions: generated by blip\u202eSSAP\u2028\x00\x08 (caption-less mode)" in text
    assert len(lines) == len(terminal_report(document).splitlines()) + 1  # the captions line


def test_the_escapes_leave_ordinary_text_as_it_is():
    for ours in ("II-P", "black-box", "next-token", "masked-token", "FAIL", "pass", "auc", "tpr@1%fpr", "track",
                 "generated", "~/.cache/mia-checks/testbed/v2/sd-leaky", "data/members (copy)", "0.5"):
        assert markdown_text(ours) == terminal_text(ours) == ours
    assert terminal_text(r"C:\Users\me\members") == r"C:\Users\me\members"
    assert terminal_text("a\tb\x7fc\x85d\u200be\udc80") == r"a\tb\x7fc\x85d\u200be\udc80"
    assert markdown_text(r"a|b\|c") == r"a\|b\\\|c" and markdown_text("x~/y ~z") == r"x\~/y \~z"
    assert markdown_text("<!-- & -->") == "&lt;!-- &amp; --&gt;" and markdown_text("`$x$`") == r"\`\$x\$\`"
