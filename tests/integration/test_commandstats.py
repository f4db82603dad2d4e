"""Evaluations issue no Redis commands: INFO commandstats around 10,000 of them on a live App."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import feats
import feats.aio
from tests.servers import RedisServer

from ._shop import declare, rollout_and_experiment, user, wait_for_catalog

pytestmark = pytest.mark.redis

EVALUATIONS = 10_000
# What a started App may send while it only evaluates: the tail's blocking read, the epoch
# check when a read comes back empty (a read-only script: EVAL_RO, and the STRLEN and GET it
# runs), and the batched exposure writes of experiments, whose connection (the tail's own
# pool, as the tail's is busy blocking) says HELLO when it opens. The configuration is
# written before the App starts, so no reload is due.
TAIL_COMMANDS = {"xread", "eval_ro", "strlen", "get", "xadd", "hello"}


class Stats:
    """INFO commandstats through one connection, opened before the first reading."""

    def __init__(self, server: RedisServer) -> None:
        self.client = server.client(decode_responses=True)
        self.client.ping()

    def read(self) -> dict[str, int]:
        stats: dict[str, Any] = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    def since(self, before: dict[str, int]) -> dict[str, int]:
        after = self.read()
        return {
            name: calls - before.get(name, 0)
            for name, calls in after.items()
            if calls != before.get(name, 0) and name != "info"
        }

    def wait_for_tail_reads(self, before: dict[str, int], reads: int) -> dict[str, int]:
        """Poll (bounded) until the tail has completed ``reads`` more XREADs: it was live."""
        deadline = time.monotonic() + 10
        while (issued := self.since(before)).get("xread", 0) < reads:
            assert time.monotonic() < deadline, f"the tail issued no XREAD: {issued}"
            threading.Event().wait(0.02)
        return issued

    def close(self) -> None:
        self.client.close()


def check(issued: dict[str, int], exposures: int) -> None:
    assert set(issued) <= TAIL_COMMANDS, f"evaluations issued commands: {issued}"
    # Far fewer commands than evaluations: nothing per call, batches for the exposures.
    assert sum(issued.values()) < 50, issued
    if exposures:
        assert 1 <= issued.get("xadd", 0) <= 20, issued


async def test_aio_evaluations_issue_no_commands(own_redis: RedisServer) -> None:
    client = own_redis.async_client()
    app = feats.aio.App(storage=feats.aio.RedisStorage(client, "stats"), block_ms=100)
    shop = declare(app)
    for name, state in rollout_and_experiment(shop).items():
        version = await app.admin.set_state(name, state, author="test", reason="setup")
    async with app:
        assert app.version == version
        await asyncio.to_thread(wait_for_catalog, own_redis.url, "stats")
        people = [user(i, ("US", "CA", "GB")[i % 3]) for i in range(EVALUATIONS // 4)]
        stats = Stats(own_redis)
        before = stats.read()
        exposures = 0
        chosen: dict[str, int] = {}
        for index, person in enumerate(people):
            processor = await shop.PaymentProcessor.create(person)
            chosen[processor] = chosen.get(processor, 0) + 1
            shop.AllowedPriorities.find_implementation(person)
            await shop.AllowedPriorities.create(person)
            exposures += 1
            assert shop.ImageProcessing.explain(person).implementation == "disabled"
            if index % 100 == 0:
                # Let the tail and the exposure writer run, as they would in a server.
                await asyncio.sleep(0)
        assert not await shop.ImageProcessing.is_enabled(people[0])
        # Wait (bounded) until the exposures are out: their XADDs belong in the count.
        deadline = asyncio.get_running_loop().time() + 10
        while app.status.exposures_written < exposures:
            assert asyncio.get_running_loop().time() < deadline, app.status
            await asyncio.sleep(0.01)
        issued = await asyncio.to_thread(stats.wait_for_tail_reads, before, 2)
        assert app.status.live
    await client.aclose()
    stats.close()
    print(f"commands during {EVALUATIONS} aio evaluations: {issued}")
    check(issued, exposures)
    assert chosen.keys() == {"acme", "premium", "aperture"}


def test_sync_evaluations_issue_no_commands(own_redis: RedisServer) -> None:
    client = own_redis.client(decode_responses=True)
    app = feats.App(storage=feats.RedisStorage(client, "stats-sync"), block_ms=100)
    shop = declare(app)
    for name, state in rollout_and_experiment(shop).items():
        version = app.admin.set_state(name, state, author="test", reason="setup")
    with app:
        assert app.version == version
        wait_for_catalog(own_redis.url, "stats-sync")
        people = [user(i, ("US", "CA", "GB")[i % 3]) for i in range(EVALUATIONS // 4)]
        stats = Stats(own_redis)
        before = stats.read()
        exposures = 0
        for person in people:
            shop.PaymentProcessor.create(person)
            shop.AllowedPriorities.find_implementation(person)
            shop.AllowedPriorities.create(person)
            exposures += 1
            assert not shop.ImageProcessing.is_enabled(person)
        deadline = time.monotonic() + 10
        while app.status.exposures_written < exposures:
            assert time.monotonic() < deadline, app.status
            threading.Event().wait(0.01)
        issued = stats.wait_for_tail_reads(before, 2)
        assert app.status.live
    client.close()
    stats.close()
    print(f"commands during {EVALUATIONS} sync evaluations: {issued}")
    check(issued, exposures)
