"""Storages for the asyncio shell: MemoryStorage in-process, RedisStorage on redis.asyncio.

What truly differs between the shells lives in feats/aio/_io.py and feats/_io.py.
"""
# The source of feats/_storage.py: edit here, then run scripts/unasync.py.  # unasync: remove

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from redis.client import NEVER_DECODE

from .. import _storage as sync  # unasync: remove
from .._breath import Breathe
from .._errors import StorageError
from .._layout import (
    CURRENT_SCRIPT,
    DEFAULT_NAMESPACE,
    EPOCH_SCRIPT,
    EXPOSURES_MAXLEN,
    HEAD_SCRIPT,
    LOAD_SCRIPT,
    MAX_READ_BYTES,
    RESEED_SCRIPT,
    SIZED_READ_SCRIPT,
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
    sized_read_args,
    tail_block_ms,
    text,
    write_call,
    xread_args,
)
from .._memory import MemoryLog
from .._stored import Loaded, RawEntry
from ._io import (
    ReplyTooLarge,
    block_in_one_call,
    breather,
    check_loop,
    execute_large,
    follower_storage,
    forget_connections,
    read_within,
    sent_as_one_buffer,
    storage_errors,
    wait_for_entries,
    write_and_wait,
)

__all__ = ["History", "MemoryStorage", "RedisStorage", "Storage"]

History = Mapping[str, Sequence[tuple[str, str]]]
"""Older ``(version, record)`` pairs per feature, restored along with a re-seed."""


class Storage(Protocol):
    """What an App and its admin need from a storage. Everything moves text; the core
    decides. ``follower()`` is the sync storage the App's background threads use."""

    namespace: str

    async def load(self) -> Loaded: ...
    async def read(self, after: str, block_ms: int) -> list[RawEntry]: ...
    async def get_epoch(self) -> str | None: ...
    async def epoch_and_head(self) -> tuple[str | None, str]: ...
    async def current(self, feature: str) -> tuple[str, str | bytes] | None: ...
    async def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]: ...
    async def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: History | None = None,
    ) -> int | None: ...
    async def history(self, feature: str) -> list[tuple[str, str]]: ...
    async def add_exposures(self, entries: Sequence[Mapping[str, str]]) -> None: ...
    async def read_exposures(self, after: str, count: int) -> list[RawEntry]: ...
    async def catalog_has(self, identity: str) -> bool: ...
    async def publish_catalog(self, fields: Mapping[str, str]) -> None: ...
    async def read_catalog(self) -> dict[str, str]: ...
    def follower(self) -> sync.Storage: ...
    def block_ms(self, wanted: int) -> int: ...
    async def interrupt(self) -> None: ...
    def after_fork(self) -> None: ...


