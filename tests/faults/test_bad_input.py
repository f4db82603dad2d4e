"""Bad input and contention: malformed entries written straight into Redis, a change log
trimmed past a slow reader, twenty writers racing on one version, and the exposure buffer
while Redis is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis

import feats
from feats._codec import MAX_RECORD_BYTES
from feats._layout import MAX_READ_BYTES, Keys
from tests.servers import FaultProxy, RedisServer
from tests.servers._common import as_str

from ._model import (
    CANADIAN,
    RECOVERY_BOUND,
    SyncModel,
    User,
    aio_app,
    aio_probing,
    assert_live,
    async_client,
    canada_gets,
    poll,
    probing,
    sync_app,
    sync_client,
)
from .conftest import Measure


def _record(state: dict[str, Any] | None, **overrides: Any) -> str:
    document: dict[str, Any] = {
        "schema": 1,
        "feature": "Checkout",
        "state": state,
        "author": "intruder",
        "reason": "hand edit",
        "time": time.time(),
    }
    document.update(overrides)
    return json.dumps(document)


def _static(
    implementation: str, segments: list[str] | None = None, key: list[str] | None = None
) -> dict[str, Any]:
    segments = ["Country"] if segments is None else segments
    return {
        "segments": segments,
        "rules": [
            {
                "key": key or ["CA"],
                "selector": {"type": "static", "implementation": implementation},
            },
            {"key": None, "selector": {"type": "static", "implementation": "classic"}},
        ],
    }


BAD_RECORDS: dict[str, str | bytes] = {
    "not JSON": "{this is not json",
    "not UTF-8": b"\xff\xfe{",
    "JSON of the wrong shape": json.dumps([1, 2, 3]),
    "rules of the wrong shape": _record({"segments": ["Country"], "rules": "all of them"}),
    "a selector of an unknown type": _record(
        {"rules": [{"key": None, "selector": {"type": "teleport"}}]}
    ),
    "an unknown schema version": _record(_static("oneclick"), schema=99),
    "an oversized entry": _record(_static("oneclick"), reason="x" * (MAX_RECORD_BYTES + 1)),
    "an implementation the code lacks": _record(_static("teleport")),
    "a segment the code lacks": _record(_static("oneclick", segments=["Planet"], key=["Mars"])),
    "an option the code lacks": _record(_static("oneclick", key=["FR"])),
    "a record of another feature": _record(_static("oneclick"), feature="Other"),
}


def _inject(raw: redis.Redis, keys: Keys, fields: dict[str, str | bytes]) -> str:
    """XADD an entry chained to the current head, as the write script would."""
    last = raw.xrevrange(keys.log, count=1)
    prev = as_str(last[0][0]) if last else "0-0"
    entry: dict[Any, Any] = {"prev": prev, **fields}
    return as_str(raw.xadd(keys.log, entry))


def test_malformed_entries_are_skipped_and_reported(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    # A decoding client too: bytes that are not UTF-8 must not wedge its tail.
    reader = sync_app(sync_client(server.url, decode_responses=True), namespace)
    raw = sync_client(server.url)
    keys = Keys(namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        skipped = reader.app.status.skipped
        for record in BAD_RECORDS.values():
            last = _inject(raw, keys, {"feature": "Checkout", "record": record})
        last = _inject(raw, keys, {"junk": "not a feats entry at all"})
        reader.app.wait_for_version(last, timeout=RECOVERY_BOUND)
        status = reader.app.status
        assert status.skipped - skipped == len(BAD_RECORDS) + 1, status.problems
        assert_live(reader)  # the tail kept running
        messages = " | ".join(problem.message for problem in status.problems)
        for expected in (
            "not JSON",
            "schema version 99",
            "byte limit",
            "'teleport'",
            "'Planet'",
            "'FR'",
            "'Other'",
            "fields missing",
        ):
            assert expected in messages, expected
        # The last good state answers, under its own version.
        evaluation = reader.Checkout.explain(CANADIAN)
        assert (evaluation.implementation, evaluation.version) == ("express", first)
        assert reader.app.status.reloads == 1
        # A state in the hash that does not decode: the reload keeps the last good one.
        raw.hset(keys.states, "Checkout", "garbage")
        gap = as_str(raw.xadd(keys.log, {"feature": "Checkout", "record": "{}", "prev": "1-1"}))
        reader.app.wait_for_version(gap, timeout=RECOVERY_BOUND)
        poll(lambda: reader.app.status.reloads == 2, timeout=RECOVERY_BOUND, what="the reload")
        assert reader.Checkout.explain(CANADIAN).version == first
        # An oversized one is not even sent: the load script leaves it in Redis.
        raw.hset(keys.states, "Checkout", "x" * (MAX_RECORD_BYTES * 4))
        gap = as_str(raw.xadd(keys.log, {"feature": "Checkout", "record": "{}", "prev": "1-2"}))
        reader.app.wait_for_version(gap, timeout=RECOVERY_BOUND)
        poll(lambda: reader.app.status.reloads == 3, timeout=RECOVERY_BOUND, what="the reload")
        assert "bytes, over the" in reader.app.status.problems[-1].message
        assert reader.Checkout.explain(CANADIAN).version == first
        probe.expected = None
        # `feats import` repairs it: an import writes over what does not decode.
        backup = {
            "format": "feats-backup",
            "format_version": 1,
            "features": [
                {
                    "feature": "Checkout",
                    "version": first,
                    "record": json.loads(_record(_static("oneclick"))),
                }
            ],
        }
        result = writer.app.admin.import_backup(backup, author="ops", reason="repair")
        reader.app.wait_for_version(result.versions["Checkout"], timeout=RECOVERY_BOUND)
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
        # And the tail still follows ordinary changes.
        version = writer.app.admin.set_state(
            writer.Checkout, canada_gets("express"), author="o", reason="r"
        )
        reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        assert reader.Checkout.find_implementation(CANADIAN) == "express"
    probe.assert_clean()
    measure("bad entries skipped", len(BAD_RECORDS) + 1)
    raw.close()


async def test_aio_malformed_entries_are_skipped(server: RedisServer, namespace: str) -> None:
    writer = aio_app(async_client(server.url), namespace)
    reader = aio_app(async_client(server.url, decode_responses=True), namespace)
    raw = sync_client(server.url)
    keys = Keys(namespace)
    first = await writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    async with reader.app, aio_probing(reader) as probe:
        await reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        for record in BAD_RECORDS.values():
            last = _inject(raw, keys, {"feature": "Checkout", "record": record})
        await reader.app.wait_for_version(last, timeout=RECOVERY_BOUND)
        assert reader.app.status.skipped == len(BAD_RECORDS)
        assert reader.Checkout.explain(CANADIAN).version == first
        assert_live(reader)
    probe.assert_clean()
    raw.close()


def _oversized_then_good(raw: redis.Redis, keys: Keys, size: int) -> str:
    """In one MULTI: an entry of ``size`` bytes chained to the head, then a good change of
    Checkout chained to it; the good one's id."""
    last = raw.xrevrange(keys.log, count=1)
    prev = as_str(last[0][0]) if last else "0-0"
    base = max(int(time.time() * 1000), int(prev.partition("-")[0]) + 1)
    huge, good = f"{base}-0", f"{base}-1"
    pipe = raw.pipeline(transaction=True)
    pipe.xadd(keys.log, {"prev": prev, "feature": "Checkout", "record": "x" * size}, id=huge)
    record = _record(_static("oneclick"))
    pipe.xadd(keys.log, {"prev": huge, "feature": "Checkout", "record": record}, id=good)
    pipe.execute()
    return good


