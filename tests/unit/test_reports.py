"""The reports are pure functions of the run document (reports/): rendered here in milliseconds from a real
document, tests/data/leaky-run.json (the gate's JSON report of the test bed's `leaky` target, 12 attacks).
The same renderers through the gate, and the HTML in headless Chromium: tests/plugin/test_release_gate.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from mia_checks.audit import ImagePair
from mia_checks.record import document_problem
from mia_checks.reports.files import write_reports
from mia_checks.reports.html import render_html, strongest, top_members
from mia_checks.reports.junit import junit_properties, suite_properties
from mia_checks.reports.markdown import format_markdown
from mia_checks.reports.terminal import format_header, format_table, generation_line, outcome
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
