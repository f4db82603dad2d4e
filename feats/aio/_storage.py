"""Storages for the asyncio App: MemoryStorage in-process, RedisStorage on redis.asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import redis
import redis.asyncio
import redis.asyncio.sentinel
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE

from .._errors import StorageError
from .._layout import (
    CURRENT_SCRIPT,
    DEFAULT_NAMESPACE,
    EXPOSURES_MAXLEN,
    HEAD_SCRIPT,
    LOAD_SCRIPT,
    RESEED_SCRIPT,
    WRITE_SCRIPT,
    Keys,
    check_replicas,
    client_socket_timeout,
    load_args,
    load_keys,
    parse_current,
    parse_head,
    parse_loaded,
    parse_reseed,
    parse_write,
    parse_xrange,
    parse_xread,
    reseed_call,
    tail_block_ms,
    tail_socket_timeout,
    text,
    write_call,
    xread_args,
)
from .._memory import MemoryLog
from .._storage import History
from .._stored import Loaded, RawEntry

__all__ = ["MemoryStorage", "RedisStorage", "Storage"]


class Storage(Protocol):
    """What the asyncio App needs from a storage: the sync protocol, awaited."""

    namespace: str

    async def load(self) -> Loaded: ...
    async def read(self, after: str, block_ms: int) -> list[RawEntry]: ...
    async def get_epoch(self) -> str | None: ...
    async def epoch_and_head(self) -> tuple[str | None, str]: ...
    async def current(self, feature: str) -> tuple[str, str] | None: ...
    async def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]: ...
    async def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: History | None = None,
    ) -> int | None: ...
    async def history(self, feature: str) -> list[tuple[str, str]]: ...
    async def add_exposures(self, fields: Mapping[str, str]) -> None: ...
    async def read_exposures(self, after: str, count: int) -> list[RawEntry]: ...
    async def publish_catalog(self, identity: str, document: str) -> None: ...
    async def read_catalog(self) -> dict[str, str]: ...
    def block_ms(self, wanted: int) -> int: ...
    async def interrupt(self) -> None: ...


class MemoryStorage:
    """The embedded default: Apps sharing one MemoryStorage see each other's changes."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.namespace = namespace
        self.log = MemoryLog()
        self._waiters: set[asyncio.Future[None]] = set()

    def _notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
        self._waiters.clear()

    async def load(self) -> Loaded:
        return self.log.load()

    async def read(self, after: str, block_ms: int) -> list[RawEntry]:
        entries = self.log.read_after(after, 1000)
        if entries:
            return entries
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), block_ms / 1000)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)
        return self.log.read_after(after, 1000)

    async def get_epoch(self) -> str | None:
        return self.log.epoch

    async def epoch_and_head(self) -> tuple[str | None, str]:
        return self.log.epoch, self.log.head

    async def current(self, feature: str) -> tuple[str, str] | None:
        if feature not in self.log.states:
            return None
        return self.log.versions[feature], self.log.states[feature]

    async def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        result = self.log.write(feature, record, expected)
        self._notify()
        return result

    async def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: History | None = None,
    ) -> int | None:
        written = self.log.reseed(items, epoch, history)
        self._notify()
        return written

    async def history(self, feature: str) -> list[tuple[str, str]]:
        return self.log.history(feature)

    async def add_exposures(self, fields: Mapping[str, str]) -> None:
        self.log.add_exposures(fields)

    async def read_exposures(self, after: str, count: int) -> list[RawEntry]:
        return self.log.read_exposures(after, count)

    async def publish_catalog(self, identity: str, document: str) -> None:
        self.log.catalog[identity] = document

    async def read_catalog(self) -> dict[str, str]:
        return dict(self.log.catalog)

    def block_ms(self, wanted: int) -> int:
        return wanted

    async def interrupt(self) -> None:
        self._notify()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _tail_client(client: Any, block_ms: int) -> tuple[Any, bool]:
    """A client of our own for the blocking tail, its socket timeout above the BLOCK.

    See feats._storage._tail_client: plain and Sentinel-managed clients get one; others
    (Cluster) are shared, their BLOCK fitted to their socket timeout.
    """
    pool: Any = getattr(client, "connection_pool", None)
    plain = type(pool) in (redis.asyncio.ConnectionPool, redis.asyncio.BlockingConnectionPool)
    sentinel = isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
    if not (plain or sentinel):
        return client, False
    kwargs = dict(pool.connection_kwargs)
    kwargs["socket_timeout"] = tail_socket_timeout(block_ms)
    kwargs["retry"] = Retry(NoBackoff(), 0)
    kwargs.pop("retry_on_timeout", None)
    if sentinel:
        kwargs.pop("connection_pool", None)
        own: Any = type(pool)(
            pool.service_name,
            pool.sentinel_manager,
            is_master=pool.is_master,
            check_connection=pool.check_connection,
            connection_class=pool.connection_class,
            max_connections=4,
            **kwargs,
        )
    else:
        own = redis.asyncio.ConnectionPool(
            connection_class=pool.connection_class, max_connections=4, **kwargs
        )
    return redis.asyncio.Redis(connection_pool=own), True


