"""Storages for the sync App: MemoryStorage in-process, RedisStorage on redis-py."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE
from redis.retry import Retry

from ._errors import StorageError
from ._layout import (
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
from ._memory import MemoryLog
from ._stored import Loaded, RawEntry

__all__ = ["MemoryStorage", "RedisStorage", "Storage"]

History = Mapping[str, Sequence[tuple[str, str]]]
"""Older ``(version, record)`` pairs per feature, restored along with a re-seed."""


class Storage(Protocol):
    """What the sync App needs from a storage. Everything moves text; the core decides."""

    namespace: str

    def load(self) -> Loaded: ...
    def read(self, after: str, block_ms: int) -> list[RawEntry]: ...
    def get_epoch(self) -> str | None: ...
    def epoch_and_head(self) -> tuple[str | None, str]: ...
    def current(self, feature: str) -> tuple[str, str] | None: ...
    def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]: ...
    def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: History | None = None,
    ) -> int | None: ...
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

    def epoch_and_head(self) -> tuple[str | None, str]:
        with self._changed:
            return self.log.epoch, self.log.head

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

    def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: History | None = None,
    ) -> int | None:
        with self._changed:
            written = self.log.reseed(items, epoch, history)
            self._changed.notify_all()
            return written

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

    The timeout bounds how long a black-holed connection goes unnoticed, where the user's
    client may have none (hang forever) or a short one (cut every BLOCK off); no retries,
    so a fault reaches the tail (stale, backoff) instead of hiding in the client; and a
    pool of our own lets close() cut a blocked read short. Plain and Sentinel-managed
    clients get one; others (Cluster) are shared, their BLOCK fitted to their timeout.
    """
    pool: Any = getattr(client, "connection_pool", None)
    plain = type(pool) in (redis.ConnectionPool, redis.BlockingConnectionPool)
    sentinel = isinstance(pool, redis.sentinel.SentinelConnectionPool)
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
        own = redis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=4, **kwargs
        )
    return redis.Redis(connection_pool=own), True


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
        """``redis``: a redis-py client (plain, Sentinel ``master_for`` or Cluster).

        With ``wait_for_replicas=N`` a write returns only once N replicas acknowledged it
        (Redis WAIT, at most ``wait_timeout_ms``), else it raises StorageError saying so: an
        acknowledged change then survives the failover of its master to one of them.
        """
        self.redis = redis
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.wait_for_replicas = wait_for_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._tail, self._owns_tail = _tail_client(redis, block_ms)
        self._eval_ro_known = True

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (redis.RedisError, OSError) as error:
            raise StorageError(f"Redis {what} failed: {error}") from error

    def _raw(self, what: str, client: Any, *args: Any) -> Any:
        """A command whose reply stays bytes, whatever the client's decode_responses.

        text() decodes it, tolerating bytes that are not UTF-8: a decoding client would
        fail on such an entry at every read, and the tail would never get past it.
        """
        return self._call(what, client.execute_command, *args, **{NEVER_DECODE: True})

    def _eval(self, what: str, client: Any, script: str, keys: list[str], args: list[str]) -> Any:
        # EVAL rather than EVALSHA: no NOSCRIPT after a restart or a failover; Redis caches it.
        return self._raw(what, client, "EVAL", script, len(keys), *keys, *args)

    def _eval_ro(
        self, what: str, client: Any, script: str, keys: list[str], args: list[str]
    ) -> Any:
        """A read-only script: EVAL_RO needs only read access to its keys (a least-privilege
        App user has no more), where EVAL asks for write access; EVAL before Redis 7."""
        if self._eval_ro_known:
            try:
                return self._raw(what, client, "EVAL_RO", script, len(keys), *keys, *args)
            except StorageError as error:
                if "unknown command" not in str(error).lower():
                    raise
                self._eval_ro_known = False
        return self._eval(what, client, script, keys, args)

    def block_ms(self, wanted: int) -> int:
        if self._owns_tail:
            return wanted
        return tail_block_ms(client_socket_timeout(self.redis), wanted)

    def load(self) -> Loaded:
        keys = load_keys(self.keys)
        return parse_loaded(self._eval_ro("load", self._tail, LOAD_SCRIPT, keys, load_args()))

    def read(self, after: str, block_ms: int) -> list[RawEntry]:
        reply = self._raw("read", self._tail, "XREAD", *xread_args(self.keys.log, after, block_ms))
        return parse_xread(reply)

    def get_epoch(self) -> str | None:
        value = self._raw("epoch", self._tail, "GET", self.keys.epoch)
        return None if value is None else text(value)

    def epoch_and_head(self) -> tuple[str | None, str]:
        """The epoch and the last log id, in one round trip (see HEAD_SCRIPT)."""
        keys = [self.keys.log, self.keys.epoch]
        return parse_head(self._eval_ro("head", self._tail, HEAD_SCRIPT, keys, []))

    def current(self, feature: str) -> tuple[str, str] | None:
        keys = [self.keys.states, self.keys.versions]
        return parse_current(self._eval_ro("read", self.redis, CURRENT_SCRIPT, keys, [feature]))

    def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        keys, args = write_call(self.keys, feature, record, expected)
        if self.wait_for_replicas <= 0:
            return parse_write(self._eval("write", self.redis, WRITE_SCRIPT, keys, args))
        reply, acked = self._call("write", self._write_and_wait, keys, args)
        written, version = parse_write(reply)
        if written:
            check_replicas(version, acked, self.wait_for_replicas, self.wait_timeout_ms)
        return written, version

    def _write_and_wait(self, keys: list[str], args: list[str]) -> tuple[Any, Any]:
        """The write script and WAIT on one connection: WAIT counts that connection's writes."""
        client = self.redis
        if hasattr(client, "get_node_from_key"):
            # Cluster: the master of our one slot, through its own single-node client.
            client = client.get_node_from_key(keys[0]).redis_connection
        with client.pipeline(transaction=False) as pipe:
            pipe.execute_command(
                "EVAL", WRITE_SCRIPT, len(keys), *keys, *args, **{NEVER_DECODE: True}
            )
            pipe.execute_command("WAIT", self.wait_for_replicas, self.wait_timeout_ms)
            reply, acked = pipe.execute()
        return reply, acked

    def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: History | None = None,
    ) -> int | None:
        """Write back what the store lost (see RESEED_SCRIPT); None if its epoch moved on."""
        keys, args = reseed_call(self.keys, items, epoch, history)
        return parse_reseed(self._eval("re-seed", self.redis, RESEED_SCRIPT, keys, args))

    def history(self, feature: str) -> list[tuple[str, str]]:
        reply = self._raw("history", self.redis, "XRANGE", self.keys.history(feature), "-", "+")
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
        reply = self._raw(
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

    def publish_catalog(self, identity: str, document: str) -> None:
        self._call("catalog write", self.redis.hset, self.keys.catalog, identity, document)

    def read_catalog(self) -> dict[str, str]:
        reply = self._raw("catalog read", self.redis, "HGETALL", self.keys.catalog)
        return {text(k): text(v) for k, v in (reply or {}).items()}

    def after_fork(self) -> None:
        """In a forked child: drop the tail connections inherited from the parent.

        redis-py notices the new pid as well; doing it here keeps a child from ever reading
        a reply meant for the parent.
        """
        if self._owns_tail:
            self._tail.connection_pool.reset()

    def interrupt(self) -> None:
        """Cut a blocked tail read short (close, fork)."""
        if self._owns_tail:
            # Best effort: close() must not fail here (fakeredis refuses to shut a socket
            # another thread reads); an uninterrupted read still ends with its BLOCK.
            with contextlib.suppress(Exception):
                self._tail.connection_pool.disconnect()
