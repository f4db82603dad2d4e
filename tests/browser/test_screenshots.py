"""The committed screenshots change only when asked: FEATS_SCREENSHOTS names where they go."""

from __future__ import annotations

from pathlib import Path

from .conftest import ROOT, screenshot_directory


def test_screenshots_go_to_a_temporary_directory_unless_asked(tmp_path: Path) -> None:
    assert screenshot_directory(None, tmp_path) == tmp_path
    assert screenshot_directory("", tmp_path) == tmp_path
    assert screenshot_directory("docs/screenshots", tmp_path) == ROOT / "docs" / "screenshots"
    assert screenshot_directory(str(tmp_path / "shots"), tmp_path) == tmp_path / "shots"


def test_every_screenshot_the_readme_shows_is_committed() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = {line.split("](")[1].split(")")[0] for line in readme.splitlines() if "![" in line}
    assert shown, "the README shows no screenshot"
    for path in sorted(shown):
        assert (ROOT / path).is_file(), f"README.md shows {path}, which is not there"
