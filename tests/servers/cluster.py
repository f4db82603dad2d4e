"""A local Redis Cluster (masters with replicas on loopback) with a manual-failover helper."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import redis
import redis.asyncio.cluster
import redis.cluster
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from ._common import (
    LOOPBACK,
    ServerError,
    as_int,
    as_list,
    as_str,
    command,
    release_port,
    reserve_port,
    wait_until,
)
from .redis_server import REDIS_SERVER, Persistence, RedisServer

HASH_SLOTS = 16384
REDIS_CLI = REDIS_SERVER.replace("redis-server", "redis-cli")
# Flags that mean a node's view of the cluster is not settled yet.
_UNSETTLED_FLAGS = frozenset({"fail", "fail?", "handshake", "noaddr"})


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One line of CLUSTER NODES, as seen by some node."""

    node_id: str
    address: tuple[str, int]
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    def owns(self, slot: int) -> bool:
        return any(lo <= slot <= hi for lo, hi in self.slots)


@dataclass(frozen=True)
class ClusterFailover:
    """What failover() did: the slot it was asked about and who owns it before and after."""

    slot: int
    old_master: tuple[str, int]
    new_master: tuple[str, int]
    seconds: float


def parse_cluster_nodes(text: str) -> dict[str, ClusterNodeInfo]:
    """Parse a CLUSTER NODES reply into nodes keyed by id (the ``myself`` flag is dropped)."""
    nodes: dict[str, ClusterNodeInfo] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        node_id, addr, flags, master = fields[0], fields[1], fields[2], fields[3]
        host_port = addr.split("@", 1)[0]
        host, _, port = host_port.rpartition(":")
        slots: list[tuple[int, int]] = []
        for entry in fields[8:]:
            if entry.startswith("["):  # a slot being migrated or imported, not owned
                continue
            lo, _, hi = entry.partition("-")
            slots.append((int(lo), int(hi or lo)))
        nodes[node_id] = ClusterNodeInfo(
            node_id=node_id,
            address=(host, int(port) if port else 0),
            flags=frozenset(flags.split(",")) - {"myself"},
            master_id=None if master == "-" else master,
            slots=tuple(sorted(slots)),
        )
    return nodes


def slot_of(slot_or_key: int | str | bytes) -> int:
    """The hash slot of a key (hash tags honoured), or the slot itself if given an int."""
    if isinstance(slot_or_key, int):
        if not 0 <= slot_or_key < HASH_SLOTS:
            raise ValueError(f"slot {slot_or_key} out of range")
        return slot_or_key
    key = slot_or_key.encode() if isinstance(slot_or_key, str) else slot_or_key
    return key_slot(key)


def _admin(server: RedisServer) -> redis.Redis:
    return server.client(
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )


