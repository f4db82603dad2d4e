"""Connections reset, traffic black-holed, CLIENT KILL and CLIENT PAUSE, in both shells.

The reader App talks to Redis through the fault proxy (or is the victim of the server-side
command); the writer talks to Redis directly, so changes keep being made during the fault.
"""

from __future__ import annotations

import time

import pytest
import redis

from tests.servers import FaultProxy, RedisServer
from tests.servers._common import as_int, command

from ._model import (
    CANADIAN,
    RECOVERY_BOUND,
    aio_app,
    aio_probing,
    apoll,
    assert_live,
    assert_stale,
    async_client,
    canada_gets,
    poll,
    probing,
    sync_app,
    sync_client,
)
from .conftest import Measure

TAIL_SOCKET_TIMEOUT = 1.5
"""The tail's own socket timeout for BLOCK 500 ms (tail_socket_timeout)."""


def test_proxy_resets_every_connection(
    server: RedisServer, proxy: FaultProxy, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    reader = sync_app(sync_client(proxy.url), namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        outages = reader.app.status.outages
        # A reset alone heals at once: the tail notices, backs off briefly, reconnects.
        assert proxy.reset_all() >= 1
        reset_at = time.monotonic()
        poll(lambda: reader.app.status.outages > outages, timeout=10, what="the reset noticed")
        poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
        measure("live again after a reset (s)", time.monotonic() - reset_at)
        # Reset and keep refusing: stale for as long as it lasts, the snapshot answering.
        proxy.refuse()
        proxy.reset_all()
        poll(lambda: reader.app.status.stale, timeout=10, what="stale")
        assert_stale(reader)
        version = writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="during"
        )
        assert reader.Checkout.find_implementation(CANADIAN) == "express"
        probe.expected = None
        proxy.restore()
        restored = time.monotonic()
        reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        measure(
            "change made during the fault applied after restore (s)", time.monotonic() - restored
        )
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
        poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
    probe.assert_clean()
    assert proxy.stats().connections_reset >= 2


async def test_aio_proxy_resets_every_connection(
    server: RedisServer, proxy: FaultProxy, namespace: str, measure: Measure
) -> None:
    writer = aio_app(async_client(server.url), namespace)
    reader = aio_app(async_client(proxy.url), namespace)
    first = await writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    async with reader.app, aio_probing(reader) as probe:
        await reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        await proxy.arefuse()
        assert await proxy.areset_all() >= 1
        await apoll(lambda: reader.app.status.stale, timeout=10, what="stale")
        assert_stale(reader)
        version = await writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="during"
        )
        probe.expected = None
        await proxy.arestore()
        restored = time.monotonic()
        await reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        measure(
            "change made during the fault applied after restore (s)", time.monotonic() - restored
        )
        await apoll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
    probe.assert_clean()


@pytest.mark.parametrize("drop", [True, False], ids=["drop", "stall"])
def test_blackholed_traffic_is_bounded_by_the_socket_timeout(
    server: RedisServer, proxy: FaultProxy, namespace: str, measure: Measure, drop: bool
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    # The user's client has no socket timeout at all: the tail's own one still bounds it.
    reader = sync_app(sync_client(proxy.url, socket_timeout=None), namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        proxy.blackhole(drop=drop)
        noticed = poll(lambda: reader.app.status.stale, timeout=10, what="stale")
        measure("stale after the black hole began (s)", noticed)
        assert noticed < TAIL_SOCKET_TIMEOUT + 2.0
        assert_stale(reader)
        version = writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="during"
        )
        assert reader.Checkout.find_implementation(CANADIAN) == "express"
        probe.expected = None
        proxy.restore()
        restored = time.monotonic()
        reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        measure(
            "change made during the fault applied after restore (s)", time.monotonic() - restored
        )
        poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
        assert_live(reader)
    probe.assert_clean()
    closed = time.monotonic()
    reader.app.close()
    assert time.monotonic() - closed < 5


async def test_aio_blackholed_traffic_is_bounded_by_the_socket_timeout(
    server: RedisServer, proxy: FaultProxy, namespace: str, measure: Measure
) -> None:
    writer = aio_app(async_client(server.url), namespace)
    reader = aio_app(async_client(proxy.url, socket_timeout=None), namespace)
    first = await writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    async with reader.app, aio_probing(reader) as probe:
        await reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        await proxy.ablackhole()
        noticed = await apoll(lambda: reader.app.status.stale, timeout=10, what="stale")
        measure("stale after the black hole began (s)", noticed)
        assert noticed < TAIL_SOCKET_TIMEOUT + 2.0
        assert_stale(reader)
        version = await writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="during"
        )
        probe.expected = None
        await proxy.arestore()
        restored = time.monotonic()
        await reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        measure(
            "change made during the fault applied after restore (s)", time.monotonic() - restored
        )
        await apoll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
    probe.assert_clean()


