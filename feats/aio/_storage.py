"""Storages for the asyncio App: MemoryStorage in-process, RedisStorage on redis.asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._core import Loaded, RawEntry
from .._errors import StorageError
from .._layout import (
    CURRENT_SCRIPT,
    DEFAULT_NAMESPACE,
    EXPOSURES_MAXLEN,
    LOAD_SCRIPT,
    WRITE_SCRIPT,
    Keys,
    client_socket_timeout,
    load_keys,
    parse_current,
    parse_loaded,
    parse_write,
    parse_xrange,
    parse_xread,
    tail_block_ms,
    text,
    write_call,
)
from .._memory import MemoryLog
from .._storage import TAIL_MARGIN_SECONDS

__all__ = ["MemoryStorage", "RedisStorage", "Storage"]


class Storage(Protocol):
    """What the asyncio App needs from a storage: the sync protocol, awaited."""

    namespace: str

    async def load(self) -> Loaded: ...
    async def read(self, after: str, block_ms: int) -> list[RawEntry]: ...
    async def get_epoch(self) -> str | None: ...
    async def current(self, feature: str) -> tuple[str, str] | None: ...
    async def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]: ...
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

    async def current(self, feature: str) -> tuple[str, str] | None:
        if feature not in self.log.states:
            return None
        return self.log.versions[feature], self.log.states[feature]

    async def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        result = self.log.write(feature, record, expected)
        self._notify()
        return result

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
    """A client of our own for the blocking tail, its socket timeout above the BLOCK."""
    pool: Any = getattr(client, "connection_pool", None)
    if type(pool) not in (redis.asyncio.ConnectionPool, redis.asyncio.BlockingConnectionPool):
        return client, False
    kwargs = dict(pool.connection_kwargs)
    kwargs["socket_timeout"] = block_ms / 1000 + TAIL_MARGIN_SECONDS
    kwargs["retry"] = Retry(NoBackoff(), 0)
    kwargs.pop("retry_on_timeout", None)
    own = redis.asyncio.ConnectionPool(
        connection_class=pool.connection_class, max_connections=4, **kwargs
    )
    return redis.asyncio.Redis(connection_pool=own), True


class RedisStorage:
    """Configuration in Redis: a change log stream, current states, history, exposures."""

    def __init__(
        self, redis: Any, namespace: str = DEFAULT_NAMESPACE, *, block_ms: int = 2_000
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.keys = Keys(namespace)
        self._tail, self._owns_tail = _tail_client(redis, block_ms)
        self._write_script = redis.register_script(WRITE_SCRIPT)
        self._load_script = self._tail.register_script(LOAD_SCRIPT)
        self._current_script = redis.register_script(CURRENT_SCRIPT)

    async def _call(self, what: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (redis.RedisError, OSError) as error:
            raise StorageError(f"Redis {what} failed: {error}") from error

    def block_ms(self, wanted: int) -> int:
        if self._owns_tail:
            return wanted
        return tail_block_ms(client_socket_timeout(self.redis), wanted)

    async def load(self) -> Loaded:
        return parse_loaded(await self._call("load", self._load_script(keys=load_keys(self.keys))))

    async def read(self, after: str, block_ms: int) -> list[RawEntry]:
        reply = await self._call(
            "read", self._tail.xread({self.keys.log: after}, count=1000, block=block_ms)
        )
        return parse_xread(reply)

    async def get_epoch(self) -> str | None:
        value = await self._call("epoch", self._tail.get(self.keys.epoch))
        return None if value is None else text(value)

    async def current(self, feature: str) -> tuple[str, str] | None:
        reply = await self._call(
            "read",
            self._current_script(keys=[self.keys.states, self.keys.versions], args=[feature]),
        )
        return parse_current(reply)

    async def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        keys, args = write_call(self.keys, feature, record, expected)
        return parse_write(await self._call("write", self._write_script(keys=keys, args=args)))

    async def history(self, feature: str) -> list[tuple[str, str]]:
        reply = await self._call("history", self.redis.xrange(self.keys.history(feature)))
        return [(entry.id, entry.fields.get("record", "")) for entry in parse_xrange(reply)]

    async def add_exposures(self, fields: Mapping[str, str]) -> None:
        await self._call(
            "exposure write",
            self.redis.xadd(
                self.keys.exposures, dict(fields), maxlen=EXPOSURES_MAXLEN, approximate=True
            ),
        )

    async def read_exposures(self, after: str, count: int) -> list[RawEntry]:
        reply = await self._call(
            "exposure read", self.redis.xrange(self.keys.exposures, f"({after}", "+", count)
        )
        return parse_xrange(reply)

    async def publish_catalog(self, identity: str, document: str) -> None:
        await self._call("catalog write", self.redis.hset(self.keys.catalog, identity, document))

    async def read_catalog(self) -> dict[str, str]:
        reply = await self._call("catalog read", self.redis.hgetall(self.keys.catalog))
        return {text(k): text(v) for k, v in (reply or {}).items()}

    async def interrupt(self) -> None:
        """Release the tail's own connections (the task itself is cancelled by the App)."""
        if self._owns_tail:
            await self._tail.connection_pool.disconnect()
