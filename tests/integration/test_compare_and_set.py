"""The Lua compare-and-set under concurrency: one writer wins, the others get ConflictError."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import redis
import redis.asyncio

import feats
import feats.aio
from feats._changes import decode_current
from feats._codec import Record, encode_record

from ._shop import canada_premium, declare

pytestmark = pytest.mark.redis

WRITERS = 20


async def test_twenty_aio_writers_with_the_same_expected_version(
    redis_url: str, namespace: str
) -> None:
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(WRITERS)]
    apps = [feats.aio.App(storage=feats.aio.RedisStorage(c, namespace)) for c in clients]
    shops = [declare(app) for app in apps]
    try:
        base = await apps[0].admin.set_state(
            shops[0].PaymentProcessor,
            feats.FeatureState(rules={None: feats.Static("acme")}),
            author="setup",
            reason="base",
        )

        async def write(index: int) -> str:
            state = feats.FeatureState(
                segments=[shops[index].Country],
                rules={(f"C{index}",): feats.Static("premium"), None: feats.Static("acme")},
            )
            return await apps[index].admin.set_state(
                shops[index].PaymentProcessor,
                state,
                author=f"writer-{index}",
                reason="race",
                expected_version=base,
            )

        results = await asyncio.gather(*(write(i) for i in range(WRITERS)), return_exceptions=True)
        won = [r for r in results if isinstance(r, str)]
        lost = [r for r in results if isinstance(r, feats.ConflictError)]
        assert len(won) == 1, results
        assert len(lost) == WRITERS - 1, results
        history = await apps[0].admin.history(shops[0].PaymentProcessor)
        assert [change.version for change in history] == [base, won[0]]
        winner = history[-1].author
        assert (await apps[0].admin.get_state("PaymentProcessor")) == history[-1].state
        assert all(error.current in (None, won[0]) for error in lost)
        assert winner.startswith("writer-")
    finally:
        for client in clients:
            await client.aclose()


async def test_the_lua_script_itself_admits_one_of_twenty(redis_url: str, namespace: str) -> None:
    """Straight at the storage, past the admin's own read: only the script decides."""
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(WRITERS)]
    storages = [feats.aio.RedisStorage(c, namespace) for c in clients]
    ok, base = await storages[0].write("Feature", _record(-1), "")
    assert ok
    outcomes = await asyncio.gather(
        *(storage.write("Feature", _record(i), base) for i, storage in enumerate(storages))
    )
    winners = [version for ok, version in outcomes if ok]
    assert len(winners) == 1, outcomes
    assert all(version == winners[0] for ok, version in outcomes if not ok)
    history = await storages[0].history("Feature")
    assert [version for version, _ in history] == [base, winners[0]]
    # A write expecting "not configured yet" fails too, now that it is.
    assert (await storages[0].write("Feature", _record(99), ""))[0] is False
    for client in clients:
        await client.aclose()


def test_twenty_sync_writer_threads(redis_url: str, namespace: str) -> None:
    clients = [redis.Redis.from_url(redis_url, decode_responses=True) for _ in range(WRITERS)]
    apps = [feats.App(storage=feats.RedisStorage(c, namespace)) for c in clients]
    shops = [declare(app) for app in apps]
    barrier = threading.Barrier(WRITERS)
    results: list[str | BaseException] = [""] * WRITERS

    def write(index: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[index] = apps[index].admin.set_state(
                shops[index].PaymentProcessor,
                canada_premium(shops[index]),
                author=f"writer-{index}",
                reason="race",
                expected_version="",
            )
        except feats.ConflictError as error:
            results[index] = error

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    won = [r for r in results if isinstance(r, str)]
    assert len(won) == 1 and won[0], results
    assert sum(isinstance(r, feats.ConflictError) for r in results) == WRITERS - 1, results
    assert [c.version for c in apps[0].admin.history("PaymentProcessor")] == won
    for client in clients:
        client.close()


def _record(index: int) -> str:
    return encode_record(Record("Feature", None, f"writer-{index}", "race", 0.0))


def _static(shop: Any, implementation: str) -> feats.FeatureState:
    return feats.FeatureState(rules={None: feats.Static(implementation)})


def test_a_started_app_writes_in_one_round_trip(
    sync_redis: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = feats.App(storage=feats.RedisStorage(sync_redis, namespace))
    shop = declare(app)
    app.start()
    try:
        first = app.admin.set_state(
            shop.PaymentProcessor, _static(shop, "premium"), author="t", reason=""
        )
        app.wait_for_version(first, timeout=10)
        reads: list[str] = []
        original = app.storage.current

        def counted(name: str) -> tuple[str, str | bytes] | None:
            reads.append(name)
            return original(name)

        monkeypatch.setattr(app.storage, "current", counted)
        second = app.admin.set_state(
            shop.PaymentProcessor, _static(shop, "acme"), author="t", reason=""
        )
        assert reads == []  # planned on what the App holds: the write script alone
        assert [c.version for c in app.admin.history(shop.PaymentProcessor)] == [first, second]
    finally:
        app.close()


def test_a_write_planned_on_a_stale_snapshot_reads_and_loses_nothing(
    sync_redis: redis.Redis, namespace: str
) -> None:
    app = feats.App(storage=feats.RedisStorage(sync_redis, namespace))
    shop = declare(app)
    first = app.admin.set_state(
        shop.PaymentProcessor, _static(shop, "premium"), author="t", reason=""
    )
    stale = decode_current(app.storage.current(shop.PaymentProcessor.name))
    # Meanwhile another process wrote: the version an App would still hold is behind.
    other = feats.App(storage=feats.RedisStorage(sync_redis, namespace))
    declare(other)
    second = other.admin.set_state(
        shop.PaymentProcessor, _static(shop, "acme"), author="other", reason=""
    )
    behind = feats.Admin(app.storage, app.registry, known=lambda name: stale)

    # The store's current version is what expected_version is checked against, not the
    # stale one: no false conflict.
    third = behind.set_state(
        shop.PaymentProcessor,
        _static(shop, "aperture"),
        author="t",
        reason="",
        expected_version=second,
    )
    history = app.admin.history(shop.PaymentProcessor)
    assert [c.version for c in history] == [first, second, third]
    assert history[-1].state == _static(shop, "aperture")

    # The stale snapshot says premium already answers; the store says aperture: it writes.
    fourth = behind.set_state(
        shop.PaymentProcessor, _static(shop, "premium"), author="t", reason=""
    )
    assert fourth not in (first, second, third)
    assert app.admin.get_state(shop.PaymentProcessor) == _static(shop, "premium")

    # A change on the stale snapshot: its compare-and-set fails, the retry reads, writes.
    fifth = behind.set_state(shop.PaymentProcessor, _static(shop, "acme"), author="t", reason="")
    history = app.admin.history(shop.PaymentProcessor)
    assert [c.version for c in history] == [first, second, third, fourth, fifth]
    assert history[-1].state == _static(shop, "acme")

    # A conflict is still one: the store is not at the version expected.
    with pytest.raises(feats.ConflictError):
        behind.set_state(shop.PaymentProcessor, None, author="t", reason="", expected_version=first)