def _kill_clients(admin: redis.Redis) -> int:
    return as_int(command(admin, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))


def test_client_kill(server: RedisServer, namespace: str, measure: Measure) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    reader = sync_app(sync_client(server.url), namespace)
    admin = sync_client(server.url)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        # One kill: the blocked tail read fails, the App reconnects within its backoff.
        outages = reader.app.status.outages
        assert _kill_clients(admin) >= 1
        killed = time.monotonic()
        poll(lambda: reader.app.status.outages > outages, timeout=10, what="the kill noticed")
        poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
        measure("live again after CLIENT KILL (s)", time.monotonic() - killed)
        # A storm of kills: explain() must say stale while it lasts.
        deadline = time.monotonic() + 10
        seen_stale = False
        while not seen_stale and time.monotonic() < deadline:
            _kill_clients(admin)
            seen_stale = reader.Checkout.explain(CANADIAN).stale
        assert seen_stale
        probe.expected = None
        version = writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="after"
        )
        acked = time.monotonic()
        reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        measure("next change applied after ack (s)", time.monotonic() - acked)
    probe.assert_clean()
    admin.close()


async def test_aio_client_kill(server: RedisServer, namespace: str, measure: Measure) -> None:
    writer = aio_app(async_client(server.url), namespace)
    reader = aio_app(async_client(server.url), namespace)
    admin = sync_client(server.url)
    first = await writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    async with reader.app, aio_probing(reader) as probe:
        await reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        outages = reader.app.status.outages
        assert _kill_clients(admin) >= 1
        killed = time.monotonic()
        await apoll(lambda: reader.app.status.outages > outages, timeout=10, what="noticed")
        await apoll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
        measure("live again after CLIENT KILL (s)", time.monotonic() - killed)
        probe.expected = None
        version = await writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="after"
        )
        await reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
    probe.assert_clean()
    admin.close()


PAUSE_MS = 3_000


def test_client_pause(server: RedisServer, namespace: str, measure: Measure) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    reader = sync_app(sync_client(server.url), namespace)
    admin = sync_client(server.url)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        command(admin, "CLIENT", "PAUSE", PAUSE_MS, "ALL")
        paused = time.monotonic()
        measure(
            "stale after the pause began (s)",
            poll(lambda: reader.app.status.stale, timeout=PAUSE_MS / 1000, what="stale"),
        )
        assert_stale(reader)
        poll(lambda: reader.app.status.live, timeout=PAUSE_MS / 1000 + RECOVERY_BOUND, what="live")
        measure("live after the pause ended (s)", time.monotonic() - paused - PAUSE_MS / 1000)
        probe.expected = None
        version = writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="after"
        )
        acked = time.monotonic()
        reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        measure("next change applied after ack (s)", time.monotonic() - acked)
    probe.assert_clean()
    admin.close()


async def test_aio_client_pause(server: RedisServer, namespace: str, measure: Measure) -> None:
    writer = aio_app(async_client(server.url), namespace)
    reader = aio_app(async_client(server.url), namespace)
    admin = sync_client(server.url)
    first = await writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    async with reader.app, aio_probing(reader) as probe:
        await reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        command(admin, "CLIENT", "PAUSE", PAUSE_MS, "ALL")
        paused = time.monotonic()
        await apoll(lambda: reader.app.status.stale, timeout=PAUSE_MS / 1000, what="stale")
        assert_stale(reader)
        await apoll(
            lambda: reader.app.status.live, timeout=PAUSE_MS / 1000 + RECOVERY_BOUND, what="live"
        )
        measure("live after the pause ended (s)", time.monotonic() - paused - PAUSE_MS / 1000)
        probe.expected = None
        version = await writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="after"
        )
        await reader.app.wait_for_version(version, timeout=RECOVERY_BOUND)
    probe.assert_clean()
    admin.close()
