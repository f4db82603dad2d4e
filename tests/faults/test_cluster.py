"""Redis Cluster: Apps and admins on redis.cluster / redis.asyncio.cluster clients, and a
manual CLUSTER FAILOVER of the namespace's master while a writer keeps changing things.

Every key of a namespace shares one hash tag, so one slot, one master, and the Lua scripts
work. Writes use ``wait_for_replicas=1``: an acknowledged change is on the replica too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

import feats
import feats.aio
from feats._layout import Keys
from tests.servers import RedisCluster, RedisServer, slot_of, wait_until
from tests.servers._common import command
from tests.servers.cluster import _admin

from ._model import (
    CANADIAN,
    RECOVERY_BOUND,
    aio_app,
    aio_probing,
    apoll,
    nth_state,
    probing,
    sync_app,
)
from .conftest import Measure


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster(masters=3, replicas=1) as clu:
        yield clu


def promote_replica(cluster: RedisCluster, key: str) -> tuple[RedisServer, RedisServer]:
    """Which node serves ``key`` and which replica of it a failover would promote."""
    view = cluster.wait_healthy()
    old = next(v for v in view.values() if v.is_master and v.owns(slot_of(key)))
    new = next(v for v in view.values() if v.master_id == old.node_id)
    return cluster.node_at(old.address), cluster.node_at(new.address)


def manual_failover(old: RedisServer, new: RedisServer) -> float:
    """CLUSTER FAILOVER on the replica; returns once the roles switched (writes go on).

    RedisCluster.failover() also waits for every replica to be fully in sync, which never
    happens while a writer keeps writing: this waits for the switch itself.
    """
    started = time.monotonic()
    while True:
        client = _admin(new)
        try:
            command(client, "CLUSTER", "FAILOVER")
        finally:
            client.close()
        try:
            wait_until(
                lambda: (
                    True if new.role_name() == "master" and old.role_name() == "slave" else None
                ),
                timeout=8,
                what="the roles to switch",
            )
            return time.monotonic() - started
        except TimeoutError:
            if time.monotonic() - started > 30:
                raise


@dataclass
class Writes:
    acked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    slowest: float = 0.0

    def lost(self, history: list[feats.Change]) -> list[str]:
        kept = {change.version for change in history}
        return [version for version in self.acked if version not in kept]


def test_sync_cluster_failover_loses_no_acknowledged_change(
    cluster: RedisCluster, namespace: str, measure: Measure
) -> None:
    keys = Keys(namespace)
    old, new = promote_replica(cluster, keys.log)
    writer = sync_app(cluster.client(), namespace, storage={"wait_for_replicas": 1})
    reader = sync_app(cluster.client(), namespace)
    first = writer.app.admin.set_state(writer.Checkout, nth_state(0), author="w", reason="0")
    writes = Writes([first])
    stop = threading.Event()

    def write() -> None:
        n = 1
        while not stop.is_set():
            started = time.monotonic()
            try:
                version = writer.app.admin.set_state(
                    writer.Checkout, nth_state(n), author="w", reason=str(n)
                )
                writes.acked.append(version)
            except feats.StorageError as error:  # not acknowledged: the writer may retry
                writes.failed.append(str(error))
            writes.slowest = max(writes.slowest, time.monotonic() - started)
            n += 1
            stop.wait(0.005)

    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        thread = threading.Thread(target=write, name="writer")
        thread.start()
        try:
            poll_until = time.monotonic() + 10
            while len(writes.acked) < 20 and time.monotonic() < poll_until:
                stop.wait(0.01)
            switched = manual_failover(old, new)
            before = len(writes.acked)
            while len(writes.acked) < before + 20 and time.monotonic() < poll_until + 20:
                stop.wait(0.01)
        finally:
            stop.set()
            thread.join(10)
        last = writes.acked[-1]
        reader.app.wait_for_version(last, timeout=RECOVERY_BOUND)
        assert reader.Checkout.explain(CANADIAN).version == last
    probe.assert_clean()
    history = writer.app.admin.history(writer.Checkout)
    assert writes.lost(history) == []
    assert cluster.master_of(keys.log).address == new.address
    measure("roles switched after CLUSTER FAILOVER (s)", switched)
    measure(
        "changes acknowledged / failed / lost", f"{len(writes.acked)} / {len(writes.failed)} / 0"
    )
    measure("slowest write during the failover (s)", writes.slowest)
    measure("reader outages", reader.app.status.outages)


async def test_aio_cluster_failover_loses_no_acknowledged_change(
    cluster: RedisCluster, namespace: str, measure: Measure
) -> None:
    keys = Keys(namespace)
    old, new = await asyncio.to_thread(promote_replica, cluster, keys.log)
    clients = [cluster.async_client(), cluster.async_client()]
    writer = aio_app(clients[0], namespace, storage={"wait_for_replicas": 1})
    reader = aio_app(clients[1], namespace)
    first = await writer.app.admin.set_state(writer.Checkout, nth_state(0), author="w", reason="0")
    writes = Writes([first])
    stop = asyncio.Event()

    async def write() -> None:
        n = 1
        while not stop.is_set():
            started = time.monotonic()
            try:
                version = await writer.app.admin.set_state(
                    writer.Checkout, nth_state(n), author="w", reason=str(n)
                )
                writes.acked.append(version)
            except feats.StorageError as error:
                writes.failed.append(str(error))
            writes.slowest = max(writes.slowest, time.monotonic() - started)
            n += 1
            await asyncio.sleep(0.005)

    async with reader.app, aio_probing(reader) as probe:
        await reader.app.wait_for_version(first, timeout=5)
        task = asyncio.create_task(write())
        try:
            await apoll(lambda: len(writes.acked) >= 20, timeout=10, what="writes")
            switched = await asyncio.to_thread(manual_failover, old, new)
            before = len(writes.acked)
            await apoll(lambda: len(writes.acked) >= before + 20, timeout=20, what="writes")
        finally:
            stop.set()
            await task
        await reader.app.wait_for_version(writes.acked[-1], timeout=RECOVERY_BOUND)
    probe.assert_clean()
    assert writes.lost(await writer.app.admin.history(writer.Checkout)) == []
    measure("roles switched after CLUSTER FAILOVER (s)", switched)
    measure(
        "changes acknowledged / failed / lost", f"{len(writes.acked)} / {len(writes.failed)} / 0"
    )
    measure("slowest write during the failover (s)", writes.slowest)
    for client in clients:
        await client.aclose()


async def test_cluster_clients_get_a_block_that_fits_their_socket_timeout(
    cluster: RedisCluster,
) -> None:
    # Cluster clients are shared by the tail: a BLOCK longer than their socket timeout
    # would be cut off every time, so it shrinks to fit (5 s is their default).
    sync_short, sync_default = cluster.client(socket_timeout=1.0), cluster.client()
    aio_short, aio_default = cluster.async_client(socket_timeout=1.0), cluster.async_client()
    assert feats.RedisStorage(sync_short, "fit").block_ms(2_000) == 500
    assert feats.RedisStorage(sync_default, "fit").block_ms(2_000) == 2_000
    assert feats.aio.RedisStorage(aio_short, "fit").block_ms(2_000) == 500
    assert feats.aio.RedisStorage(aio_default, "fit").block_ms(10_000) == 4_000
    sync_short.close()
    sync_default.close()
    await aio_short.aclose()
    await aio_default.aclose()
