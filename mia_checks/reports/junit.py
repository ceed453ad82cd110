"""Per-attack figures as JUnit XML properties: on the test case for xunit1 (`junit_properties`), on the test
suite as mia.<attack>.<name> for xunit2, pytest's default, whose test cases have no properties."""

from __future__ import annotations


def junit_properties(record: dict) -> list[tuple[str, object]]:
    """(name, value) of one attack's record: accuracy, AUC, advantage, ε lower bound, verdict."""
    return [*((f"mia.{key}", record[key]["value"]) for key in ("accuracy", "auc", "advantage")),
            ("mia.epsilon_lower_bound", record["epsilon_lower_bound"]), ("mia.verdict", record["verdict"]["label"])]


def suite_properties(record: dict) -> list[tuple[str, object]]:
    """The same, named for the test suite: mia.<attack>.<name>."""
    return [(name.replace("mia.", f"mia.{record['attack']}.", 1), value) for name, value in junit_properties(record)]
