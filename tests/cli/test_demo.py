"""``feats demo``, fast: the story's steps happen and the serving App's users see them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from feats._cli import Exit, cli
from feats._cli._demo import choose_steps

ROOT = Path(__file__).resolve().parents[2]


def _demo(*args: str) -> Any:
    result = CliRunner().invoke(
        cli, ["demo", "--speed", "100", "--users", "400", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


def _check_story(data: dict[str, Any]) -> None:
    steps = {step["name"]: step for step in data["steps"]}
    assert list(steps) == [
        "start",
        "canada",
        "rollback",
        "aperture5",
        "aperture25",
        "aperture100",
        "priorities",
    ]
    assert steps["start"]["shares"]["CA"] == {"acme": 1.0}
    assert steps["canada"]["shares"]["CA"] == {"premium": 1.0}
    assert steps["canada"]["shares"]["US"] == {"acme": 1.0}
    assert steps["rollback"]["shares"]["CA"] == {"acme": 1.0}
    assert 0.0 < steps["aperture5"]["shares"]["US"]["aperture"] < 0.15
    assert 0.15 < steps["aperture25"]["shares"]["US"]["aperture"] < 0.35
    assert "100.0% of earlier aperture users kept it" in steps["aperture25"]["observed"]
    assert steps["aperture100"]["shares"]["US"] == {"aperture": 1.0}
    assert steps["aperture100"]["shares"]["MX"] == {"acme": 1.0}
    for step in data["steps"]:
        assert step["version"]
        assert 0 <= step["propagation_ms"] < 5000
    assert set(data["exposures"]) == {"no_priority", "two_priorities", "three_priorities"}
    assert data["seconds"] < 60


def test_the_demo_in_memory() -> None:
    data = json.loads(_demo("--json").stdout)
    assert data["storage"] == "memory"
    _check_story(data)


def test_the_demo_on_redis(redis_url: str) -> None:
    data = json.loads(_demo("--json", "--redis", redis_url).stdout)
    assert data["storage"] == "redis"
    _check_story(data)


def test_the_demo_without_a_terminal_prints_plain_snapshots() -> None:
    output = _demo("--steps", "canada,rollback").stdout
    assert "▶ Acme fails in Canada: Canadians to premium\n" in output
    assert "PaymentProcessor: share of users per country" in output
    assert "$ feats set PaymentProcessor premium --where Country=CA" in output
    assert "\x1b[" not in output


def test_demo_steps_can_be_chosen() -> None:
    listing = _demo("--list-steps").stdout
    assert "5  aperture25" in listing
    data = json.loads(_demo("--steps", "2", "--json").stdout)
    assert [step["name"] for step in data["steps"]] == ["start", "canada"]
    bad = CliRunner().invoke(cli, ["demo", "--steps", "canadaa"])
    assert bad.exit_code == Exit.USAGE
    assert "unknown step 'canadaa'" in bad.stderr


def test_demo_steps_as_the_readme_writes_them() -> None:
    # README: "--speed 4 and --steps 1-3 shorten it".
    data = json.loads(_demo("--steps", "1-3", "--json").stdout)
    assert [step["name"] for step in data["steps"]] == ["start", "canada", "rollback"]
    assert [step.name for step in choose_steps("4-5,priorities")] == [
        "aperture5",
        "aperture25",
        "priorities",
    ]
    assert [step.name for step in choose_steps("1,3")] == ["start", "rollback"]
    for spec, message in (
        ("3-1", "'3-1' goes backwards"),
        ("0", "a step number from 1 to 7, got 0"),
        ("1-9", "a step number from 1 to 7, got 9"),
        ("1-x", "unknown step '1-x'"),
    ):
        bad = CliRunner().invoke(cli, ["demo", "--steps", spec])
        assert bad.exit_code == Exit.USAGE, (spec, bad.output)
        assert message in bad.stderr, (spec, bad.stderr)
        assert "Traceback" not in bad.output


def test_python_dash_m_feats_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "feats", "demo", "--speed", "100", "--users", "200", "--steps", "3"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "▶ done" in result.stdout
