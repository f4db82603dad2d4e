"""Closing: aclose() ends the tail promptly, even when the loop was busy right after a
write, and close() leaves no connection of the App open.

On Python 3.11 redis-py sends each command through asyncio.wait_for, which swallows a
cancellation that lands just as the send completes. Evaluating for a while right after a
write (so the loop runs nothing) lines that up: a single cancel() used to hang aclose().
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio

import feats
import feats.aio

from ._shop import canada_premium, declare, rollout_and_experiment, user

pytestmark = pytest.mark.redis


async def test_aclose_after_busy_evaluation_following_a_write(
    redis_url: str, namespace: str
) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    for _ in range(5):
        app = feats.aio.App(storage=feats.aio.RedisStorage(client, namespace))
        shop = declare(app)
        await app.start()
        await app.admin.set_state(
            shop.PaymentProcessor, canada_premium(shop), author="t", reason="busy"
        )
        for index in range(3_000):  # no await: the tail cannot run meanwhile
            shop.PaymentProcessor.find_implementation(user(index, "CA"))
        started = time.perf_counter()
        closing = asyncio.ensure_future(app.aclose())
        done, _ = await asyncio.wait({closing}, timeout=3)
        assert done, "aclose() hung: the tail task ignored its cancellation"
        closing.result()
        assert time.perf_counter() - started < 1
    await client.aclose()


def _open_sockets(storage: feats.RedisStorage) -> int:
    """Connections of the tail's own client that still hold a socket."""
    pool = storage.redis.connection_pool
    connections = [*pool._available_connections, *pool._in_use_connections]
    return sum(1 for connection in connections if connection._sock is not None)


def test_close_leaves_no_connection_of_the_app_open(redis_url: str, namespace: str) -> None:
    """The exposures close() writes after the threads ended open a connection of the
    tail's own client, which stop() had already cut: close() closes it too."""
    client = redis.Redis.from_url(redis_url)
    app = feats.App(storage=feats.RedisStorage(client, namespace), flush_interval=3600)
    shop = declare(app)
    states = rollout_and_experiment(shop)
    app.admin.set_state(
        shop.AllowedPriorities, states["AllowedPriorities"], author="t", reason="experiment"
    )
    with app:
        for index in range(10):
            shop.AllowedPriorities.create(user(index, "CA"))  # exposures, written at close
        follower = app._follower
        assert follower is not None
        tail_storage = follower.storage
        assert isinstance(tail_storage, feats.RedisStorage)
    assert app.status.exposures_buffered == 0  # close() wrote them
    assert _open_sockets(tail_storage) == 0
    client.close()
