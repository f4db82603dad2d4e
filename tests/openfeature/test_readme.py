"""The README's OpenFeature and Observability sections: every code block runs as shown and
prints what its ``# -> ...`` comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PRINTS = re.compile(r"# -> (.+)$", re.MULTILINE)


def blocks() -> list[str]:
    text = README.read_text()
    start = text.index("\n## OpenFeature\n")
    end = text.index("\n## Benchmarks\n")
    return BLOCK.findall(text[start:end])


def test_the_sections_have_their_blocks() -> None:
    assert len(blocks()) == 4


@pytest.mark.parametrize("number", range(4))
def test_a_block_runs_and_prints_what_it_says(number: int, tmp_path: Path) -> None:
    code = blocks()[number]
    script = tmp_path / f"block{number}.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    position = 0
    for expected in PRINTS.findall(code):
        found = result.stdout.find(expected.strip(), position)
        assert found >= 0, f"{expected!r} not printed (in order):\n{result.stdout}"
        position = found + len(expected.strip())