class MemoryStorage:
    """The embedded default: Apps sharing one MemoryStorage see each other's changes.

    ``log``: share another MemoryStorage's store (each shell has its own class).
    """

    def __init__(self, namespace: str = DEFAULT_NAMESPACE, *, log: MemoryLog | None = None) -> None:
        self.namespace = namespace
        self.log = log if log is not None else MemoryLog()

    async def load(self) -> Loaded:
        return self.log.load()

    async def read(self, after: str, block_ms: int) -> list[RawEntry]:
        return await wait_for_entries(self.log, after, block_ms)

    async def get_epoch(self) -> str | None:
        return self.log.epoch_and_head()[0]

    async def epoch_and_head(self) -> tuple[str | None, str]:
        return self.log.epoch_and_head()

    async def current(self, feature: str) -> tuple[str, str | bytes] | None:
        return self.log.current(feature)

    async def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        return self.log.write(feature, record, expected)

    async def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: History | None = None,
    ) -> int | None:
        return self.log.reseed(items, epoch, history)

    async def history(self, feature: str) -> list[tuple[str, str]]:
        return self.log.history(feature)

    async def add_exposures(self, entries: Sequence[Mapping[str, str]]) -> None:
        for fields in entries:
            self.log.add_exposures(fields)

    async def read_exposures(self, after: str, count: int) -> list[RawEntry]:
        return self.log.read_exposures(after, count)

    async def catalog_has(self, identity: str) -> bool:
        return identity in self.log.read_catalog()

    async def publish_catalog(self, fields: Mapping[str, str]) -> None:
        self.log.publish_catalog(fields)

    async def read_catalog(self) -> dict[str, str]:
        return self.log.read_catalog()

    def follower(self) -> sync.MemoryStorage:
        """The storage the App's background threads use: this one, or a sync view of the
        same store."""
        return sync.MemoryStorage(self.namespace, log=self.log)  # unasync: return self

    def block_ms(self, wanted: int) -> int:
        return wanted

    async def interrupt(self) -> None:
        """Wake every reader waiting for entries (close, fork)."""
        with self.log.lock:
            self.log.changed()

    def after_fork(self) -> None:
        self.log.after_fork()


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
        tail_redis: Any | None = None,
        owned: bool = False,
    ) -> None:
        """``redis``: a redis-py client of this shell (plain, Sentinel ``master_for`` or
        Cluster). The App follows changes on a sync client of its own made from its
        settings; ``tail_redis`` gives one instead (any sync redis-py client for the same
        server). ``owned``: ``redis`` is the tail's own client, which interrupt() may cut.

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
        self._tail_redis = tail_redis
        self._owned = owned
        self._follower: sync.RedisStorage | None = None
        self._abandoned: list[Any] = []
        self._eval_ro_known = True
        self._loop: Any = None
        """The event loop an asyncio client was first used on, the one it works on."""
        self._held: Any = None
        """The tail's own connection, held between reads (an owned client only)."""
        if owned:
            # The tail's own client: feats parses these replies itself, so redis-py need not
            # turn each entry into a dict first (a third of a change's CPU in the tail).
            callbacks: Any = getattr(redis, "response_callbacks", {})
            for command in ("XREAD", "XRANGE"):
                callbacks.pop(command, None)

    async def _raw(self, what: str, *args: Any) -> Any:
        """A command whose reply stays bytes, whatever the client's decode_responses: the
        codec decodes it strictly, and a decoding client would fail on bytes that are not
        UTF-8 at every read, so the tail would never get past such an entry."""
        check_loop(self)
        with storage_errors(what):
            return await self.redis.execute_command(*args, **{NEVER_DECODE: True})

    async def _large(self, what: str, breathe: Breathe, *args: Any) -> Any:
        """``_raw`` for a command of megabytes, packed between breaths (see execute_large)."""
        check_loop(self)
        with storage_errors(what):
            return await execute_large(self.redis, args, breathe)

    async def _eval(
        self, what: str, script: str, keys: list[str], args: Sequence[str | bytes]
    ) -> Any:
        # EVAL rather than EVALSHA: no NOSCRIPT after a restart or a failover; Redis caches it.
        return await self._raw(what, "EVAL", script, len(keys), *keys, *args)

    async def _eval_ro(
        self, what: str, script: str, keys: list[str], args: Sequence[str | bytes]
    ) -> Any:
        """A read-only script: EVAL_RO needs only read access to its keys (a least-privilege
        App user has no more), where EVAL asks for write access; EVAL before Redis 7."""
        if self._eval_ro_known:
            try:
                return await self._raw(what, "EVAL_RO", script, len(keys), *keys, *args)
            except StorageError as error:
                if "unknown command" not in str(error).lower():
                    raise
                self._eval_ro_known = False
        return await self._eval(what, script, keys, args)

    def block_ms(self, wanted: int) -> int:
        """A BLOCK this client can wait through: its socket timeout would cut a longer one."""
        if self._owned:
            return wanted
        return tail_block_ms(client_socket_timeout(self.redis), wanted)

    async def load(self) -> Loaded:
        keys = load_keys(self.keys)
        reply = await self._eval_ro("load", LOAD_SCRIPT, keys, load_args())
        return parse_loaded(reply, breather())

    async def read(self, after: str, block_ms: int) -> list[RawEntry]:
        args = xread_args(self.keys.log, after, self.block_ms(block_ms))
        pool: Any = getattr(self.redis, "connection_pool", None)
        if not self._owned or pool is None:
            return parse_xread(await self._raw("read", "XREAD", *args), breather())
        # The tail's own client: one connection held from read to read, past the pool, its
        # retries and its reply callbacks, which cost more than the rest of a change.
        connection = self._held
        with storage_errors("read"):
            try:
                if connection is None:
                    connection = self._held = await pool.get_connection()
                    block_in_one_call(connection)
                await connection.send_command("XREAD", *args)
                reply = await read_within(connection, MAX_READ_BYTES)
            except BaseException as error:
                self._held = None
                if connection is not None:
                    await connection.disconnect()
                    await pool.release(connection)
                if not isinstance(error, ReplyTooLarge):
                    raise
                # Too big to read whole (a hostile entry, or a backlog of large ones):
                # again, sized in Redis, an entry over the limit left there.
                return await self.read_sized(after)
        return parse_xread(reply, breather())

    async def read_sized(self, after: str) -> list[RawEntry]:
        """Entries after ``after``, none blocking; an entry over the size limit comes back
        as its size alone (SIZED_READ_SCRIPT)."""
        reply = await self._eval_ro(
            "read", SIZED_READ_SCRIPT, [self.keys.log], sized_read_args(after)
        )
        return parse_xrange(reply, breather())

    async def get_epoch(self) -> str | None:
        value = await self._eval_ro("epoch", EPOCH_SCRIPT, [self.keys.epoch], [])
        return None if value is None else text(value)

    async def epoch_and_head(self) -> tuple[str | None, str]:
        """The epoch and the last log id, in one round trip (see HEAD_SCRIPT)."""
        keys = [self.keys.log, self.keys.epoch]
        return parse_head(await self._eval_ro("head", HEAD_SCRIPT, keys, []))

    async def current(self, feature: str) -> tuple[str, str | bytes] | None:
        keys = [self.keys.states, self.keys.versions]
        return parse_current(await self._eval_ro("read", CURRENT_SCRIPT, keys, [feature]))

    async def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        keys, args = write_call(self.keys, feature, record, expected)
        if self.wait_for_replicas <= 0:
            return parse_write(await self._eval("write", WRITE_SCRIPT, keys, args))
        commands = [
            ("EVAL", WRITE_SCRIPT, len(keys), *keys, *args),
            ("WAIT", self.wait_for_replicas, self.wait_timeout_ms),
        ]
        check_loop(self)
        with storage_errors("write"):
            reply, acked = await write_and_wait(self.redis, commands)
        written, version = parse_write(reply)
        if written:
            check_replicas(version, acked, self.wait_for_replicas, self.wait_timeout_ms)
        return written, version

    async def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: History | None = None,
    ) -> int | None:
        """Write back what the store lost (see RESEED_SCRIPT); None if its epoch moved on."""
        breathe = breather()
        keys, args = reseed_call(self.keys, items, epoch, history, breathe)
        command = ("EVAL", RESEED_SCRIPT, len(keys), *keys, *args)
        return parse_reseed(await self._large("re-seed", breathe, *command))

    async def history(self, feature: str) -> list[tuple[str, str]]:
        reply = await self._raw("history", "XRANGE", self.keys.history(feature), "-", "+")
        return [(entry.id, entry.text("record")) for entry in parse_xrange(reply)]

    async def add_exposures(self, entries: Sequence[Mapping[str, str]]) -> None:
        """Append exposure batches to their stream, in one round trip."""
        commands: list[tuple[Any, ...]] = []
        for fields in entries:
            args: list[Any] = ["XADD", self.keys.exposures, "MAXLEN", "~", EXPOSURES_MAXLEN, "*"]
            for name, value in fields.items():
                args += [name, value]
            commands.append(tuple(args))
        if not commands:
            return
        check_loop(self)
        with storage_errors("exposure write"):
            await sent_as_one_buffer(self.redis, commands)

    async def read_exposures(self, after: str, count: int) -> list[RawEntry]:
        reply = await self._raw(
            "exposure read", "XRANGE", self.keys.exposures, f"({after}", "+", "COUNT", count
        )
        return parse_xrange(reply)

    async def catalog_has(self, identity: str) -> bool:
        return bool(await self._raw("catalog read", "HEXISTS", self.keys.catalog, identity))

    async def publish_catalog(self, fields: Mapping[str, str]) -> None:
        args: list[str] = []
        for name, value in fields.items():
            args += [name, value]
        await self._large("catalog write", breather(), "HSET", self.keys.catalog, *args)

    async def read_catalog(self) -> dict[str, str]:
        reply = await self._raw("catalog read", "HGETALL", self.keys.catalog)
        if isinstance(reply, dict):
            return {text(k): text(v) for k, v in reply.items()}
        return {text(reply[i]): text(reply[i + 1]) for i in range(0, len(reply or []) - 1, 2)}

    def follower(self) -> sync.RedisStorage:
        """The sync storage the App's background threads use, on the tail's own client."""
        if self._follower is None:
            self._follower = follower_storage(
                self.redis, self.namespace, block_ms=self._block_ms, tail_redis=self._tail_redis
            )
        return self._follower

    async def interrupt(self) -> None:
        """Cut a blocked read short (close, fork): only on the tail's own client."""
        if not self._owned:
            return
        pool: Any = getattr(self.redis, "connection_pool", None)
        # Best effort: close() must not fail here (a connection another thread reads may
        # refuse to shut); an uninterrupted read still ends with its BLOCK.
        with contextlib.suppress(Exception):
            if pool is not None:
                await pool.disconnect()
            else:
                await self.redis.close()

    def after_fork(self) -> None:
        """In a forked child: forget the connections inherited from the parent (the App
        resets its follower's itself)."""
        self._abandoned += forget_connections(self.redis)
        self._loop = None
        self._held = None
