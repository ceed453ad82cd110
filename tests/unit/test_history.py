"""The trend report of saved runs (history.py, reports/trend.py, `mia-checks history`), on saved documents."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from mia_checks.cli import main
from mia_checks.errors import MiaUsageError
from mia_checks.history import load_series
from mia_checks.record import SCHEMA_VERSION

LEAKY = Path(__file__).parents[1] / "data" / "leaky-run.json"  # saved before schema_version existed: schema 1


def dp_run(document: dict, epsilon: float, auc: float, bound: float) -> dict:
    """The leaky document as a schema-2 run of a target that declares ε, its attacks at `auc`."""
    run = copy.deepcopy(document)
    run.update(schema_version=SCHEMA_VERSION, privacy={"epsilon": epsilon, "delta": 0.004, "source": "privacy.json"},
               epsilon_bound={"confidence": 0.95, "delta": 0.004, "ceiling": 2.1})
    for record in run["results"]:
        record["auc"] = {"value": auc, "low": auc - 0.1, "high": auc + 0.1}
        record["verdict"]["leaks"] = auc > 0.7
        record["epsilon_lower_bound"] = bound
    return run


@pytest.fixture
def storage(tmp_path) -> Path:
    folder = tmp_path / ".mia-checks"
    folder.mkdir()
    document = json.loads(LEAKY.read_text())
    assert "schema_version" not in document
    (folder / "0001_control.json").write_text(json.dumps(document))
    for number, (name, epsilon, auc, bound) in enumerate([("dp8", 8.0, 0.62, 0.4), ("dp1", 1.0, 0.5, 0.0)], 2):
        (folder / f"000{number}_{name}.json").write_text(json.dumps(dp_run(document, epsilon, auc, bound)))
    return folder


def test_the_series_reads_old_and_new_schemas_in_run_order(storage):
    series = load_series(str(storage))
    assert [r.label for r in series] == ["0001_control", "0002_dp8", "0003_dp1"]
    assert [r.schema_version for r in series] == [1, 2, 2]
    assert [r.declared_epsilon for r in series] == [None, 8.0, 1.0]
    assert series[0].points["II-P"].leaks and not series[2].points["II-P"].leaks
    assert [r.points["loss"].value for r in series][1:] == [0.62, 0.5]
    assert series[1].best_epsilon_lower_bound == ("I-P", 0.4)


def test_a_run_saved_by_a_newer_mia_checks_is_refused_naming_the_file(storage):
    newer = json.loads((storage / "0002_dp8.json").read_text()) | {"schema_version": SCHEMA_VERSION + 1}
    (storage / "0004_future.json").write_text(json.dumps(newer))
    with pytest.raises(MiaUsageError, match=rf"0004_future.json was saved by a newer mia-checks \(run schema "
                                            rf"{SCHEMA_VERSION + 1}; this one reads schemas 1 to {SCHEMA_VERSION}\)"):
        load_series(str(storage))


@pytest.mark.parametrize("version", ["2", 0, True, None])
def test_a_schema_version_that_is_no_positive_integer_is_refused(storage, version):
    (storage / "0004_odd.json").write_text(json.dumps({"schema_version": version, "results": []}))
    with pytest.raises(MiaUsageError, match="0004_odd.json has schema_version .* not a positive integer"):
        load_series(str(storage))


def test_an_empty_storage_is_a_usage_error(tmp_path):
    with pytest.raises(MiaUsageError, match="--mia-storage: no saved runs in"):
        load_series(str(tmp_path / "nothing"))


def test_history_writes_a_self_contained_page_and_a_png(storage, tmp_path, capsys):
    html, png = tmp_path / "out" / "trend.html", tmp_path / "trend.png"
    assert main(["history", f"--mia-storage={storage}", f"--mia-history={html}", f"--mia-history={png}"]) == 0
    assert "3 saved runs" in capsys.readouterr().out
    page = html.read_text()
    assert page.count("<tr>") == 4 and "0003_dp1" in page and "<svg" in page
    assert "ε: lower bound (measured) vs declared" in page
    assert 'src="http' not in page and "<script" not in page
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--mia-history=trend.svg"], "write a .html or a .png file"),
    (["--mia-history=t.html", "--mia-storage=missing"], "no saved runs in missing/"),
])
def test_history_usage_errors_exit_4_with_the_option_named(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["history", *args]) == 4
    assert message in capsys.readouterr().err


def test_the_series_reads_each_run_in_the_latest_run_s_gate_metric(storage):
    """A run gated on TPR@1%FPR is drawn in it, not in AUC; an earlier run gated on AUC shows its TPR@1%FPR
    with no threshold (it was not judged on that metric)."""
    latest = json.loads((storage / "0003_dp1.json").read_text())
    latest["settings"]["gate_metric"] = "tpr@1%fpr"
    for record in latest["results"]:
        record["tpr_at_1pct_fpr"] = 0.25
        record["verdict"]["threshold"] = 0.1
    (storage / "0003_dp1.json").write_text(json.dumps(latest))
    series = load_series(str(storage))
    assert {r.metric for r in series} == {"tpr@1%fpr"}
    assert series[2].points["loss"].value == 0.25 and series[2].points["loss"].threshold == 0.1
    assert series[2].points["loss"].low is None
    earlier = series[0].points["loss"]
    assert earlier.value == json.loads(LEAKY.read_text())["results"][7]["tpr_at_1pct_fpr"]
    assert earlier.threshold != earlier.threshold  # NaN: not drawn
    from mia_checks.reports.trend import render_trend_html

    assert "loss: tpr@1%fpr" in render_trend_html(series, str(storage))
