"""aclose() ends the tail promptly, even when the loop was busy right after a write.

On Python 3.11 redis-py sends each command through asyncio.wait_for, which swallows a
cancellation that lands just as the send completes. Evaluating for a while right after a
write (so the loop runs nothing) lines that up: a single cancel() used to hang aclose().
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio

import feats.aio

from ._shop import canada_premium, declare, user

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
