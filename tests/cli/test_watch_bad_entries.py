"""``feats watch`` skips and reports every kind of bad change-log entry, without a traceback,
and goes on to show the next good change."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from feats._cli import Exit
from feats._layout import Keys
from tests.servers._common import as_str

from .conftest import Run, Serving, written


def _record(**overrides: Any) -> dict[str, Any]:
    return {
        "schema": 1,
        "feature": "PaymentProcessor",
        "state": {
            "segments": ["Country"],
            "rules": [{"key": ["CA"], "selector": {"type": "static", "implementation": "premium"}}],
        },
        "author": "intruder",
        "reason": "hand edit",
        "time": time.time(),
        **overrides,
    }


def _huge_weight() -> str:
    record = _record()
    record["state"]["rules"][0]["selector"] = {
        "type": "rollout",
        "segment": "UserId",
        "weights": {"aperture": 10**400, "acme": 1},
    }
    return json.dumps(record)


BAD_ENTRIES: dict[str, dict[str, str | bytes]] = {
    "not JSON": {"feature": "PaymentProcessor", "record": "{this is not json"},
    "not UTF-8": {"feature": "PaymentProcessor", "record": b"\xff\xfe{"},
    "deep nesting": {"feature": "PaymentProcessor", "record": "[" * 50_000 + "]" * 50_000},
    "a 400-digit weight": {"feature": "PaymentProcessor", "record": _huge_weight()},
    "a NaN time": {
        "feature": "PaymentProcessor",
        "record": json.dumps(_record(time=float("nan"))),
    },
    "a lone surrogate": {
        "feature": "PaymentProcessor",
        "record": json.dumps(_record(author="\ud800")),
    },
    "no record at all": {"junk": "not a feats entry"},
    "a feature name that is not UTF-8": {"feature": b"\xff\xfe", "record": "{}"},
}


def _append(client: redis.Redis, keys: Keys, fields: dict[str, str | bytes]) -> str:
    last = client.xrevrange(keys.log, count=1)
    prev = as_str(last[0][0]) if last else "0-0"
    entry: dict[Any, Any] = {"prev": prev, **fields}
    added = client.xadd(keys.log, entry)
    return added.decode() if isinstance(added, bytes) else str(added)


@pytest.mark.parametrize("json_output", [False, True])
def test_watch_skips_every_bad_kind_and_shows_the_next_change(
    serving: Serving, run: Run, sync_redis: redis.Redis, namespace: str, json_output: bool
) -> None:
    keys = Keys(namespace)
    start = written(run("set", "AllowedPriorities", "two_priorities", "-y", "--json"))
    ids = {kind: _append(sync_redis, keys, fields) for kind, fields in BAD_ENTRIES.items()}
    good = written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))

    args = ["watch", "--after", start, "--count", "1", "--timeout", "10"]
    result = run(*args, *(["--json"] if json_output else []))
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == Exit.OK, result.output
    for kind, entry_id in ids.items():
        assert f"skipped change-log entry {entry_id}" in result.stderr, kind
    if json_output:
        [line] = result.stdout.splitlines()
        shown = json.loads(line)
        assert (shown["feature"], shown["version"]) == ("PaymentProcessor", good)
        assert [d["text"] for d in shown["diff"]] == [
            "~ segments: (none) → Country",
            "+ Country=CA: premium",
        ]
    else:
        assert f"PaymentProcessor {good}" in result.stdout
        assert "+ Country=CA: premium" in result.stdout
        assert "intruder" not in result.stdout


def test_watch_skips_a_time_out_of_range(
    serving: Serving, run: Run, sync_redis: redis.Redis, namespace: str
) -> None:
    keys = Keys(namespace)
    start = written(run("set", "AllowedPriorities", "two_priorities", "-y", "--json"))
    bad = _append(
        sync_redis, keys, {"feature": "PaymentProcessor", "record": json.dumps(_record(time=1e308))}
    )
    result = run("watch", "--after", start, "--timeout", "0.5")
    assert result.exit_code == Exit.OK, result.output
    assert f"skipped change-log entry {bad}" in result.stderr
