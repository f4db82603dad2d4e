"""The committed screenshots change only when asked: FEATS_SCREENSHOTS names where they go."""

from __future__ import annotations

from pathlib import Path

from .conftest import ROOT, screenshot_directory

# The README is also PyPI's project page, where a relative image does not show: its images
# name the committed files on the main branch.
PUBLISHED = "https://raw.githubusercontent.com/feats-dev/feats/main/"


def test_screenshots_go_to_a_temporary_directory_unless_asked(tmp_path: Path) -> None:
    assert screenshot_directory(None, tmp_path) == tmp_path
    assert screenshot_directory("", tmp_path) == tmp_path
    assert screenshot_directory("docs/screenshots", tmp_path) == ROOT / "docs" / "screenshots"
    assert screenshot_directory(str(tmp_path / "shots"), tmp_path) == tmp_path / "shots"


def test_every_screenshot_the_readme_shows_is_committed() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = {line.split("](")[1].split(")")[0] for line in readme.splitlines() if "![" in line}
    assert shown, "the README shows no screenshot"
    for address in sorted(shown):
        assert address.startswith(PUBLISHED), f"README.md shows {address}, not a committed file"
        path = address.removeprefix(PUBLISHED)
        assert (ROOT / path).is_file(), f"README.md shows {path}, which is not there"