class RedisCluster:
    """``masters`` masters with ``replicas`` replicas each, all on 127.0.0.1, built by redis-cli.

    Not to be confused with ``redis.cluster.RedisCluster``, the client; ``client()`` returns one.
    """

    def __init__(
        self,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 3000,
        persistence: Persistence = "none",
        startup_timeout: float = 60.0,
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.persistence: Persistence = persistence
        self.startup_timeout = startup_timeout
        self.nodes: list[RedisServer] = []
        self._bus_ports: list[int] = []

    # -- addresses and clients -----------------------------------------------------------

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [node.address for node in self.nodes]

    @property
    def startup_nodes(self) -> list[redis.cluster.ClusterNode]:
        """Startup nodes for ``redis.cluster.RedisCluster(startup_nodes=...)``."""
        make: Callable[[str, int], redis.cluster.ClusterNode] = redis.cluster.ClusterNode
        return [make(host, port) for host, port in self.addresses]

    @property
    def async_startup_nodes(self) -> list[redis.asyncio.cluster.ClusterNode]:
        """Startup nodes for ``redis.asyncio.cluster.RedisCluster(startup_nodes=...)``."""
        return [redis.asyncio.cluster.ClusterNode(host, port) for host, port in self.addresses]

    @property
    def url(self) -> str:
        """A URL for ``RedisCluster.from_url``: any node bootstraps the whole topology."""
        return self.nodes[0].url

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A sync cluster client; the caller closes it."""
        params: dict[str, Any] = {"startup_nodes": self.startup_nodes, **kwargs}
        return redis.cluster.RedisCluster(**params)

    def async_client(self, **kwargs: Any) -> redis.asyncio.cluster.RedisCluster:
        """An asyncio cluster client; the caller closes it with ``aclose()``."""
        params: dict[str, Any] = {"startup_nodes": self.async_startup_nodes, **kwargs}
        return redis.asyncio.cluster.RedisCluster(**params)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        if self.nodes:
            return self
        try:
            self._start_nodes()
            self._create()
            self.wait_healthy(timeout=self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_nodes(self) -> None:
        for index in range(self.masters * (1 + self.replicas)):
            for attempt in range(3):
                # An explicit bus port: the default port+10000 may be taken or above 65535.
                bus_port = reserve_port()
                self._bus_ports.append(bus_port)
                node = RedisServer(
                    persistence=self.persistence,
                    name=f"cluster-{index}",
                    extra_config=[
                        "cluster-enabled yes",
                        "cluster-config-file nodes.conf",
                        f"cluster-node-timeout {self.node_timeout_ms}",
                        f"cluster-port {bus_port}",
                        f"cluster-announce-ip {LOOPBACK}",
                    ],
                )
                try:
                    node.start()
                except ServerError as exc:
                    node.close()
                    # RedisServer only moves its client port; a taken bus port needs a new node.
                    if attempt == 2 or "Address already in use" not in str(exc):
                        raise
                    continue
                self.nodes.append(node)
                break

    def _create(self) -> None:
        argv = [REDIS_CLI, "--cluster", "create", *(f"{h}:{p}" for h, p in self.addresses)]
        argv += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self.startup_timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"redis-cli --cluster create hung: {exc.stdout!r}") from exc
        if proc.returncode != 0 or "[OK] All 16384 slots covered" not in proc.stdout:
            raise ServerError(f"redis-cli --cluster create failed:\n{proc.stdout}\n{proc.stderr}")

    def stop(self) -> None:
        """Kill every node and delete its files (idempotent)."""
        nodes, self.nodes = self.nodes, []
        for node in nodes:
            node.close()
        for port in self._bus_ports:
            release_port(port)
        self._bus_ports = []

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

    # -- topology ------------------------------------------------------------------------

    def node_at(self, address: tuple[str, int]) -> RedisServer:
        for node in self.nodes:
            if node.address == address:
                return node
        raise KeyError(f"no cluster node at {address}")

    def view(self, node: RedisServer | None = None) -> dict[str, ClusterNodeInfo]:
        """CLUSTER NODES as seen by ``node`` (default: the first node)."""
        client = _admin(node or self.nodes[0])
        try:
            return parse_cluster_nodes(as_str(command(client, "CLUSTER", "NODES")))
        finally:
            client.close()

    def master_of(self, slot_or_key: int | str | bytes) -> RedisServer:
        slot = slot_of(slot_or_key)
        for info in self.view().values():
            if info.is_master and info.owns(slot):
                return self.node_at(info.address)
        raise ServerError(f"no master owns slot {slot}")

    def _probe_healthy(self) -> dict[str, ClusterNodeInfo] | None:
        """The agreed topology if every node is ok, agrees and every replica is in sync."""
        expected_nodes = len(self.nodes)
        agreed: dict[str, ClusterNodeInfo] | None = None
        for node in self.nodes:
            client = _admin(node)
            try:
                info = dict(
                    line.split(":", 1)
                    for line in as_str(command(client, "CLUSTER", "INFO")).splitlines()
                    if ":" in line
                )
                if (
                    info.get("cluster_state") != "ok"
                    or info.get("cluster_slots_ok") != str(HASH_SLOTS)
                    or info.get("cluster_known_nodes") != str(expected_nodes)
                ):
                    return None
                view = parse_cluster_nodes(as_str(command(client, "CLUSTER", "NODES")))
            finally:
                client.close()
            if len(view) != expected_nodes or any(
                v.flags & _UNSETTLED_FLAGS for v in view.values()
            ):
                return None
            if agreed is None:
                agreed = view
            elif view != agreed:
                return None
        if agreed is None:
            return None
        masters = [v for v in agreed.values() if v.is_master]
        if len(masters) != self.masters or any(not m.slots for m in masters):
            return None
        for master in masters:
            replicas = [v for v in agreed.values() if v.master_id == master.node_id]
            if len(replicas) != self.replicas:
                return None
            if not self._replicas_in_sync(master, replicas):
                return None
        return agreed

    def _replicas_in_sync(self, master: ClusterNodeInfo, replicas: list[ClusterNodeInfo]) -> bool:
        for replica in replicas:
            role = self.node_at(replica.address).role()
            if as_str(role[0]) != "slave" or as_str(role[3]) != "connected":
                return False
            if (as_str(role[1]), as_int(role[2])) != master.address:
                return False
        role = self.node_at(master.address).role()
        if as_str(role[0]) != "master":
            return False
        offset = as_int(role[1])
        acked = [as_int(as_list(entry)[2]) for entry in as_list(role[2])]
        # Replicas ack once a second, so equality is reached shortly after the last write.
        return len(acked) == len(replicas) and all(ack >= offset for ack in acked)

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, ClusterNodeInfo]:
        """Wait until all nodes say cluster_state:ok, agree on the topology, replicas in sync."""
        return wait_until(self._probe_healthy, timeout=timeout, what="a healthy cluster")

    # -- faults --------------------------------------------------------------------------

    def failover(self, slot_or_key: int | str | bytes, timeout: float = 30.0) -> ClusterFailover:
        """Promote the replica of the master owning a slot with a manual CLUSTER FAILOVER.

        Waits until the roles switched, every node agrees the replica owns the slot, and the
        old master replicates from it. The default (coordinated) CLUSTER FAILOVER pauses
        writers on the old master until the replica caught up, so no write the old master
        acknowledged before the switch is lost.
        """
        started = time.monotonic()
        deadline = started + timeout
        slot = slot_of(slot_or_key)
        view = self.wait_healthy(timeout=timeout)
        old = next(v for v in view.values() if v.is_master and v.owns(slot))
        new = next(v for v in view.values() if v.master_id == old.node_id)
        old_server, new_server = self.node_at(old.address), self.node_at(new.address)

        def switched() -> bool | None:
            ok = new_server.role_name() == "master" and old_server.role_name() == "slave"
            return True if ok else None

        while True:
            client = _admin(new_server)
            try:
                command(client, "CLUSTER", "FAILOVER")
            finally:
                client.close()
            # A manual failover the cluster does not complete times out after 5 s server-side;
            # asking again is then the right move.
            remaining = deadline - time.monotonic()
            try:
                wait_until(switched, timeout=min(8.0, max(remaining, 0.1)), what="roles to switch")
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

        def settled() -> dict[str, ClusterNodeInfo] | None:
            agreed = self._probe_healthy()
            if agreed is None or not agreed[new.node_id].owns(slot):
                return None
            return agreed if agreed[old.node_id].master_id == new.node_id else None

        wait_until(
            settled, timeout=max(deadline - time.monotonic(), 0.1), what="failover to settle"
        )
        return ClusterFailover(
            slot=slot,
            old_master=old.address,
            new_master=new.address,
            seconds=time.monotonic() - started,
        )

    async def afailover(
        self, slot_or_key: int | str | bytes, timeout: float = 30.0
    ) -> ClusterFailover:
        return await asyncio.to_thread(self.failover, slot_or_key, timeout)
