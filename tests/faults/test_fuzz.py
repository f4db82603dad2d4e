"""Fuzzing a namespace under running Apps: arbitrary bytes and hostile JSON into every key and
stream field feats reads, while a sync and an asyncio App follow the namespace and the CLI
reads it.

Properties, for every example: no evaluation raises; every CLI command ends with one of the
documented exit codes and no traceback; the untouched feature keeps its last good state; and a
valid write made afterwards is applied by both Apps within a second.

About 30 s by default (FEATS_FUZZ_EXAMPLES examples, 80); set it higher for a longer run.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import feats
import feats.aio
from feats._cli import Exit, cli
from feats._layout import Keys
from tests.servers import RedisServer
from tests.servers._common import as_str

from ._model import (
    CANADIAN,
    IMPLEMENTATIONS,
    User,
    aio_app,
    async_client,
    canada_gets,
    sync_app,
    sync_client,
)

EXAMPLES = int(os.environ.get("FEATS_FUZZ_EXAMPLES", "80"))
EXIT_CODES = {int(code) for code in Exit}
APPLY_WITHIN = 1.0

# -- hostile values -----------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _record(state: Any, **fields: Any) -> str:
    document = {
        "schema": 1,
        "feature": "Target",
        "state": state,
        "author": "x",
        "reason": "y",
        "time": 1.0,
    }
    document.update(fields)
    return json.dumps(document, allow_nan=True)


HANDMADE = [
    "[" * 50_000 + "]" * 50_000,
    '{"schema": 1, "schema": 1, "feature": "Target", "state": null}',
    _record(None, time=float("nan")),
    _record(None, author="\ud800"),
    _record(
        {
            "segments": ["Country"],
            "rules": [{"key": [], "selector": {"type": "static", "implementation": "express"}}],
        }
    ),
    _record(
        {
            "segments": [],
            "rules": [
                {
                    "key": None,
                    "selector": {
                        "type": "rollout",
                        "segment": "UserId",
                        "weights": {"express": 1e308, "oneclick": 1e308},
                    },
                }
            ],
        }
    ),
    _record(
        {
            "rules": [
                {
                    "key": None,
                    "selector": {"type": "rollout", "segment": "UserId", "weights": {"express": 1}},
                }
            ]
        }
    ).replace('"express": 1}', '"express": ' + "9" * 400 + "}"),
    "x" * 300_000,
    "",
]

hostile_text = st.one_of(
    st.sampled_from(HANDMADE),
    st.text(max_size=200),
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    st.builds(_record, json_values),
    st.builds(lambda state: _record({"segments": ["Country"], "rules": state}), json_values),
)
hostile = st.one_of(hostile_text, st.binary(max_size=200))

KINDS = ["state", "version", "log", "history", "epoch", "catalog", "seen", "exposures"]
injection = st.tuples(st.sampled_from(KINDS), hostile, hostile)


def inject(raw: redis.Redis, keys: Keys, kind: str, value: str | bytes, other: str | bytes) -> None:
    """Write one hostile value where feats reads; nothing of the feature Checkout."""
    if kind == "state":
        raw.hset(keys.states, "Target", value)
        raw.hset(keys.versions, "Target", f"{int(time.time() * 1000)}-0")
    elif kind == "version":
        raw.hset(keys.versions, "Target", value)
    elif kind == "log":
        last = raw.xrevrange(keys.log, count=1)
        prev = as_str(last[0][0]) if last else "0-0"
        # Now and then a hostile predecessor too: a gap, and a full reload.
        chained = isinstance(other, str) or len(other) % 2 == 0
        raw.xadd(
            keys.log, {"feature": "Target", "record": value, "prev": prev if chained else other}
        )
    elif kind == "history":
        raw.xadd(keys.history("Target"), {"record": value})
    elif kind == "epoch":
        raw.set(keys.epoch, value)
    elif kind == "catalog":
        raw.hset(keys.catalog, "evil", value)
    elif kind == "seen":
        raw.hset(keys.catalog, "seen:evil", value)
    elif kind == "exposures":
        raw.xadd(keys.exposures, {"t": other, "n": "1", "batch": value})


# -- the Apps under test ---------------------------------------------------------------


class LoopThread:
    """An event loop on a thread of its own, for the asyncio App under a sync test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


