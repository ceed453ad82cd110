"""Saved runs and comparisons (pure functions, no model)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from mia_checks.baselines import ResultsStore, Tolerance, compare, parse_tolerances, safe_name
from mia_checks.errors import MiaUsageError


def record(attack="II-P", auc=0.6, accuracy=0.6):
    return {"attack": attack, "auc": {"value": auc}, "accuracy": {"value": accuracy}, "advantage": {"value": 0.2},
            "tpr_at_1pct_fpr": None, "epsilon_lower_bound": 0.0}


def test_parse_absolute_and_relative_tolerances():
    assert parse_tolerances("auc:0.02, accuracy:5%") == (Tolerance("auc", 0.02), Tolerance("accuracy", 0.05, True))
    assert parse_tolerances("tpr@1%fpr:0.01") == (Tolerance("tpr@1%fpr", 0.01),)
    assert Tolerance("accuracy", 0.05, True).allowed(0.8) == pytest.approx(0.04)
    assert str(Tolerance("accuracy", 0.05, True)) == "accuracy:5%" and str(Tolerance("auc", 0.02)) == "auc:0.02"


@pytest.mark.parametrize("raw", ["auc", "auc:x", "f1:0.1", "auc:-0.1", ""])
def test_bad_tolerances_are_usage_errors(raw):
    with pytest.raises(MiaUsageError, match="--mia-compare-fail"):
        parse_tolerances(raw)


def test_a_rise_beyond_the_tolerance_regresses_and_a_fall_never_does():
    tolerances = parse_tolerances("auc:0.02,accuracy:5%")
    up = {c.metric: c for c in compare(record(auc=0.70, accuracy=0.64), record(auc=0.6, accuracy=0.6), [], tolerances)}
    assert up["auc"].regressed and up["auc"].delta == pytest.approx(0.1)
    assert up["accuracy"].regressed  # +0.04 > 5% of 0.6 = 0.03
    edge = compare(record(auc=0.62, accuracy=0.63), record(auc=0.6, accuracy=0.6), [], tolerances)
    assert not any(c.regressed for c in edge)  # exactly at the allowance is allowed
    down = compare(record(auc=0.4), record(auc=0.9), ["accuracy"], tolerances)
    assert not any(c.regressed for c in down)
    missing = compare(record(), None, ["accuracy"], tolerances)
    assert all(c.baseline is None and c.delta is None and not c.regressed for c in missing)


def test_store_numbers_runs_and_finds_them(tmp_path):
    store = ResultsStore(tmp_path / "runs")
    assert store.runs() == [] and store.find("latest") is None
    first = store.save({"results": [record()]}, "release 1.0/rc")
    second = store.save({"results": []}, "mild")
    assert (first.label, second.label) == ("0001_release-1.0-rc", "0002_mild")
    assert store.find("latest") == second and store.find("1") == first and store.find("0002") == second
    assert store.find("0001_release-1.0-rc").load()["results"][0]["attack"] == "II-P"
    assert store.find(str(first.path)).path == first.path
    with pytest.raises(MiaUsageError, match="no saved run '3'.*0001_release-1.0-rc, 0002_mild"):
        store.find("3")


def test_a_corrupt_saved_run_is_a_usage_error(tmp_path):
    store = ResultsStore(tmp_path)
    (tmp_path / "0001_broken.json").write_text("{not json")
    with pytest.raises(MiaUsageError, match="cannot read the saved run"):
        store.find("latest").load()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=6))
def test_saved_numbers_increase_and_names_are_file_safe(tmp_path_factory, names):
    store = ResultsStore(tmp_path_factory.mktemp("store"))
    saved = [store.save({"n": i}, name) for i, name in enumerate(names)]
    assert [run.number for run in store.runs()] == list(range(1, len(names) + 1))
    assert all(run.path.is_file() and "/" not in run.name and run.name == safe_name(run.name) for run in saved)
    assert [json.loads(run.path.read_text())["n"] for run in store.runs()] == list(range(len(names)))
