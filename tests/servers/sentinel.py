"""A local Sentinel setup: one master, one replica, three sentinels, with a failover helper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import redis
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._common import LOOPBACK, as_int, as_list, as_str, command, conf_quote, wait_until
from .redis_server import REDIS_SERVER, Persistence, RedisServer


@dataclass(frozen=True)
class SentinelFailover:
    """What failover() did: the master address before and after."""

    old_master: tuple[str, int]
    new_master: tuple[str, int]
    seconds: float


class _SentinelNode(RedisServer):
    """A redis-server in sentinel mode; it shares the process handling of RedisServer."""

    def __init__(self, monitor_lines: list[str], *, name: str) -> None:
        super().__init__(name=name)
        self._monitor_lines = monitor_lines

    def _config_lines(self) -> list[str]:
        return [
            f"bind {LOOPBACK}",
            f"port {self.port}",
            "daemonize no",
            f"dir {conf_quote(self.data_dir)}",
            f"logfile {conf_quote(self.log_path)}",
            *self._monitor_lines,
        ]

    def _write_config(self) -> None:
        # Sentinel rewrites its own file with what it learned (current master, peers);
        # regenerating it on restart would point the sentinel back at the first master.
        if not self.config_path.exists():
            super()._write_config()

    def _argv(self) -> list[str]:
        return [REDIS_SERVER, str(self.config_path), "--sentinel"]


def _admin(server: RedisServer) -> redis.Redis:
    return server.client(
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )


def _pairs(reply: object) -> dict[str, str]:
    """A SENTINEL MASTER/REPLICAS entry; redis-py already turns some of them into dicts."""
    if isinstance(reply, dict):
        return {
            as_str(k): str(v) if isinstance(v, int | float) else as_str(v) for k, v in reply.items()
        }
    items = [as_str(item) for item in as_list(reply)]
    return dict(zip(items[::2], items[1::2], strict=True))


class RedisSentinel:
    """A master, ``replicas`` replicas and ``sentinels`` sentinels on 127.0.0.1.

    ``down_after_ms`` and ``failover_timeout_ms`` are small so automatic failovers (after a
    master is killed) also happen within a test's patience.
    """

    def __init__(
        self,
        *,
        master_name: str = "feats-master",
        replicas: int = 1,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        persistence: Persistence = "none",
        startup_timeout: float = 30.0,
    ) -> None:
        self.master_name = master_name
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.persistence: Persistence = persistence
        self.startup_timeout = startup_timeout
        # servers[0] is the first master; roles move around with failovers.
        self.servers: list[RedisServer] = []
        self.sentinels: list[RedisServer] = []

    # -- addresses and clients -----------------------------------------------------------

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [sentinel.address for sentinel in self.sentinels]

    def sentinel_client(self, **kwargs: Any) -> redis.sentinel.Sentinel:
        """``redis.sentinel.Sentinel`` over all sentinels; kwargs go to the data connections."""
        # redis-py leaves Sentinel.__init__ unannotated; pin the result type here.
        make: Callable[..., redis.sentinel.Sentinel] = redis.sentinel.Sentinel
        return make(self.sentinel_addresses, **kwargs)

    def async_sentinel_client(self, **kwargs: Any) -> redis.asyncio.sentinel.Sentinel:
        make: Callable[..., redis.asyncio.sentinel.Sentinel] = redis.asyncio.sentinel.Sentinel
        return make(self.sentinel_addresses, **kwargs)

    def master_address(self) -> tuple[str, int]:
        """The master address according to the first sentinel."""
        return self._reported_master(self.sentinels[0])

    def master(self) -> RedisServer:
        return self.server_at(self.master_address())

    def replicas(self) -> list[RedisServer]:
        master = self.master_address()
        return [server for server in self.servers if server.address != master]

    def server_at(self, address: tuple[str, int]) -> RedisServer:
        for server in self.servers:
            if server.address == address:
                return server
        raise KeyError(f"no data node at {address}")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        if self.servers:
            return self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for index in range(1 + self.replica_count):
            server = RedisServer(persistence=self.persistence, name=f"sentinel-data-{index}")
            self.servers.append(server)
            server.start()
        master = self.servers[0]
        # REPLICAOF at runtime rather than in redis.conf: a restarted node must not point
        # at whoever was master when the setup began, sentinels reconfigure it instead.
        for replica in self.servers[1:]:
            client = _admin(replica)
            try:
                command(client, "REPLICAOF", master.host, master.port)
            finally:
                client.close()
        wait_until(
            lambda: True if self._replication_ok(master.address) else None,
            timeout=self.startup_timeout,
            what="replicas to sync with the master",
        )
        name = self.master_name
        monitor = [
            f"sentinel monitor {name} {master.host} {master.port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        for index in range(self.sentinel_count):
            sentinel = _SentinelNode(monitor, name=f"sentinel-{index}")
            self.sentinels.append(sentinel)
            sentinel.start()
        self.wait_healthy(timeout=self.startup_timeout)

    def stop(self) -> None:
        """Kill sentinels and data nodes and delete their files (idempotent)."""
        nodes = [*self.sentinels, *self.servers]
        self.sentinels, self.servers = [], []
        for node in nodes:
            node.close()

    close = stop

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- health --------------------------------------------------------------------------

    def _reported_master(self, sentinel: RedisServer) -> tuple[str, int]:
        client = _admin(sentinel)
        try:
            reply = as_list(
                command(client, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
            )
        finally:
            client.close()
        return (as_str(reply[0]), as_int(reply[1]))

    def _replication_ok(self, master: tuple[str, int]) -> bool:
        """Redis-level truth: ``master`` is a master and every other data node replicates it."""
        for server in self.servers:
            role = server.role()
            if server.address == master:
                if as_str(role[0]) != "master" or len(as_list(role[2])) != self.replica_count:
                    return False
            elif (
                as_str(role[0]) != "slave"
                or (as_str(role[1]), as_int(role[2])) != master
                or as_str(role[3]) != "connected"
            ):
                return False
        return True

    def _replicas_caught_up(self, master: RedisServer) -> bool:
        role = master.role()
        offset = as_int(role[1])
        acked = [as_int(as_list(entry)[2]) for entry in as_list(role[2])]
        return len(acked) == self.replica_count and all(ack >= offset for ack in acked)

    def _sentinels_agree(self, master: tuple[str, int]) -> bool:
        return all(self._reported_master(sentinel) == master for sentinel in self.sentinels)

    def _probe_healthy(self) -> tuple[str, int] | None:
        master = self.master_address()
        if not self._sentinels_agree(master) or not self._replication_ok(master):
            return None
        for sentinel in self.sentinels:
            client = _admin(sentinel)
            try:
                state = _pairs(command(client, "SENTINEL", "MASTER", self.master_name))
                if (
                    state.get("flags") != "master"
                    or as_int(state.get("num-slaves", "0")) != self.replica_count
                    or as_int(state.get("num-other-sentinels", "0")) != self.sentinel_count - 1
                ):
                    return None
                for entry in as_list(command(client, "SENTINEL", "REPLICAS", self.master_name)):
                    replica = _pairs(entry)
                    if replica.get("flags") != "slave" or replica.get("master-link-status") != "ok":
                        return None
                command(client, "SENTINEL", "CKQUORUM", self.master_name)
            finally:
                client.close()
        return master

    def wait_healthy(self, timeout: float = 30.0) -> tuple[str, int]:
        """Wait until every sentinel knows the master, its replicas and its peers.

        Sentinels learn about each other from hello messages sent every 2 s, and about
        replicas from INFO polled every 10 s, so this may take that long after a change.
        """
        return wait_until(self._probe_healthy, timeout=timeout, what="a healthy sentinel setup")

    # -- faults --------------------------------------------------------------------------

    def failover(
        self, timeout: float = 30.0, *, expedite_demotion: bool = True, wait_for_sync: bool = True
    ) -> SentinelFailover:
        """SENTINEL FAILOVER, then wait until all sentinels report the new master and the old
        master replicates from it.

        Sentinel itself demotes a reachable old master only after it has reported the master
        role for 8 s and its next INFO poll (up to 10 s more); ``expedite_demotion`` sends that
        same REPLICAOF at once so tests do not idle.

        Sentinel failover is not coordinated: a write the old master acknowledged but had not
        replicated yet is lost, and so is any write it accepts until demoted. ``wait_for_sync``
        first waits until the replicas acknowledged everything, which makes the failover
        lossless only if nobody writes concurrently.
        """
        started = time.monotonic()
        deadline = started + timeout
        old = self.master_address()
        old_server = self.server_at(old)
        if wait_for_sync:
            wait_until(
                lambda: True if self._replicas_caught_up(old_server) else None,
                timeout=timeout,
                what="replicas to catch up before the failover",
            )

        def ask() -> bool | None:
            client = _admin(self.sentinels[0])
            try:
                command(client, "SENTINEL", "FAILOVER", self.master_name)
            except redis.ResponseError as exc:
                # NOGOODSLAVE until sentinels refreshed replica info, INPROG while one runs.
                if "NOGOODSLAVE" in str(exc) or "INPROG" in str(exc):
                    return None
                raise
            finally:
                client.close()
            return True

        wait_until(ask, timeout=timeout, what="SENTINEL FAILOVER to be accepted", interval=0.25)

        def promoted() -> tuple[str, int] | None:
            new = self._reported_master(self.sentinels[0])
            if new == old or not self._sentinels_agree(new):
                return None
            return new if self.server_at(new).role_name() == "master" else None

        new = wait_until(
            promoted, timeout=max(deadline - time.monotonic(), 0.1), what="sentinels to agree"
        )
        if expedite_demotion and old_server.role_name() == "master":
            client = _admin(old_server)
            try:
                command(client, "REPLICAOF", new[0], new[1])
            finally:
                client.close()
        wait_until(
            lambda: True if self._replication_ok(new) else None,
            timeout=max(deadline - time.monotonic(), 0.1),
            what="the old master to replicate from the new one",
        )
        return SentinelFailover(old_master=old, new_master=new, seconds=time.monotonic() - started)

    async def afailover(
        self, timeout: float = 30.0, *, expedite_demotion: bool = True
    ) -> SentinelFailover:
        return await asyncio.to_thread(self.failover, timeout, expedite_demotion=expedite_demotion)
