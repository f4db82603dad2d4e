"""Sentinel: a master, a replica and three sentinels; sync and asyncio Apps on
``Sentinel.master_for`` clients follow a SENTINEL FAILOVER and keep receiving changes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.sentinel
import redis.sentinel

import feats
from tests.servers import RedisSentinel

from ._model import (
    CANADIAN,
    RECOVERY_BOUND,
    SyncModel,
    aio_app,
    aio_probing,
    apoll,
    canada_gets,
    poll,
    probing,
    sync_app,
)
from .conftest import Measure


@pytest.fixture(scope="module")
def sentinel_setup() -> Iterator[RedisSentinel]:
    with RedisSentinel(replicas=1, sentinels=3) as setup:
        yield setup


def master_client(setup: RedisSentinel) -> redis.Redis:
    sentinel = setup.sentinel_client(socket_timeout=1.0)
    master_for: Callable[..., redis.Redis] = sentinel.master_for
    return master_for(setup.master_name, socket_timeout=2.0)


def aio_master_client(setup: RedisSentinel) -> Any:
    sentinel = setup.async_sentinel_client(socket_timeout=1.0)
    return sentinel.master_for(setup.master_name, socket_timeout=2.0)


def write_until_acknowledged(model: SyncModel, state: feats.FeatureState, reason: str) -> str:
    """The first writes after a failover may still reach the demoted master (READONLY,
    reported as a StorageError): not acknowledged, so the writer tries again."""
    deadline = time.monotonic() + RECOVERY_BOUND
    while True:
        try:
            return model.app.admin.set_state(model.Checkout, state, author="ops", reason=reason)
        except feats.StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


async def test_apps_follow_a_sentinel_failover(
    sentinel_setup: RedisSentinel, namespace: str, measure: Measure
) -> None:
    writer = sync_app(master_client(sentinel_setup), namespace)
    reader = sync_app(master_client(sentinel_setup), namespace)
    aio_reader = aio_app(aio_master_client(sentinel_setup), namespace)
    first = write_until_acknowledged(writer, canada_gets("express"), "before")
    with reader.app, probing(reader) as probe:
        async with aio_reader.app, aio_probing(aio_reader) as aio_probe:
            reader.app.wait_for_version(first, timeout=5)
            await aio_reader.app.wait_for_version(first, timeout=5)
            probe.expected = aio_probe.expected = "express"
            result = await sentinel_setup.afailover()
            measure("SENTINEL FAILOVER until the old master replicates (s)", result.seconds)
            probe.expected = aio_probe.expected = None
            failed_over = time.monotonic()
            second = write_until_acknowledged(writer, canada_gets("oneclick"), "after")
            measure(
                "first write acknowledged after the failover (s)", time.monotonic() - failed_over
            )
            acked = time.monotonic()
            reader.app.wait_for_version(second, timeout=RECOVERY_BOUND)
            await aio_reader.app.wait_for_version(second, timeout=RECOVERY_BOUND)
            measure("both Apps applied it after the ack (s)", time.monotonic() - acked)
            for model in (reader, aio_reader):
                assert model.Checkout.find_implementation(CANADIAN) == "oneclick"
            poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
            await apoll(lambda: aio_reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
            # And they keep following the new master.
            third = write_until_acknowledged(writer, canada_gets("express"), "again")
            reader.app.wait_for_version(third, timeout=RECOVERY_BOUND)
            await aio_reader.app.wait_for_version(third, timeout=RECOVERY_BOUND)
    probe.assert_clean()
    aio_probe.assert_clean()
    assert result.new_master != result.old_master
    measure(
        "reader outages (sync / aio)",
        f"{reader.app.status.outages} / {aio_reader.app.status.outages}",
    )
