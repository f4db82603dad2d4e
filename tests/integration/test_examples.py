"""Every example in examples/ runs as its own process, on memory and on Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(
    path.name for path in EXAMPLES_DIR.glob("*.py") if path.name not in {"shop.py", "run_all.py"}
)
# A line of each story's output that only a working run prints.
EXPECTED = {
    "payments_ops.py": "Current state equals version",
    "payments_rollout.py": "US 100%         100.00%         0.00%         0.00%",
    "confirm_text.py": "rule UserDevice=ios: static save",
    "image_processing.py": "processed now: none; deferred: 100, 101, 102, 200, 201",
    "priorities_experiment.py": "users only preselected, never exposed: 1,500",
    "openfeature_provider.py": "Bruno (CA): premium, TARGETING_MATCH",
}


def run(script: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEATS_")}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / script)],
        cwd=EXAMPLES_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_every_example_has_an_expectation() -> None:
    assert set(EXAMPLES) == set(EXPECTED)


@pytest.mark.parametrize("script", EXAMPLES)
def test_example_on_memory(script: str) -> None:
    output = run(script)
    assert "on MemoryStorage" in output
    assert EXPECTED[script] in output


@pytest.mark.redis
@pytest.mark.parametrize("script", EXAMPLES)
def test_example_on_redis(script: str, redis_url: str, namespace: str) -> None:
    output = run(script, FEATS_REDIS_URL=redis_url, FEATS_NAMESPACE=namespace)
    assert f"namespace {namespace!r}" in output
    assert EXPECTED[script] in output
    # A second run on the same namespace tells the same story.
    again = run(script, FEATS_REDIS_URL=redis_url, FEATS_NAMESPACE=namespace)
    assert EXPECTED[script] in again


def test_run_all_on_memory() -> None:
    output = run("run_all.py")
    assert f"{len(EXAMPLES)} of {len(EXAMPLES)} examples ran successfully." in output
    assert output.count("on MemoryStorage") == len(EXAMPLES)


@pytest.mark.redis
def test_run_all_on_redis(redis_url: str, namespace: str) -> None:
    output = run("run_all.py", FEATS_REDIS_URL=redis_url, FEATS_NAMESPACE=namespace)
    assert output.count(f"namespace {namespace!r}") == len(EXAMPLES)
    assert f"{len(EXAMPLES)} of {len(EXAMPLES)} examples ran successfully." in output
    for script in EXAMPLES:
        assert f"examples/{script}" in output