CLI_COMMANDS = [
    ["list"],
    ["show", "Target"],
    ["history", "Target"],
    ["export", "--no-history"],
    ["drift"],
    ["exposures", "Target"],
    ["catalog"],
    ["explain", "Target", "Country=CA"],
    ["watch", "--after", "0-0", "--timeout", "0.05"],
]


@pytest.fixture
def fuzzed(server: RedisServer, namespace: str) -> Iterator[dict[str, Any]]:
    sync = sync_app(sync_client(server.url), namespace, block_ms=100)
    loop = LoopThread()
    client = async_client(server.url)
    aio = aio_app(client, namespace, block_ms=100)

    def declare_target(app: Any) -> Any:
        class Target:
            @feats.App.default
            def classic(self, user: User) -> str:
                return "classic"

            def express(self, user: User) -> str:
                return "express"

        return app.feature(Target)

    sync_target = declare_target(sync.app)
    aio_target = declare_target(aio.app)
    sync.app.admin.set_state(sync.Checkout, canada_gets("express"), author="o", reason="base")
    sync.app.start()
    loop.run(aio.app.start())
    sync.app.admin.publish_catalog()
    yield {
        "server": server,
        "namespace": namespace,
        "sync": sync,
        "aio": aio,
        "loop": loop,
        "targets": (sync_target, aio_target),
        "raw": sync_client(server.url),
    }
    sync.app.close()
    loop.run(aio.app.aclose())
    loop.run(client.aclose())  # on the loop its connections belong to
    loop.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(injection, min_size=1, max_size=4))
def test_nothing_read_from_redis_breaks_evaluation_the_cli_or_propagation(
    fuzzed: dict[str, Any], injections: list[tuple[str, str | bytes, str | bytes]]
) -> None:
    raw: redis.Redis = fuzzed["raw"]
    keys = Keys(fuzzed["namespace"])
    sync, aio, loop = fuzzed["sync"], fuzzed["aio"], fuzzed["loop"]
    sync_target, aio_target = fuzzed["targets"]
    for kind, value, other in injections:
        inject(raw, keys, kind, value, other)

    # Evaluation never raises, and the untouched feature keeps its last good state.
    for _ in range(3):
        assert sync.Checkout.find_implementation(CANADIAN) == "express"
        assert sync.Checkout.create(CANADIAN) in IMPLEMENTATIONS
        sync.Checkout.explain(CANADIAN)
        assert sync_target.find_implementation(CANADIAN) in ("classic", "express")
        assert loop.run(aio.Checkout.create(CANADIAN)) == "express"
        assert loop.run(aio_target.create(CANADIAN)) in ("classic", "express")
        aio_target.explain(CANADIAN)

    # Every CLI command ends with a documented exit code, never a traceback.
    runner = CliRunner()
    base = ["--redis", fuzzed["server"].url, "-n", fuzzed["namespace"]]
    for command in CLI_COMMANDS:
        result = runner.invoke(cli, [*base, *command], catch_exceptions=True)
        assert result.exit_code in EXIT_CODES, (command, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            command,
            repr(result.exception),
            result.output,
        )
        assert "Traceback" not in result.output, (command, result.output)

    # A valid write afterwards reaches both Apps within a second.
    wanted = feats.FeatureState(rules={None: feats.Static("express")})
    version = sync.app.admin.set_state(sync_target, wanted, author="o", reason="repair")
    sync.app.wait_for_version(version, timeout=APPLY_WITHIN)
    loop.run(aio.app.wait_for_version(version, timeout=APPLY_WITHIN))
    assert sync_target.find_implementation(CANADIAN) == "express"
    assert aio_target.find_implementation(CANADIAN) == "express"
    sync.app.admin.set_state(sync_target, None, author="o", reason="reset")
    assert sync.Checkout.find_implementation(CANADIAN) == "express"
