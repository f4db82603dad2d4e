"""``feats history`` and ``feats export`` on records the strict codec refuses (a NaN or
infinite time, a lone surrogate, bytes that are not UTF-8): the good entries are shown or
exported, the bad ones are reported as skipped, and nothing raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

import feats._cli._context
from feats._cli import Exit
from feats._cli._commands import INTERNAL_ERROR
from feats._layout import Keys

from .conftest import Run, Serving, json_of, written


def _poison(client: redis.Redis, namespace: str, record: str | bytes) -> str:
    """Store ``record`` as PaymentProcessor's newest version, as the write script would."""
    keys = Keys(namespace)
    added = client.xadd(keys.history("PaymentProcessor"), {"record": record})
    version = added.decode() if isinstance(added, bytes) else str(added)
    client.hset(keys.states, "PaymentProcessor", record)
    client.hset(keys.versions, "PaymentProcessor", version)
    return version


def _good(client: redis.Redis, namespace: str) -> dict[str, Any]:
    raw = client.hget(Keys(namespace).states, "PaymentProcessor")
    assert isinstance(raw, bytes)
    document: dict[str, Any] = json.loads(raw)
    return document


BAD = {
    "a NaN time": lambda good: json.dumps({**good, "time": float("nan")}),
    "an infinite time": lambda good: json.dumps({**good, "time": float("inf")}),
    "a lone surrogate": lambda good: json.dumps({**good, "author": "\ud800"}),
    "a 400-digit time": lambda good: json.dumps(good).replace(
        f'"time": {json.dumps(good["time"])}', '"time": ' + "9" * 400
    ),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_history_and_export_skip_what_cannot_be_read(
    kind: str, serving: Serving, run: Run, sync_redis: redis.Redis, namespace: str
) -> None:
    first = written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    bad = _poison(sync_redis, namespace, BAD[kind](_good(sync_redis, namespace)))

    history = run("history", "PaymentProcessor")
    assert history.exit_code == Exit.OK, history.output
    assert first in history.stdout and bad not in history.stdout
    assert f"skipped PaymentProcessor at {bad}:" in history.stderr
    entries = json_of(run("history", "PaymentProcessor", "--json"))
    assert [entry["version"] for entry in entries] == [first]

    exported = run("export")
    assert exported.exit_code == Exit.OK, exported.output
    document = json.loads(exported.stdout)
    assert document["features"] == []
    [skipped] = document["skipped"]
    assert (skipped["feature"], skipped["version"]) == ("PaymentProcessor", bad)
    for args in (
        ("list",),
        ("show", "PaymentProcessor"),
        ("watch", "--after", "0-0", "--timeout", "0.2"),
    ):
        result = run(*args)
        assert result.exit_code == Exit.OK, (args, result.output)
        assert "Traceback" not in result.output


def test_history_with_bytes_that_are_not_utf8(
    serving: Serving, run: Run, sync_redis: redis.Redis, namespace: str
) -> None:
    written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    good = json.dumps({**_good(sync_redis, namespace), "reason": "x\udfff"}, ensure_ascii=False)
    bad = _poison(sync_redis, namespace, good.encode("utf-8", "surrogatepass"))
    for args in (("history", "PaymentProcessor"), ("export",), ("list",)):
        result = run(*args)
        assert result.exit_code == Exit.OK, (args, result.output)
        assert "Traceback" not in result.output
    assert json.loads(run("export").stdout)["skipped"][0]["version"] == bad


@pytest.mark.parametrize("when", [1e308, -1e18])
def test_a_time_out_of_range_is_skipped_too(
    when: float, serving: Serving, run: Run, sync_redis: redis.Redis, namespace: str
) -> None:
    first = written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    _poison(sync_redis, namespace, json.dumps({**_good(sync_redis, namespace), "time": when}))
    history = run("history", "PaymentProcessor")
    assert history.exit_code == Exit.OK, history.output
    assert first in history.stdout


def test_a_bug_is_one_line_and_its_own_exit_code(
    serving: Serving, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the CLI does with a bug of its own: one line saying so, no traceback, an exit
    code outside the documented ones."""
    written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))

    def broken(loaded: Any) -> None:
        raise OverflowError("a deliberate bug")

    monkeypatch.setattr(feats._cli._context, "configured_changes", broken)
    result = run("list")
    assert result.exit_code == INTERNAL_ERROR, result.output
    assert "internal error: OverflowError" in result.stderr
    assert "this is a bug in feats" in result.stderr
    assert "Traceback" not in result.output
    assert INTERNAL_ERROR not in {int(code) for code in Exit}
