"""Option parsing (settings.py): every option's value is checked where it is read, and an error names the
option, its range and what to do."""

from __future__ import annotations

import pytest

from mia_checks.errors import MiaUsageError
from mia_checks.settings import build_settings, parse_attacks

BASE = {"target": "model:generate", "members": "m", "nonmembers": "n"}


def settings_with(**options: str):
    return build_settings({**BASE, **options})


# --- numeric options: finite, and in range for what they mean -------------------------------------------

@pytest.mark.parametrize("name, value, message", [
    ("threshold", "nan", r"--mia-threshold \(gate metric auc\): 'nan' is not a finite number"),
    ("threshold", "inf", "not a finite number"),
    ("threshold", "II-P=nan", "not a finite number"),
    ("threshold", "-1", r"--mia-threshold \(gate metric auc\): -1.0 is out of range \[0.0, 1.0\]"),
    ("threshold", "1.5", "out of range"),
    ("threshold", ",", "--mia-threshold: empty"),
    ("alpha", "nan", "--mia-alpha: 'nan' is not a finite number"),
    ("alpha", "0", "out of range"),
    ("guidance", "nan", "--mia-guidance: 'nan' is not a finite number"),
    ("guidance", "-inf", "not a finite number"),
    ("guidance", "-1", "--mia-guidance: -1.0 is out of range: below its minimum 0"),
    ("known-fraction", "nan", "--mia-known-fraction: 'nan' is not a finite number"),
    ("max-samples", "5", "--mia-max-samples .*sets under 20 images are refused.*5 is out of range: below its minimum 20"),
    ("max-samples", "nan", "not a valid int"),
    ("steps", "0", "--mia-steps: 0 is out of range: below its minimum 1"),
    ("folds", "1e9", "--mia-folds: '1e9' is not a valid int"),
])
def test_numeric_options_are_finite_and_in_range(name, value, message):
    with pytest.raises(MiaUsageError, match=message):
        settings_with(**{name: value})


@pytest.mark.parametrize("metric, ok, bad", [("accuracy", "0.6", "-0.1"), ("auc", "1", "1.01"),
                                             ("tpr@1%fpr", "0", "-0.5"), ("advantage", "-0.5", "-1.5")])
def test_threshold_range_follows_the_gate_metric(metric, ok, bad):
    assert settings_with(**{"gate-metric": metric, "threshold": ok}).threshold == float(ok)
    with pytest.raises(MiaUsageError, match=rf"gate metric {metric}.*out of range"):
        settings_with(**{"gate-metric": metric, "threshold": f"II-P={bad}"})


def test_attack_groups_and_white_box_options_parse_with_errors_naming_the_option():
    assert parse_attacks("whitebox") == ("loss", "SimA", "PIA", "SecMI", "CLiD")
    assert parse_attacks("clid, II-P") == ("II-P", "CLiD")  # registry order, any case
    assert len(parse_attacks("all")) == len(parse_attacks("blackbox,whitebox")) == 12
    base = {"target": "t", "members": "m", "nonmembers": "n"}
    s = build_settings({**base, "loss-timesteps": "450", "secmi-timestep": "50", "secmi-interval": "5",
                        "clid-captions": "null"})
    assert s.whitebox.loss_timesteps == (450,) and s.whitebox.clid_captions == ("null",)
    assert not build_settings({**base, "attacks": "all"}).attacks_chosen
    assert build_settings({**base, "attacks": "loss"}).attacks_chosen
    for option, value, message in (("secmi-timestep", "55", "not a multiple of --mia-secmi-interval"),
                                   ("loss-timesteps", "100,1000", "--mia-loss-timesteps: 1000 is out of range"),
                                   ("pia-timestep", "x", "--mia-pia-timestep: 'x' is not a valid int"),
                                   ("clid-captions", "all-but", "--mia-clid-captions: unknown all-but")):
        with pytest.raises(MiaUsageError, match=message):
            build_settings({**base, option: value})