OVER_THE_READ_LIMIT = MAX_READ_BYTES + 1024 * 1024


@contextlib.contextmanager
def _following(
    server: RedisServer, namespace: str
) -> Iterator[tuple[SyncModel, SyncModel, redis.Redis, str]]:
    """A writer, a reader App started on the writer's first change, a raw client, and that
    change's version (the clients are closed with the test's, by the _close_clients
    fixture)."""
    writer = sync_app(sync_client(server.url), namespace)
    reader = sync_app(sync_client(server.url), namespace)
    raw = sync_client(server.url)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    with reader.app:
        reader.app.wait_for_version(first, timeout=5)
        yield writer, reader, raw, first


def test_an_entry_over_the_read_limit_is_left_in_redis(server: RedisServer, namespace: str) -> None:
    """The tail cuts a read off past MAX_READ_BYTES and reads again sized in Redis: the huge
    entry is reported as left unread, the good change after it (in the same read) applied,
    and the tail follows on."""
    with _following(server, namespace) as (writer, reader, raw, first):
        skipped = reader.app.status.skipped
        good = _oversized_then_good(raw, Keys(namespace), OVER_THE_READ_LIMIT)
        reader.app.wait_for_version(good, timeout=RECOVERY_BOUND)
        status = reader.app.status
        assert status.skipped == skipped + 1, status.problems
        assert "left unread" in status.problems[-1].message, status.problems
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
        assert status.reloads == 1  # no gap: the chain went on through the unread entry
        version = writer.app.admin.set_state(
            writer.Checkout, canada_gets("classic"), author="o", reason="r"
        )
        assert version != first
        reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        assert reader.Checkout.find_implementation(CANADIAN) == "classic"
        assert_live(reader)


