"""Self-tests of the real-server helpers: restarts, fault proxy, cluster, sentinel, TLS, ACL."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Iterator

import pytest
import redis
import redis.asyncio
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import (
    FaultProxy,
    RedisCluster,
    RedisSentinel,
    RedisServer,
    async_wait_until,
    make_tls_material,
    redis_server_available,
    wait_until,
)

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not redis_server_available(), reason="redis-server is not installed"),
]


def no_retry() -> Retry:
    # redis-py retries connection errors by default, which would hide the injected faults.
    return Retry(NoBackoff(), 0)


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0) until reaped; Popen.wait() in kill() reaps ours.
    return False


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[FaultProxy]:
    with FaultProxy.for_server(server) as prx:
        yield prx


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as clu:
        yield clu


@pytest.fixture(scope="module")
def sentinel_setup() -> Iterator[RedisSentinel]:
    with RedisSentinel() as setup:
        yield setup


# -- RedisServer ------------------------------------------------------------------------


def test_aof_restart_keeps_data_and_restart_empty_wipes_it() -> None:
    with RedisServer(persistence="aof") as srv:
        port = srv.port
        client = srv.client(retry=no_retry())
        assert client.set("feats:k", "v")
        old_pid = srv.pid
        srv.kill()
        assert not srv.running
        with pytest.raises(redis.ConnectionError):
            client.get("feats:k")
        srv.restart()
        assert srv.port == port
        assert srv.pid != old_pid
        assert client.get("feats:k") == b"v"
        srv.restart_empty()
        assert srv.port == port
        assert client.get("feats:k") is None
        client.close()


def test_restart_without_persistence_loses_data(server: RedisServer) -> None:
    client = server.client()
    client.set("feats:k", "v")
    server.restart(graceful=True)
    assert client.get("feats:k") is None
    client.close()


def test_close_kills_the_process_and_removes_its_files() -> None:
    srv = RedisServer().start()
    pid, directory = srv.pid, srv.directory
    assert pid is not None and directory.exists()
    srv.close()
    assert process_gone(pid)
    assert not directory.exists()
    srv.close()  # idempotent


def test_forgotten_server_is_reaped_by_its_finalizer() -> None:
    srv = RedisServer().start()
    pid, directory = srv.pid, srv.directory
    assert pid is not None
    del srv
    gc.collect()
    assert process_gone(pid)
    assert not directory.exists()


async def test_async_client_and_async_controls() -> None:
    with RedisServer(persistence="aof") as srv:
        # Default retries: the pooled connection died with the server and must be replaced.
        client = srv.async_client()
        await client.set("feats:k", "v")
        await srv.akill()
        await srv.arestart()
        assert await client.get("feats:k") == b"v"
        await client.aclose()


# -- FaultProxy -------------------------------------------------------------------------


async def test_proxy_reset_all_breaks_an_in_flight_command(
    server: RedisServer, proxy: FaultProxy
) -> None:
    client = redis.asyncio.Redis.from_url(proxy.url, retry=no_retry())
    assert await client.set("feats:k", "v")
    blocked = asyncio.ensure_future(client.blpop(["feats:never"], timeout=10))
    admin = server.async_client()

    async def blocked_clients(count: int) -> bool | None:
        info = await admin.info("clients")
        return True if info["blocked_clients"] == count else None

    await async_wait_until(
        lambda: blocked_clients(1), timeout=5, what="BLPOP to block on the server"
    )
    assert await proxy.areset_all() >= 1
    with pytest.raises(redis.ConnectionError):
        await asyncio.wait_for(blocked, timeout=5)
    # The server saw its side reset as well, so nothing stays blocked there.
    await async_wait_until(
        lambda: blocked_clients(0), timeout=5, what="the server to drop the reset client"
    )
    assert await client.get("feats:k") == b"v"
    assert proxy.stats().connections_reset >= 1
    await admin.aclose()
    await client.aclose()


def test_proxy_reset_all_breaks_a_sync_connection(proxy: FaultProxy) -> None:
    # A pooled client would silently replace a dead idle connection; a single one cannot.
    client = redis.Redis.from_url(proxy.url, single_connection_client=True, retry=no_retry())
    assert client.ping()
    assert proxy.reset_all() == 1
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()


def test_proxy_blackhole_times_out_and_restore_recovers(proxy: FaultProxy) -> None:
    client = redis.Redis.from_url(
        proxy.url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=no_retry()
    )
    assert client.set("feats:k", "v")
    seen = proxy.connections_seen
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        client.get("feats:k")
    assert 0.4 < time.monotonic() - started < 3
    fresh = redis.Redis.from_url(proxy.url, socket_timeout=0.5, retry=no_retry())
    with pytest.raises(redis.TimeoutError):
        fresh.ping()  # new connections are accepted, and swallowed too
    assert proxy.connections_seen > seen
    proxy.restore()
    assert client.get("feats:k") == b"v"
    assert fresh.ping()
    client.close()
    fresh.close()


async def test_proxy_stall_delivers_held_bytes_on_restore(proxy: FaultProxy) -> None:
    client = redis.asyncio.Redis.from_url(proxy.url, retry=no_retry())
    await client.set("feats:k", "v")
    await proxy.ablackhole(drop=False)
    pending = asyncio.ensure_future(client.get("feats:k"))
    done, _ = await asyncio.wait([pending], timeout=0.3)
    assert not done
    await proxy.arestore()
    assert await asyncio.wait_for(pending, timeout=5) == b"v"
    await client.aclose()


def test_proxy_refuse_and_cut(proxy: FaultProxy) -> None:
    client = redis.Redis.from_url(proxy.url, socket_timeout=2, retry=no_retry())
    proxy.refuse()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    proxy.restore()
    assert client.ping()
    proxy.cut()
    assert not proxy.stats().listening
    refused = redis.Redis.from_url(proxy.url, socket_timeout=2, retry=no_retry())
    with pytest.raises(redis.ConnectionError):
        refused.ping()
    assert client.ping()  # an established connection survives the listener going away
    proxy.restore()
    assert refused.ping()
    client.close()
    refused.close()


def test_proxy_resets_clients_while_the_target_is_down(
    server: RedisServer, proxy: FaultProxy
) -> None:
    client = redis.Redis.from_url(proxy.url, socket_timeout=2, retry=no_retry())
    assert client.ping()
    server.kill()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    server.restart()
    assert client.ping()
    client.close()


# -- Redis Cluster ----------------------------------------------------------------------


@pytest.mark.slow
def test_cluster_failover_switches_roles_and_keeps_data(cluster: RedisCluster) -> None:
    client = cluster.client(socket_timeout=2)
    assert client.set("feats:{cfg}:k", "v")
    assert client.get("feats:{cfg}:k") == b"v"
    result = cluster.failover("feats:{cfg}:k")
    assert cluster.node_at(result.new_master).role_name() == "master"
    assert cluster.node_at(result.old_master).role_name() == "slave"
    assert cluster.master_of("feats:{cfg}:k").address == result.new_master
    assert client.get("feats:{cfg}:k") == b"v"
    assert client.set("feats:{cfg}:k", "w")
    assert client.get("feats:{cfg}:k") == b"w"
    client.close()


@pytest.mark.slow
async def test_cluster_async_client(cluster: RedisCluster) -> None:
    client = cluster.async_client(socket_timeout=2)
    for i in range(20):  # keys spread over all three masters
        await client.set(f"feats:{i}", i)
    assert await client.get("feats:7") == b"7"
    await client.aclose()


# -- Sentinel ---------------------------------------------------------------------------


@pytest.mark.slow
def test_sentinel_master_for_follows_a_failover(sentinel_setup: RedisSentinel) -> None:
    sentinel: redis.sentinel.Sentinel = sentinel_setup.sentinel_client(socket_timeout=1)
    # redis-py leaves these Sentinel methods unannotated.
    master_for: Callable[..., redis.Redis] = sentinel.master_for
    discover: Callable[[str], tuple[str, int]] = sentinel.discover_master
    master = master_for(sentinel_setup.master_name, socket_timeout=1)
    assert master.set("feats:k", "v")
    before = discover(sentinel_setup.master_name)
    assert before == sentinel_setup.master_address()
    result = sentinel_setup.failover()
    assert result.old_master == before
    assert discover(sentinel_setup.master_name) == result.new_master
    assert sentinel_setup.server_at(result.old_master).role_name() == "slave"

    def write() -> bool | None:
        # The first command may still reach the demoted master, which redis-py reports as
        # a ConnectionError before rediscovering the master.
        return True if master.set("feats:k2", "v2") else None

    wait_until(write, timeout=10, what="writes to reach the new master")
    assert master.get("feats:k") == b"v"
    assert master.config_get("port")["port"] == str(result.new_master[1])
    master.close()
    for client in sentinel.sentinels:
        client.close()


@pytest.mark.slow
async def test_sentinel_async_master_for(sentinel_setup: RedisSentinel) -> None:
    sentinel = sentinel_setup.async_sentinel_client(socket_timeout=1)
    master = sentinel.master_for(sentinel_setup.master_name, socket_timeout=1)
    assert await master.set("feats:async", "v")
    assert await master.get("feats:async") == b"v"
    await master.aclose()
    # The Sentinel object keeps its own connections to every sentinel.
    for client in sentinel.sentinels:
        await client.aclose()


# -- TLS and ACL ------------------------------------------------------------------------


def test_tls_client_pings_over_rediss(tmp_path_factory: pytest.TempPathFactory) -> None:
    material = make_tls_material(tmp_path_factory.mktemp("tls"))
    with RedisServer(tls=True, tls_material=material) as srv:
        assert srv.url.startswith("rediss://127.0.0.1:")
        client = redis.Redis.from_url(
            srv.url,
            ssl_ca_certs=srv.ssl_ca_certs,
            ssl_certfile=srv.ssl_certfile,
            ssl_keyfile=srv.ssl_keyfile,
        )
        assert client.ping()
        client.close()
        # Mutual TLS is enforced: a client without a certificate is turned away.
        anonymous = redis.Redis.from_url(srv.url, ssl_ca_certs=srv.ssl_ca_certs, retry=no_retry())
        with pytest.raises(redis.ConnectionError):
            anonymous.ping()
        anonymous.close()


async def test_tls_async_client() -> None:
    with RedisServer(tls=True) as srv:
        client = srv.async_client()
        assert await client.ping()
        await client.aclose()


def test_acl_user_is_limited_to_its_commands_and_keys() -> None:
    acl = [
        "user default on nopass ~* &* +@all",
        "user app on >app-pw ~feats:* resetchannels -@all +get +set +ping",
    ]
    with RedisServer(acl_lines=acl) as srv:
        app = srv.client(username="app", password="app-pw")
        assert app.set("feats:k", "v")
        assert app.get("feats:k") == b"v"
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.flushall()
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.set("other:k", "v")
        app.close()
        wrong = srv.client(username="app", password="nope", retry=no_retry())
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        wrong.close()
