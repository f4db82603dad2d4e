"""Where a benchmark run writes: a quick run never overwrites the committed results."""

from __future__ import annotations

import subprocess
from pathlib import Path

from benchmarks.__main__ import DEFAULT_OUT, QUICK_OUT, _parser, output_folder

ROOT = Path(__file__).resolve().parents[2]


def test_a_quick_run_writes_beside_the_committed_results(tmp_path: Path) -> None:
    assert output_folder(_parser().parse_args([])) == DEFAULT_OUT
    assert output_folder(_parser().parse_args(["--quick"])) == QUICK_OUT
    assert QUICK_OUT != DEFAULT_OUT and DEFAULT_OUT not in QUICK_OUT.parents
    asked = output_folder(_parser().parse_args(["--quick", "--out", str(tmp_path)]))
    assert asked == tmp_path


def test_quick_results_are_not_committed() -> None:
    probe = QUICK_OUT / "results.md"
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", str(probe)], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, f"{probe} is not ignored by git"
    committed = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", str(DEFAULT_OUT / "results.md")],
        cwd=ROOT,
        check=False,
    )
    assert committed.returncode == 1
