"""Storages for the sync App: MemoryStorage in-process, RedisStorage on redis-py."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._core import Loaded, RawEntry
from ._errors import StorageError
from ._layout import (
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
from ._memory import MemoryLog

__all__ = ["MemoryStorage", "RedisStorage", "Storage"]

TAIL_MARGIN_SECONDS = 5.0
"""The tail connection's socket timeout exceeds its BLOCK by this much."""


class Storage(Protocol):
    """What the sync App needs from a storage. Everything moves text; the core decides."""

    namespace: str

    def load(self) -> Loaded: ...
    def read(self, after: str, block_ms: int) -> list[RawEntry]: ...
    def get_epoch(self) -> str | None: ...
    def current(self, feature: str) -> tuple[str, str] | None: ...
    def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]: ...
    def history(self, feature: str) -> list[tuple[str, str]]: ...
    def add_exposures(self, fields: Mapping[str, str]) -> None: ...
    def read_exposures(self, after: str, count: int) -> list[RawEntry]: ...
    def publish_catalog(self, identity: str, document: str) -> None: ...
    def read_catalog(self) -> dict[str, str]: ...
    def block_ms(self, wanted: int) -> int: ...
    def interrupt(self) -> None: ...


class MemoryStorage:
    """The embedded default: Apps sharing one MemoryStorage see each other's changes."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.namespace = namespace
        self.log = MemoryLog()
        self._changed = threading.Condition()

    def load(self) -> Loaded:
        with self._changed:
            return self.log.load()

    def read(self, after: str, block_ms: int) -> list[RawEntry]:
        with self._changed:
            entries = self.log.read_after(after, 1000)
            if not entries:
                self._changed.wait(block_ms / 1000)
                entries = self.log.read_after(after, 1000)
            return entries

    def get_epoch(self) -> str | None:
        return self.log.epoch

    def current(self, feature: str) -> tuple[str, str] | None:
        with self._changed:
            if feature not in self.log.states:
                return None
            return self.log.versions[feature], self.log.states[feature]

    def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        with self._changed:
            result = self.log.write(feature, record, expected)
            self._changed.notify_all()
            return result

    def history(self, feature: str) -> list[tuple[str, str]]:
        with self._changed:
            return self.log.history(feature)

    def add_exposures(self, fields: Mapping[str, str]) -> None:
        with self._changed:
            self.log.add_exposures(fields)

    def read_exposures(self, after: str, count: int) -> list[RawEntry]:
        with self._changed:
            return self.log.read_exposures(after, count)

    def publish_catalog(self, identity: str, document: str) -> None:
        with self._changed:
            self.log.catalog[identity] = document

    def read_catalog(self) -> dict[str, str]:
        with self._changed:
            return dict(self.log.catalog)

    def block_ms(self, wanted: int) -> int:
        return wanted

    def interrupt(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def after_fork(self) -> None:
        # Another thread may have held the lock at fork(); the child gets a fresh one.
        self._changed = threading.Condition()


def _tail_client(client: Any, block_ms: int) -> tuple[Any, bool]:
    """A client of our own for the blocking tail, with a socket timeout above the BLOCK.

    redis-py's default 5 s socket timeout plus retries would turn a long BLOCK into a long
    hang; a pool of our own also lets close() cut a blocked read short.
    """
    pool: Any = getattr(client, "connection_pool", None)
    if type(pool) not in (redis.ConnectionPool, redis.BlockingConnectionPool):
        return client, False
    kwargs = dict(pool.connection_kwargs)
    kwargs["socket_timeout"] = block_ms / 1000 + TAIL_MARGIN_SECONDS
    kwargs["retry"] = Retry(NoBackoff(), 0)
    kwargs.pop("retry_on_timeout", None)
    own = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=4, **kwargs)
    return redis.Redis(connection_pool=own), True


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

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except redis.RedisError as error:
            raise StorageError(f"Redis {what} failed: {error}") from error
        except OSError as error:
            raise StorageError(f"Redis {what} failed: {error}") from error

    def block_ms(self, wanted: int) -> int:
        if self._owns_tail:
            return wanted
        return tail_block_ms(client_socket_timeout(self.redis), wanted)

    def load(self) -> Loaded:
        reply = self._call("load", self._load_script, keys=load_keys(self.keys))
        return parse_loaded(reply)

    def read(self, after: str, block_ms: int) -> list[RawEntry]:
        reply = self._call(
            "read", self._tail.xread, {self.keys.log: after}, count=1000, block=block_ms
        )
        return parse_xread(reply)

    def get_epoch(self) -> str | None:
        value = self._call("epoch", self._tail.get, self.keys.epoch)
        return None if value is None else text(value)

    def current(self, feature: str) -> tuple[str, str] | None:
        reply = self._call(
            "read",
            self._current_script,
            keys=[self.keys.states, self.keys.versions],
            args=[feature],
        )
        return parse_current(reply)

    def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        keys, args = write_call(self.keys, feature, record, expected)
        return parse_write(self._call("write", self._write_script, keys=keys, args=args))

    def history(self, feature: str) -> list[tuple[str, str]]:
        reply = self._call("history", self.redis.xrange, self.keys.history(feature))
        return [(entry.id, entry.fields.get("record", "")) for entry in parse_xrange(reply)]

    def add_exposures(self, fields: Mapping[str, str]) -> None:
        self._call(
            "exposure write",
            self.redis.xadd,
            self.keys.exposures,
            dict(fields),
            maxlen=EXPOSURES_MAXLEN,
            approximate=True,
        )

    def read_exposures(self, after: str, count: int) -> list[RawEntry]:
        reply = self._call(
            "exposure read", self.redis.xrange, self.keys.exposures, f"({after}", "+", count
        )
        return parse_xrange(reply)

    def publish_catalog(self, identity: str, document: str) -> None:
        self._call("catalog write", self.redis.hset, self.keys.catalog, identity, document)

    def read_catalog(self) -> dict[str, str]:
        reply = self._call("catalog read", self.redis.hgetall, self.keys.catalog)
        return {text(k): text(v) for k, v in (reply or {}).items()}

    def interrupt(self) -> None:
        """Cut a blocked tail read short (close, fork)."""
        if self._owns_tail:
            # Best effort: close() must not fail here (fakeredis refuses to shut a socket
            # another thread reads); an uninterrupted read still ends with its BLOCK.
            with contextlib.suppress(Exception):
                self._tail.connection_pool.disconnect()
