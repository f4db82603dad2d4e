"""The typed declarations under the real type checkers: mypy --strict and pyright report
every deliberate mistake in mistakes.py (and nothing else there), and pass the README's
blocks with no ignore."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MISTAKES = Path(__file__).with_name("mistakes.py")
PYRIGHT = Path(sys.executable).with_name("pyright")

pytestmark = pytest.mark.slow


def marked(marker: str) -> dict[int, str]:
    """Line number -> what follows ``# <marker>:`` on that line of mistakes.py."""
    found = {}
    for number, line in enumerate(MISTAKES.read_text().splitlines(), start=1):
        match = re.search(rf"#\s*{marker}:\s*(.+)$", line)
        if match:
            found[number] = match.group(1).strip()
    return found


def run_mypy(*paths: Path, cwd: Path) -> list[tuple[str, int, str]]:
    """(file name, line, message) of every error mypy --strict reports."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file=",
            "--python-version=3.11",
            "--no-error-summary",
            "--hide-error-context",
            "--no-color-output",
            f"--cache-dir={cwd / '.mypy_cache'}",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        # The checkout on the path: mypy does not follow setuptools' editable-install finder.
        env={**os.environ, "MYPYPATH": str(ROOT)},
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr
    errors = []
    for line in result.stdout.splitlines():
        match = re.match(r"(.+?):(\d+): error: (.+?)(?:  \[[a-z-]+\])?$", line)
        if match:
            errors.append((Path(match.group(1)).name, int(match.group(2)), match.group(3)))
    return errors


def run_pyright(*paths: Path, cwd: Path) -> list[tuple[str, int, str]]:
    """(file name, line, message) of every error pyright (standard mode) reports."""
    # The checkout on the path: pyright does not follow setuptools' editable-install finder.
    config = {"typeCheckingMode": "standard", "pythonVersion": "3.11", "extraPaths": [str(ROOT)]}
    (cwd / "pyrightconfig.json").write_text(json.dumps(config))
    result = subprocess.run(
        [
            str(PYRIGHT),
            "--outputjson",
            "--pythonpath",
            sys.executable,
            "--project",
            str(cwd),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report = json.loads(result.stdout)
    return [
        (
            Path(item["file"]).name,
            item["range"]["start"]["line"] + 1,
            item["message"],
        )
        for item in report["generalDiagnostics"]
        if item["severity"] == "error"
    ]


def test_mypy_strict_reports_every_deliberate_mistake(tmp_path: Path) -> None:
    expected = marked("E")
    assert len(expected) >= 15
    errors = run_mypy(MISTAKES, cwd=tmp_path)
    by_line: dict[int, list[str]] = {}
    for _, line, message in errors:
        by_line.setdefault(line, []).append(message)
    for line, message in expected.items():
        assert message in by_line.get(line, []), (line, message, by_line.get(line))
    assert set(by_line) == set(expected), "errors on lines not marked as mistakes"


def test_pyright_reports_every_deliberate_mistake(tmp_path: Path) -> None:
    expected = set(marked("E")) | set(marked("P"))
    lines = {line for _, line, _ in run_pyright(MISTAKES, cwd=tmp_path)}
    assert lines == expected


def readme_blocks() -> dict[str, str]:
    """The README's Python blocks that name a file (``<!-- file: name.py ... -->`` above)."""
    text = (ROOT / "README.md").read_text()
    return dict(
        re.findall(r"<!-- file: (\S+\.py)[^>]*-->\n```python\n(.*?)```", text, flags=re.DOTALL)
    )


def test_the_readme_blocks_pass_mypy_strict_and_pyright(tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert {"quickstart_aio.py", "quickstart_sync.py"} <= set(blocks)
    paths = []
    for name, code in blocks.items():
        path = tmp_path / name
        path.write_text(code)
        paths.append(path)
    assert run_mypy(*paths, cwd=tmp_path) == []
    assert run_pyright(*paths, cwd=tmp_path) == []
