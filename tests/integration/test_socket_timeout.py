"""The socket-timeout pitfall: a client with socket_timeout=1 and a 5 s BLOCK must not loop.

redis-py would cut a 5 s XREAD BLOCK after 1 s and retry; the storage derives a tail client
of its own whose timeout exceeds the BLOCK, so the App stays live and follows promptly.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import feats
import feats.aio
from tests.servers import RedisServer

from ._shop import canada_premium, declare, user, wait_for_catalog

pytestmark = pytest.mark.redis

BLOCK_MS = 5_000
BLOCKED_FOR = 3  # CLIENT LIST idle (whole seconds): blocked over 2 s, past the 1 s timeout


class Monitor:
    """One connection of our own, opened up front, to watch the server's clients."""

    def __init__(self, server: RedisServer) -> None:
        self.client = server.client(decode_responses=True)
        self.client.ping()

    def connections_received(self) -> int:
        stats: dict[str, Any] = self.client.info("stats")
        return int(stats["total_connections_received"])

    def wait_for_long_block(self) -> None:
        """Poll (bounded) until a client has sat in XREAD BLOCK for BLOCKED_FOR seconds."""
        deadline = time.monotonic() + 10
        while True:
            clients = self.client.client_list()
            if any(
                "b" in c["flags"] and c["cmd"] == "xread" and int(c["idle"]) >= BLOCKED_FOR
                for c in clients
            ):
                return
            assert time.monotonic() < deadline, clients
            threading.Event().wait(0.05)

    def close(self) -> None:
        self.client.close()


async def test_aio_app_with_a_short_socket_timeout(own_redis: RedisServer) -> None:
    client = own_redis.async_client(socket_timeout=1)
    app = feats.aio.App(storage=feats.aio.RedisStorage(client, "timeouts"), block_ms=BLOCK_MS)
    shop = declare(app)
    async with app:
        assert app.status.live
        await asyncio.to_thread(wait_for_catalog, own_redis.url, "timeouts")
        monitor = Monitor(own_redis)
        connections = monitor.connections_received()
        await asyncio.to_thread(monitor.wait_for_long_block)
        status = app.status
        assert status.live and status.error is None, status
        # No reconnect loop: nobody connected while the tail sat in its BLOCK.
        assert monitor.connections_received() == connections
        monitor.close()
        version = await app.admin.set_state(
            shop.PaymentProcessor, canada_premium(shop), author="t", reason="prompt"
        )
        other_client = own_redis.async_client()
        other = feats.aio.App(storage=feats.aio.RedisStorage(other_client, "timeouts"))
        follower = declare(other)
        async with other:
            started = time.perf_counter()
            second = await other.admin.set_state(
                follower.PaymentProcessor, None, author="t", reason="back"
            )
            await app.wait_for_version(second, timeout=2)
            assert time.perf_counter() - started < 1
        assert shop.PaymentProcessor.find_implementation(user(2, "CA")) == "acme"
        assert app.version == second != version
        assert app.status.live and app.status.skipped == 0
        assert await other.storage.read_exposures("0-0", 1) == []
    await other_client.aclose()
    await client.aclose()


def test_sync_app_with_a_short_socket_timeout(own_redis: RedisServer) -> None:
    client = own_redis.client(socket_timeout=1)
    app = feats.App(storage=feats.RedisStorage(client, "timeouts"), block_ms=BLOCK_MS)
    shop = declare(app)
    with app:
        assert app.status.live
        wait_for_catalog(own_redis.url, "timeouts")
        monitor = Monitor(own_redis)
        connections = monitor.connections_received()
        monitor.wait_for_long_block()
        status = app.status
        assert status.live and status.error is None, status
        assert monitor.connections_received() == connections
        monitor.close()
        writer_client = own_redis.client()
        writer = feats.App(storage=feats.RedisStorage(writer_client, "timeouts"))
        started = time.perf_counter()
        version = writer.admin.set_state(
            declare(writer).PaymentProcessor, canada_premium(shop), author="t", reason="prompt"
        )
        app.wait_for_version(version, timeout=2)
        assert time.perf_counter() - started < 1
        assert shop.PaymentProcessor.find_implementation(user(2, "CA")) == "premium"
        assert app.status.live
        writer_client.close()
    client.close()
