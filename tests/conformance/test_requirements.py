"""REQUIREMENTS.md maps each spec requirement to the scenarios tagged with it: keep them equal."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_bdd.parser import FeatureParser
from pytest_bdd.scenario import make_python_name

HERE = Path(__file__).parent
FEATURES = HERE / "features"
TABLE_ROW = re.compile(r"^\| (\d+(?:\.\d+)+) \| [^|]+ \| (.+) \|$")


def spec_coverage() -> dict[str, list[str]]:
    """``{"1.4.8": ["test_an_unknown_flag_is_flag_not_found", ...]}`` from the tags."""
    coverage: dict[str, list[str]] = {}
    for path in sorted(FEATURES.glob("*.feature")):
        feature = FeatureParser(str(FEATURES), path.name).parse()
        for name, scenario in feature.scenarios.items():
            for tag in scenario.tags:
                if tag.startswith("spec-"):
                    tests = coverage.setdefault(tag.removeprefix("spec-"), [])
                    tests.append(f"test_{make_python_name(name)}")
    return {requirement: sorted(tests) for requirement, tests in coverage.items()}


def documented_coverage() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in (HERE / "REQUIREMENTS.md").read_text().splitlines():
        match = TABLE_ROW.match(line)
        if match is not None:
            rows[match[1]] = sorted(name.strip(" `") for name in match[2].split(","))
    return rows


def test_every_tagged_requirement_is_documented_with_its_tests() -> None:
    assert documented_coverage() == spec_coverage()


def test_the_requirements_that_do_not_apply_are_not_tagged() -> None:
    text = (HERE / "REQUIREMENTS.md").read_text()
    _, _, not_applicable = text.partition("## Requirements that do not apply")
    listed = set(re.findall(r"^\| (\d+(?:\.\d+)+) \|", not_applicable, re.MULTILINE))
    assert listed
    assert not listed & set(spec_coverage())
