"""Smoke test of the benchmark suite: a tiny run end to end, files written, answers sane.

Timings are never asserted: they depend on the machine. What must hold anywhere is that
every row answered with the configured shares (the sanity column) and that the files exist.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import main
from benchmarks.peers import SCENARIOS

# A whole (tiny) run of the suite: more than the per-test timeout on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TINY = [
    "--quick",
    "--no-progress",
    "--users",
    "2000",
    "--repeat",
    "1",
    "--apps",
    "4",
    "--processes",
    "2",
    "--changes",
    "10",
    "--fanout-features",
    "20",
    "--startup-features",
    "200",
    "--exposure-seconds",
    "0.2",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    assert main([*TINY, "--out", str(out)]) == 0
    document: dict[str, Any] = json.loads((out / "results.json").read_text())
    return out, document


def test_writes_every_file(run: tuple[Path, dict[str, Any]]) -> None:
    out, document = run
    for name in ("results.md", "results.json"):
        assert (out / name).stat().st_size > 0, name
    markdown = (out / "results.md").read_text()
    assert "## Targets" in markdown
    assert "## Evaluation cost" in markdown
    charts = ["evaluation.png"]
    if document["machine"]["redis"] != "no Redis":
        charts += ["propagation_cdf.png", "startup.png"]
    if importlib.util.find_spec("matplotlib") is None:
        assert "no charts" in markdown  # reported, not fatal
        return
    for name in charts:
        assert (out / name).stat().st_size > 0, name


def test_every_row_answers_with_the_configured_shares(run: tuple[Path, dict[str, Any]]) -> None:
    _, document = run
    rows = document["evaluation"]
    assert rows
    bad = [(r["scenario"], r["library"], r["call"], r["problems"]) for r in rows if r["problems"]]
    assert not bad
    for scenario in SCENARIOS:
        libraries = {row["library"] for row in rows if row["scenario"] == scenario}
        assert {"feats", "floor"} <= libraries, scenario


def test_feats_and_the_floor_agree_user_for_user(run: tuple[Path, dict[str, Any]]) -> None:
    """The floor reads feats' stored salt and ranges, so their shares must be identical."""
    _, document = run
    for scenario in SCENARIOS:
        shares = {
            (row["library"], row["call"]): row["shares"]
            for row in document["evaluation"]
            if row["scenario"] == scenario and "off" not in row["call"]
        }
        floor = shares[("floor", "plain function")]
        for (library, call), got in shares.items():
            if library == "feats":
                assert got == floor, (scenario, call)


def test_a_is_a_half_rollout_and_c_the_default(run: tuple[Path, dict[str, Any]]) -> None:
    _, document = run
    by_key = {(r["scenario"], r["library"], r["call"]): r for r in document["evaluation"]}
    half = by_key[("a", "feats", "sync is_enabled")]["shares"]
    assert set(half) == {"enabled", "disabled"}
    assert abs(half["enabled"] - 50.0) < 5.0
    assert by_key[("c", "feats", "sync create")]["shares"] == {"default": 100.0}


def test_redis_sections_ran_when_redis_was_there(run: tuple[Path, dict[str, Any]]) -> None:
    _, document = run
    if document["machine"]["redis"] == "no Redis":
        pytest.skip("no redis-server on this machine")
    assert len(document["propagation"]) == 3
    for propagation in document["propagation"]:
        assert propagation["missing"] == 0
        assert propagation["samples"] == propagation["apps"] * propagation["changes"]
    feats_startup = [row for row in document["startup"] if row["library"] == "feats"]
    assert feats_startup
    for row in feats_startup:
        assert row["extra"]["loaded"] == 200
    on = [run_ for run_ in document["exposures"] if run_["exposures"]]
    assert on
    for run_ in on:
        assert run_["in_redis"] + run_["dropped"] == run_["evaluations"]
