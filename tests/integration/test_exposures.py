"""Experiment exposures reach the exposure stream, one per use, written in batches."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import pytest
import redis
import redis.asyncio

import feats
import feats.aio
from feats._stored import RawEntry

from ._shop import Exposure, declare, decode_exposures, rollout_and_experiment, user

pytestmark = pytest.mark.redis

USES = 3_000


async def read_all_aio(storage: feats.aio.RedisStorage) -> list[RawEntry]:
    entries: list[RawEntry] = []
    while page := await storage.read_exposures(entries[-1].id if entries else "0-0", 100):
        entries.extend(page)
    return entries


def read_all_sync(storage: feats.RedisStorage) -> list[RawEntry]:
    entries: list[RawEntry] = []
    while page := storage.read_exposures(entries[-1].id if entries else "0-0", 100):
        entries.extend(page)
    return entries


def check(entries: list[RawEntry], version: str, expected: Counter[str]) -> list[Exposure]:
    exposures = decode_exposures(entries)
    assert len(exposures) == USES
    assert 1 <= len(entries) < USES // 10, "exposures are written in batches"
    assert {feature for feature, _, _, _ in exposures} == {"AllowedPriorities"}
    assert {v for _, _, _, v in exposures} == {version}
    assert Counter(implementation for _, implementation, _, _ in exposures) == expected
    return exposures


async def test_aio_experiment_uses_become_exposures(redis_url: str, namespace: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    storage = feats.aio.RedisStorage(client, namespace)
    app = feats.aio.App(storage=storage, flush_interval=0.01)
    shop = declare(app)
    people = [user(i) for i in range(USES // 3)]
    async with app:
        version = await app.admin.set_state(
            shop.AllowedPriorities,
            rollout_and_experiment(shop)["AllowedPriorities"],
            author="t",
            reason="experiment",
        )
        # Preselection records nothing.
        preselected = {p.id: shop.AllowedPriorities.find_implementation(p) for p in people}
        shop.AllowedPriorities.explain(people[0])
        expected: Counter[str] = Counter()
        for round_ in range(3):
            for person in people:
                if round_ == 2:
                    await shop.AllowedPriorities.used_implementation(preselected[person.id], person)
                else:
                    await shop.AllowedPriorities.create(person)
                expected[preselected[person.id]] += 1
            await asyncio.sleep(0)  # let the writer take a batch between rounds
        deadline = time.monotonic() + 10
        while app.status.exposures_written < USES:
            assert time.monotonic() < deadline, app.status
            await asyncio.sleep(0.01)
        exposures = check(await read_all_aio(storage), version, expected)
        assert app.status.exposures_dropped == 0
    assert Counter(unit for _, _, unit, _ in exposures) == {str(p.id): 3 for p in people}
    assert set(expected) == {"no_priority", "two_priorities", "three_priorities"}
    await client.aclose()


def test_sync_experiment_uses_become_exposures(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    storage = feats.RedisStorage(client, namespace)
    app = feats.App(storage=storage, flush_interval=0.01)
    shop = declare(app)
    people = [user(i) for i in range(USES)]
    with app:
        version = app.admin.set_state(
            shop.AllowedPriorities,
            rollout_and_experiment(shop)["AllowedPriorities"],
            author="t",
            reason="experiment",
        )
        expected: Counter[str] = Counter()
        for person in people:
            expected[shop.AllowedPriorities.find_implementation(person)] += 1
            shop.AllowedPriorities.create(person)
        deadline = time.monotonic() + 10
        while app.status.exposures_written < USES:
            assert time.monotonic() < deadline, app.status
            threading.Event().wait(0.01)
        check(read_all_sync(storage), version, expected)
    client.close()


async def test_aio_close_flushes_what_is_buffered(redis_url: str, namespace: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    storage = feats.aio.RedisStorage(client, namespace)
    # A flush interval far beyond the test: only aclose() can write these.
    app = feats.aio.App(storage=storage, flush_interval=3600)
    shop = declare(app)
    async with app:
        version = await app.admin.set_state(
            shop.AllowedPriorities,
            rollout_and_experiment(shop)["AllowedPriorities"],
            author="t",
            reason="experiment",
        )
        expected: Counter[str] = Counter()
        for person in [user(i) for i in range(USES)]:
            expected[shop.AllowedPriorities.find_implementation(person)] += 1
            await shop.AllowedPriorities.create(person)
        assert await read_all_aio(storage) == []
    entries = await read_all_aio(storage)
    check(entries, version, expected)
    assert len(entries) == 1
    await client.aclose()


def test_a_sync_app_evaluating_flat_out_waits_for_room_rather_than_drop(
    redis_url: str, namespace: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    storage = feats.RedisStorage(client, namespace)
    # Room for 200 exposures and a writer that wakes only when asked: every write below is
    # one a full queue asked for, while this thread kept evaluating.
    app = feats.App(storage=storage, exposure_capacity=200, flush_interval=3600)
    shop = declare(app)
    people = [user(i) for i in range(20_000)]
    with app:
        version = app.admin.set_state(
            shop.AllowedPriorities,
            rollout_and_experiment(shop)["AllowedPriorities"],
            author="t",
            reason="experiment",
        )
        app.wait_for_version(version, timeout=10)
        expected: Counter[str] = Counter()
        for person in people:
            expected[shop.AllowedPriorities.find_implementation(person)] += 1
            shop.AllowedPriorities.create(person)
        assert app.status.exposures_dropped == 0, app.status
        app.flush()
        assert app.status.exposures_written == len(people), app.status
    exposures = decode_exposures(read_all_sync(storage))
    assert Counter(implementation for _, implementation, _, _ in exposures) == expected
    assert {v for _, _, _, v in exposures} == {version}
    client.close()
