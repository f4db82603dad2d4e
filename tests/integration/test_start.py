"""Starting never hangs: no Redis yet means defaults at once, then catching up when it appears."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import feats
import feats.aio
from tests.servers import RedisServer

from ._shop import canada_premium, declare, user

pytestmark = pytest.mark.redis

START_TIMEOUT = 0.5


@pytest.fixture
def absent_redis(own_redis: RedisServer) -> RedisServer:
    """A server that is down, its loopback port closed but kept for it: start() brings it up."""
    own_redis.stop()
    return own_redis


async def test_aio_app_starts_without_redis_and_catches_up(absent_redis: RedisServer) -> None:
    client = absent_redis.async_client(socket_connect_timeout=0.5)
    app = feats.aio.App(storage=feats.aio.RedisStorage(client, "late"), start_timeout=START_TIMEOUT)
    shop = declare(app)
    canadian = user(2, "CA")
    started = time.perf_counter()
    async with app:
        took = time.perf_counter() - started
        assert took < START_TIMEOUT + 1, took
        assert not app.status.live
        assert app.status.error is not None
        assert app.version is None
        assert await shop.PaymentProcessor.create(canadian) == "acme"
        assert shop.PaymentProcessor.explain(canadian).reason.startswith("no configuration")

        await asyncio.to_thread(absent_redis.start)
        other = absent_redis.async_client()
        writer = feats.aio.App(storage=feats.aio.RedisStorage(other, "late"))
        version = await writer.admin.set_state(
            declare(writer).PaymentProcessor, canada_premium(shop), author="t", reason="late"
        )
        await app.wait_for_version(version, timeout=10)
        assert await shop.PaymentProcessor.create(canadian) == "premium"
        deadline = time.monotonic() + 10
        while not app.status.live:
            assert time.monotonic() < deadline, app.status
            await asyncio.sleep(0.01)
        assert app.status.error is None
        await other.aclose()
    await client.aclose()


def test_sync_app_starts_without_redis_and_catches_up(absent_redis: RedisServer) -> None:
    client = absent_redis.client(socket_connect_timeout=0.5)
    app = feats.App(storage=feats.RedisStorage(client, "late"), start_timeout=START_TIMEOUT)
    shop = declare(app)
    canadian = user(2, "CA")
    started = time.perf_counter()
    with app:
        took = time.perf_counter() - started
        assert took < START_TIMEOUT + 1, took
        assert not app.status.live
        assert app.version is None
        assert shop.ImageProcessing.is_enabled(canadian)
        assert shop.PaymentProcessor.create(canadian) == "acme"

        absent_redis.start()
        other = absent_redis.client()
        writer = feats.App(storage=feats.RedisStorage(other, "late"))
        version = writer.admin.set_state(
            declare(writer).PaymentProcessor, canada_premium(shop), author="t", reason="late"
        )
        app.wait_for_version(version, timeout=10)
        assert shop.PaymentProcessor.create(canadian) == "premium"
        deadline = time.monotonic() + 10
        while not app.status.live:
            assert time.monotonic() < deadline, app.status
            threading.Event().wait(0.01)
        other.close()
    client.close()


async def test_aio_close_is_prompt_while_redis_is_absent(absent_redis: RedisServer) -> None:
    client = absent_redis.async_client(socket_connect_timeout=0.5)
    app = feats.aio.App(storage=feats.aio.RedisStorage(client, "late"), start_timeout=0.2)
    declare(app)
    await app.start()
    started = time.perf_counter()
    await app.aclose()
    assert time.perf_counter() - started < 1
    await client.aclose()