async def test_aio_an_entry_over_the_read_limit_is_left_in_redis(
    server: RedisServer, namespace: str
) -> None:
    writer = aio_app(async_client(server.url), namespace)
    reader = aio_app(async_client(server.url), namespace)
    raw = sync_client(server.url)
    keys = Keys(namespace)
    first = await writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    async with reader.app:
        await reader.app.wait_for_version(first, timeout=5)
        good = _oversized_then_good(raw, keys, OVER_THE_READ_LIMIT)
        await reader.app.wait_for_version(good, timeout=RECOVERY_BOUND)
        assert "left unread" in reader.app.status.problems[-1].message
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
        assert_live(reader)
    raw.close()


def test_a_gap_behind_an_unread_entry_still_shows(server: RedisServer, namespace: str) -> None:
    """An entry left unread that does not follow the App's head is a gap, as any other:
    the App reloads instead of passing over a change it never saw."""
    with _following(server, namespace) as (_, reader, raw, first):
        entry: dict[Any, Any] = {"prev": "1-1", "feature": "Checkout"}
        entry["record"] = "x" * OVER_THE_READ_LIMIT
        gap = as_str(raw.xadd(Keys(namespace).log, entry))
        reader.app.wait_for_version(gap, timeout=RECOVERY_BOUND)
        poll(lambda: reader.app.status.reloads == 2, timeout=RECOVERY_BOUND, what="the reload")
        assert reader.Checkout.explain(CANADIAN).version == first


