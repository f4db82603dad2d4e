"""One poisoned value in the states hash (deep nesting, a 400-digit weight): every command
still works, says what it cannot read, and ``feats set`` on that feature repairs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import feats
from feats._cli import Exit
from feats._layout import Keys

from ._shop import declare, user
from .conftest import Run, Serving, json_of, written

DEEP = "[" * 100_000 + "]" * 100_000
"""200 KB, under the record size limit: a RecursionError for a naive decoder."""


def _huge_weight(raw: bytes) -> str:
    record = json.loads(raw)
    record["state"]["rules"][0]["selector"] = {
        "type": "rollout",
        "segment": "UserId",
        "weights": {"aperture": 10**400, "acme": 1},
    }
    return json.dumps(record)


@pytest.fixture(params=["deep nesting", "a 400-digit weight"])
def poisoned(
    request: pytest.FixtureRequest,
    serving: Serving,
    run: Run,
    sync_redis: redis.Redis,
    namespace: str,
    tmp_path: Path,
) -> Iterator[str]:
    """PaymentProcessor and AllowedPriorities configured, a backup taken, then the stored
    value of PaymentProcessor replaced; yields the poisoned version."""
    written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    good = written(run("set", "AllowedPriorities", "two_priorities", "-y", "--json"))
    serving.wait(good)
    backup = run("export", "--output", str(tmp_path / "backup.json"))
    assert backup.exit_code == 0, backup.output
    keys = Keys(namespace)
    raw = sync_redis.hget(keys.states, "PaymentProcessor")
    assert isinstance(raw, bytes)
    sync_redis.hset(
        keys.states,
        "PaymentProcessor",
        DEEP if request.param == "deep nesting" else _huge_weight(raw),
    )
    version = sync_redis.hget(keys.versions, "PaymentProcessor")
    assert isinstance(version, bytes)
    yield version.decode()


def _clean(result: object) -> None:
    output = getattr(result, "output", "")
    assert "Traceback" not in output, output


def test_list(poisoned: str, run: Run) -> None:
    table = run("list")
    assert table.exit_code == 0, table.output
    assert "unreadable:" in table.stdout and poisoned in table.stdout
    assert "two_priorities" in table.stdout  # the others are listed as they are
    assert "cannot be read" in table.stderr
    rows = {row["feature"]: row for row in json_of(run("list", "--json"))}
    assert rows["PaymentProcessor"]["version"] == poisoned
    assert rows["PaymentProcessor"]["unreadable"]
    assert rows["AllowedPriorities"]["summary"] == "everyone → two_priorities"


def test_show(poisoned: str, run: Run) -> None:
    result = run("show", "PaymentProcessor")
    assert result.exit_code == 0, result.output
    assert f"Version {poisoned} cannot be read" in result.stdout
    assert "Never configured" not in result.stdout
    assert "feats set, rollback or reset" in result.stdout
    data = json_of(run("show", "PaymentProcessor", "--json"))
    assert data["current"] is None and data["unreadable"]["version"] == poisoned
    assert run("show", "AllowedPriorities").exit_code == 0


def test_history(poisoned: str, run: Run) -> None:
    result = run("history", "PaymentProcessor")
    assert result.exit_code == 0, result.output
    assert "+ Country=CA: premium" in result.stdout
    assert len(json_of(run("history", "AllowedPriorities", "--json"))) == 1


def test_export(poisoned: str, run: Run) -> None:
    result = run("export")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [item["feature"] for item in document["features"]] == ["AllowedPriorities"]
    [skipped] = document["skipped"]
    assert (skipped["feature"], skipped["version"]) == ("PaymentProcessor", poisoned)
    assert f"skipped PaymentProcessor at {poisoned}" in result.stderr


def test_drift(poisoned: str, run: Run) -> None:
    result = run("drift", "--json")
    assert result.exit_code == Exit.DRIFT, result.output
    kinds = {(item["feature"], item["kind"]) for item in json.loads(result.stdout)}
    assert ("PaymentProcessor", "unreadable") in kinds
    assert ("PaymentProcessor", "unconfigured") not in kinds
    table = run("drift")
    assert "unreadable" in table.stdout and poisoned in table.stdout


def test_exposures_and_catalog(poisoned: str, run: Run) -> None:
    for args in (("exposures", "PaymentProcessor"), ("exposures", "AllowedPriorities")):
        result = run(*args)
        assert result.exit_code == 0, result.output
    catalog = json_of(run("catalog", "--json"))
    assert catalog["entries"][0]["features"][0] == "PaymentProcessor"


def test_explain(poisoned: str, run: Run) -> None:
    other = run("explain", "AllowedPriorities", "UserId=4")
    assert other.exit_code == 0, other.output
    assert "AllowedPriorities → two_priorities" in other.stdout
    result = run("explain", "PaymentProcessor", "Country=CA")
    _clean(result)
    assert result.exit_code == Exit.ERROR
    assert f"PaymentProcessor's stored configuration (version {poisoned}) cannot be read" in (
        result.stderr
    )
    assert "Apps that start now answer its default" in result.stderr


def test_watch(poisoned: str, run: Run) -> None:
    result = run("watch", "--after", "0-0", "--timeout", "0.3", "--json")
    assert result.exit_code == 0, result.output
    features = [json.loads(line)["feature"] for line in result.stdout.splitlines()]
    assert features == ["PaymentProcessor", "AllowedPriorities"]


def test_set_repairs_it(poisoned: str, run: Run, serving: Serving, sync_redis: redis.Redis) -> None:
    result = run("set", "PaymentProcessor", "aperture", "-w", "Country=CA", "-y")
    assert result.exit_code == 0, result.output
    assert f"(from {poisoned}, which cannot be read)" in result.stdout
    repaired = serving.app.admin.get_version("PaymentProcessor")
    assert repaired is not None and repaired != poisoned
    serving.wait(repaired)
    assert serving.handles.PaymentProcessor.create(user(1, "CA")) == "aperture"
    assert "unreadable" not in run("list").stdout
    # A new App loads it like any other.
    fresh = feats.App(storage=feats.RedisStorage(sync_redis, serving.app.storage.namespace))
    handles = declare(fresh)
    with fresh:
        assert handles.PaymentProcessor.find_implementation(user(2, "CA")) == "aperture"


def test_reset_repairs_it_too(poisoned: str, run: Run) -> None:
    result = run("reset", "PaymentProcessor", "-y", "--json")
    data = json_of(result)
    assert data["changed"] is True and data["previous_version"] == poisoned
    listing = {row["feature"]: row for row in json_of(run("list", "--json"))}
    assert "unreadable" not in listing["PaymentProcessor"]
    assert listing["PaymentProcessor"]["version"] == data["version"]


def test_import_repairs_it(poisoned: str, run: Run, serving: Serving, tmp_path: Path) -> None:
    result = run("import", str(tmp_path / "backup.json"), "-y", "--json")
    data = json_of(result)
    assert data["mode"] == "written"
    assert data["features"] == ["PaymentProcessor"]
    assert data["unchanged"] == ["AllowedPriorities"]
    state = serving.app.admin.get_state("PaymentProcessor")
    assert state is not None and state.rules[("CA",)] == feats.Static("premium")