class RedisStorage:
    """Configuration in Redis: a change log stream, current states, history, exposures."""

    def __init__(
        self,
        redis: Any,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        block_ms: int = 2_000,
        wait_for_replicas: int = 0,
        wait_timeout_ms: int = 1_000,
    ) -> None:
        """``redis``: a redis.asyncio client (plain, Sentinel ``master_for`` or Cluster).

        With ``wait_for_replicas=N`` a write returns only once N replicas acknowledged it
        (Redis WAIT, at most ``wait_timeout_ms``), else it raises StorageError saying so: an
        acknowledged change then survives the failover of its master to one of them.
        """
        self.redis = redis
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.wait_for_replicas = wait_for_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._block_ms = block_ms
        self._abandoned: list[Any] = []
        self._tail, self._owns_tail = _tail_client(redis, block_ms)
        self._eval_ro_known = True

    async def _call(self, what: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (redis.RedisError, OSError) as error:
            raise StorageError(f"Redis {what} failed: {error}") from error

    async def _raw(self, what: str, client: Any, *args: Any) -> Any:
        """A command whose reply stays bytes, whatever the client's decode_responses.

        text() decodes it, tolerating bytes that are not UTF-8: a decoding client would
        fail on such an entry at every read, and the tail would never get past it.
        """
        return await self._call(what, client.execute_command(*args, **{NEVER_DECODE: True}))

    async def _eval(
        self, what: str, client: Any, script: str, keys: list[str], args: list[str]
    ) -> Any:
        # EVAL rather than EVALSHA: no NOSCRIPT after a restart or a failover; Redis caches it.
        return await self._raw(what, client, "EVAL", script, len(keys), *keys, *args)

    async def _eval_ro(
        self, what: str, client: Any, script: str, keys: list[str], args: list[str]
    ) -> Any:
        """A read-only script: EVAL_RO needs only read access to its keys (a least-privilege
        App user has no more), where EVAL asks for write access; EVAL before Redis 7."""
        if self._eval_ro_known:
            try:
                return await self._raw(what, client, "EVAL_RO", script, len(keys), *keys, *args)
            except StorageError as error:
                if "unknown command" not in str(error).lower():
                    raise
                self._eval_ro_known = False
        return await self._eval(what, client, script, keys, args)

    def block_ms(self, wanted: int) -> int:
        if self._owns_tail:
            return wanted
        return tail_block_ms(client_socket_timeout(self.redis), wanted)

    async def load(self) -> Loaded:
        keys = load_keys(self.keys)
        return parse_loaded(await self._eval_ro("load", self._tail, LOAD_SCRIPT, keys, load_args()))

    async def read(self, after: str, block_ms: int) -> list[RawEntry]:
        args = xread_args(self.keys.log, after, block_ms)
        return parse_xread(await self._raw("read", self._tail, "XREAD", *args))

    async def get_epoch(self) -> str | None:
        value = await self._raw("epoch", self._tail, "GET", self.keys.epoch)
        return None if value is None else text(value)

    async def epoch_and_head(self) -> tuple[str | None, str]:
        """The epoch and the last log id, in one round trip (see HEAD_SCRIPT)."""
        keys = [self.keys.log, self.keys.epoch]
        return parse_head(await self._eval_ro("head", self._tail, HEAD_SCRIPT, keys, []))

    async def current(self, feature: str) -> tuple[str, str] | None:
        keys = [self.keys.states, self.keys.versions]
        reply = await self._eval_ro("read", self.redis, CURRENT_SCRIPT, keys, [feature])
        return parse_current(reply)

    async def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        keys, args = write_call(self.keys, feature, record, expected)
        if self.wait_for_replicas <= 0:
            return parse_write(await self._eval("write", self.redis, WRITE_SCRIPT, keys, args))
        reply, acked = await self._call("write", self._write_and_wait(keys, args))
        written, version = parse_write(reply)
        if written:
            check_replicas(version, acked, self.wait_for_replicas, self.wait_timeout_ms)
        return written, version

    async def _write_and_wait(self, keys: list[str], args: list[str]) -> tuple[Any, Any]:
        """The write script and WAIT on one connection: WAIT counts that connection's writes."""
        commands = [
            ("EVAL", WRITE_SCRIPT, len(keys), *keys, *args),
            ("WAIT", self.wait_for_replicas, self.wait_timeout_ms),
        ]
        client = self.redis
        if not hasattr(client, "get_node_from_key"):
            async with client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command, **{NEVER_DECODE: True})
                reply, acked = await pipe.execute()
            return reply, acked
        # Cluster: both on one connection to the master of our one slot.
        node = client.get_node_from_key(keys[0])
        connection = node.acquire_connection()
        try:
            await connection.send_packed_command(connection.pack_commands(commands))
            reply = await connection.read_response(disable_decoding=True)
            acked = await connection.read_response(disable_decoding=True)
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            node.release(connection)
        if isinstance(reply, redis.ResponseError):
            raise reply
        return reply, acked

    async def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: History | None = None,
    ) -> int | None:
        """Write back what the store lost (see RESEED_SCRIPT); None if its epoch moved on."""
        keys, args = reseed_call(self.keys, items, epoch, history)
        return parse_reseed(await self._eval("re-seed", self.redis, RESEED_SCRIPT, keys, args))

    async def history(self, feature: str) -> list[tuple[str, str]]:
        key = self.keys.history(feature)
        reply = await self._raw("history", self.redis, "XRANGE", key, "-", "+")
        return [(entry.id, entry.fields.get("record", "")) for entry in parse_xrange(reply)]

    async def add_exposures(self, fields: Mapping[str, str]) -> None:
        await self._call(
            "exposure write",
            self.redis.xadd(
                self.keys.exposures, dict(fields), maxlen=EXPOSURES_MAXLEN, approximate=True
            ),
        )

    async def read_exposures(self, after: str, count: int) -> list[RawEntry]:
        reply = await self._raw(
            "exposure read",
            self.redis,
            "XRANGE",
            self.keys.exposures,
            f"({after}",
            "+",
            "COUNT",
            count,
        )
        return parse_xrange(reply)

    async def publish_catalog(self, identity: str, document: str) -> None:
        await self._call("catalog write", self.redis.hset(self.keys.catalog, identity, document))

    async def read_catalog(self) -> dict[str, str]:
        reply = await self._raw("catalog read", self.redis, "HGETALL", self.keys.catalog)
        return {text(k): text(v) for k, v in (reply or {}).items()}

    def after_fork(self) -> None:
        """In a forked child: forget every connection inherited from the parent.

        Their transports belong to the parent's event loop; reusing or closing them here
        could corrupt the parent's streams. They are kept referenced, never closed; the
        tail gets a client of its own afresh, and the shared client's pool starts empty.
        """
        pool: Any = getattr(self.redis, "connection_pool", None)
        if isinstance(pool, redis.asyncio.ConnectionPool):
            self._abandoned.append(pool._available_connections)
            self._abandoned.append(list(pool._in_use_connections))
            reset: Any = pool.reset  # untyped in redis-py
            reset()
        if self._owns_tail:
            self._abandoned.append(self._tail)
            self._tail, self._owns_tail = _tail_client(self.redis, self._block_ms)

    async def interrupt(self) -> None:
        """Release the tail's own connections (the task itself is cancelled by the App)."""
        if self._owns_tail:
            await self._tail.connection_pool.disconnect()