def test_a_log_trimmed_past_a_slow_reader_means_a_full_reload(
    server: RedisServer, proxy: FaultProxy, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    reader = sync_app(sync_client(proxy.url), namespace)
    raw = sync_client(server.url, decode_responses=True)
    keys = Keys(namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        assert reader.app.status.reloads == 1
        # The reader falls behind (its traffic stalls) while changes go on and the log is
        # trimmed to the last entry: the entries it needed are gone.
        proxy.blackhole(drop=False)
        versions = [
            writer.app.admin.set_state(
                writer.Checkout, canada_gets(name), author="o", reason=str(i)
            )
            for i, name in enumerate(["oneclick", "express", "oneclick", "express", "oneclick"])
        ]
        assert raw.xtrim(keys.log, maxlen=1, approximate=False) == len(versions)
        probe.expected = "express"
        poll(lambda: reader.app.status.stale, timeout=10, what="stale")
        probe.expected = None
        proxy.reset_all()
        proxy.restore()
        restored = time.monotonic()
        reader.app.wait_for_version(versions[-1], timeout=RECOVERY_BOUND)
        measure("caught up after the trim (s)", time.monotonic() - restored)
        assert reader.app.status.reloads == 2  # the gap was seen, and a full load healed it
        assert reader.Checkout.explain(CANADIAN).version == versions[-1]
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
        # A log trimmed to nothing: the next entry's prev is 0-0, another gap, another load.
        raw.xtrim(keys.log, maxlen=0, approximate=False)
        after = writer.app.admin.set_state(
            writer.Checkout, canada_gets("express"), author="o", reason="r"
        )
        reader.app.wait_for_version(after, timeout=RECOVERY_BOUND)
        poll(lambda: reader.app.status.reloads == 3, timeout=RECOVERY_BOUND, what="reload")
        assert reader.Checkout.find_implementation(CANADIAN) == "express"
        assert_live(reader)
    probe.assert_clean()
    raw.close()


WRITERS = 20


def test_twenty_writers_with_one_expected_version(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    models = [sync_app(sync_client(server.url), namespace) for _ in range(WRITERS)]
    reader = sync_app(sync_client(server.url), namespace)
    base = models[0].app.admin.set_state(
        models[0].Checkout, canada_gets("express"), author="o", reason="base"
    )
    barrier = threading.Barrier(WRITERS)
    won: list[tuple[int, str]] = []
    conflicts: list[feats.ConflictError] = []
    other: list[BaseException] = []

    def write(index: int) -> None:
        model = models[index]
        barrier.wait()
        try:
            version = model.app.admin.set_state(
                model.Checkout,
                canada_gets("oneclick" if index % 2 else "classic"),
                author=f"writer-{index}",
                reason=f"attempt {index}",
                expected_version=base,
            )
            won.append((index, version))
        except feats.ConflictError as error:
            conflicts.append(error)
        except BaseException as error:
            other.append(error)

    with reader.app:
        threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not other, other
        assert len(won) == 1 and len(conflicts) == WRITERS - 1
        ((index, version),) = won
        assert all(error.expected == base and error.current == version for error in conflicts)
        history = reader.app.admin.history(reader.Checkout)
        assert [(c.version, c.author) for c in history] == [
            (base, "o"),
            (version, f"writer-{index}"),
        ]
        reader.app.wait_for_version(version, timeout=5)
        assert reader.Checkout.explain(CANADIAN).version == version
    measure("writers / won / conflicts", f"{WRITERS} / {len(won)} / {len(conflicts)}")


async def test_aio_twenty_writers_with_one_expected_version(
    server: RedisServer, namespace: str
) -> None:
    models = [aio_app(async_client(server.url), namespace) for _ in range(WRITERS)]
    base = await models[0].app.admin.set_state(
        models[0].Checkout, canada_gets("express"), author="o", reason="base"
    )
    results = await asyncio.gather(
        *(
            model.app.admin.set_state(
                model.Checkout,
                canada_gets("oneclick"),
                author=f"writer-{i}",
                reason="race",
                expected_version=base,
            )
            for i, model in enumerate(models)
        ),
        return_exceptions=True,
    )
    versions = [r for r in results if isinstance(r, str)]
    assert len(versions) == 1
    assert sum(isinstance(r, feats.ConflictError) for r in results) == WRITERS - 1
    history = await models[0].app.admin.history(models[0].Checkout)
    assert [c.version for c in history] == [base, versions[0]]


def test_exposure_buffer_is_bounded_during_an_outage(
    server: RedisServer, proxy: FaultProxy, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    capacity = 200
    reader = sync_app(sync_client(proxy.url), namespace, exposure_capacity=capacity)
    experiment = feats.FeatureState(
        segments=[],
        rules={None: feats.Experiment("UserId", {"express": 50, "oneclick": 50})},
    )
    version = writer.app.admin.set_state(writer.Checkout, experiment, author="o", reason="test")
    with reader.app:
        reader.app.wait_for_version(version, timeout=5)
        proxy.refuse()
        proxy.reset_all()
        poll(lambda: reader.app.status.stale, timeout=10, what="stale")
        total = 5_000
        for i in range(total):
            assert reader.Checkout.create(User(i, "US")) in ("express", "oneclick")

        def settled() -> bool:
            # A batch the writer took is counted nowhere until its write has failed.
            status = reader.app.status
            counted = status.exposures_dropped + status.exposures_buffered
            return counted + status.exposures_written == total

        poll(settled, timeout=10, what="the writer's failed write settled")
        status = reader.app.status
        assert status.exposures_buffered <= capacity == status.exposure_capacity
        assert status.exposures_dropped >= total - capacity - status.exposures_written
        assert (
            status.exposures_dropped + status.exposures_buffered + status.exposures_written == total
        )
        measure(
            "exposures recorded / buffered / dropped during the outage",
            f"{total} / {status.exposures_buffered} / {status.exposures_dropped}",
        )
        proxy.restore()
        dropped = reader.app.status.exposures_dropped

        def flushed() -> bool:
            status = reader.app.status
            return status.exposures_written + status.exposures_dropped == total

        poll(flushed, timeout=RECOVERY_BOUND, what="the buffer flushed")
        written = reader.app.status.exposures_written
        assert reader.app.status.exposures_dropped == dropped  # nothing more was dropped
    report = writer.app.admin.exposures(writer.Checkout)
    assert report.total == written
