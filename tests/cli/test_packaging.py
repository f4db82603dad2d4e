"""The package as PyPI and pip see it: an SPDX license and its file, classifiers, URLs and
authors, the CLI in its own extra, a README whose links work off GitHub, and a build that
warns about nothing."""

from __future__ import annotations

import email
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        document: dict[str, Any] = tomllib.load(file)
    return document


def test_the_metadata_is_complete() -> None:
    project = _project()["project"]
    assert project["license"] == "MIT"  # an SPDX expression, not the deprecated table
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert project["authors"] and all(author["name"] for author in project["authors"])
    classifiers = project["classifiers"]
    for wanted in (
        "Framework :: AsyncIO",
        "Typing :: Typed",
        "Programming Language :: Python :: 3.11",
    ):
        assert wanted in classifiers
    # A license classifier beside a license expression is an error for setuptools.
    assert not any(c.startswith("License ::") for c in classifiers)
    assert {"Homepage", "Source", "Issues"} <= set(project["urls"])
    assert all(url.startswith("https://") for url in project["urls"].values())


def test_the_cli_is_an_extra_that_the_test_extra_includes() -> None:
    project = _project()["project"]
    names = {re.split(r"[<>=\[;]", requirement)[0] for requirement in project["dependencies"]}
    assert not names & {"click", "rich"}
    cli = project["optional-dependencies"]["cli"]
    assert {re.split(r"[<>=]", r)[0] for r in cli} == {"click", "rich"}
    assert all(">=" in requirement for requirement in cli)  # lower bounds pinned
    assert set(cli) <= set(project["optional-dependencies"]["test"])
    assert project["scripts"]["feats"] == "feats._cli:main"


def test_pytest_turns_warnings_and_unknown_markers_into_errors() -> None:
    options = _project()["tool"]["pytest"]["ini_options"]
    # Every warning is an error; the exceptions after it are named one by one.
    assert options["filterwarnings"][0] == "error"
    assert all(rule.startswith("ignore:") for rule in options["filterwarnings"][1:])
    assert "--strict-markers" in options["addopts"].split()
    assert options["timeout"] > 0
    test_extra = _project()["project"]["optional-dependencies"]["test"]
    assert any(requirement.startswith("pytest-timeout>=") for requirement in test_extra)


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img[^>]+src=\"([^\"]+)\"|<a[^>]+href=\"([^\"]+)\"")


def test_readme_links_and_images_work_on_pypi() -> None:
    """PyPI shows the README without the repository around it: every link is absolute."""
    targets = [
        next(t for t in match if t) for match in LINK.findall((ROOT / "README.md").read_text())
    ]
    assert targets, "no links found: the pattern is wrong"
    relative = [target for target in targets if not target.startswith(("https://", "http://"))]
    assert not relative, relative


@pytest.mark.slow
def test_the_wheel_builds_without_warnings(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    output = build.stdout + build.stderr
    assert "SetuptoolsDeprecationWarning" not in output, output[-3000:]
    assert "project.license" not in output
    [wheel] = tmp_path.glob("feats-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = email.message_from_bytes(
            archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        )
    assert metadata["License-Expression"] == "MIT"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "feats/py.typed" in names and "feats/_cli/_shop.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names)
    urls = metadata.get_all("Project-URL") or []
    assert any(value.startswith("Homepage, https://") for value in urls)
    assert 'click>=8.1; extra == "cli"' in (metadata.get_all("Requires-Dist") or [])


def test_the_cli_package_exports() -> None:
    import feats._cli
    import feats._cli._shop

    assert feats._cli.__all__ == ["Exit", "cli", "main"]
    assert callable(feats._cli.cli) and callable(feats._cli.main)
    assert set(feats._cli._shop.__all__) >= {"declare", "Shop", "User", "Address", "user"}
    for name in feats._cli._shop.__all__:
        assert hasattr(feats._cli._shop, name), name
