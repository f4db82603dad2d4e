"""How the asyncio storages do what differs between the shells: waits, WAIT on one
connection, fork. feats/_io.py, written by hand too, has the same names for the sync
storages (which scripts/unasync.py generates from the asyncio ones)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.client import NEVER_DECODE

from .._breath import Breathe, still
from .._errors import FeatsError
from .._io import ReplyTooLarge, follower_storage, storage_errors, tail_client
from .._memory import MemoryLog
from .._stored import RawEntry

__all__ = [
    "ReplyTooLarge",
    "breather",
    "check_loop",
    "execute_large",
    "follower_storage",
    "forget_connections",
    "read_within",
    "storage_errors",
    "tail_client",
    "wait_for_entries",
    "write_and_wait",
]


async def wait_for_entries(log: MemoryLog, after: str, block_ms: int) -> list[RawEntry]:
    """A read of an in-memory log that waits like XREAD BLOCK, without blocking the loop."""
    return await log.wait_async(after, block_ms)


async def pipelined(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` in one round trip (no transaction); their replies, undecoded."""
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command, **{NEVER_DECODE: True})
        replies: list[Any] = await pipe.execute()
    return replies


async def sent_as_one_buffer(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """``pipelined``: on an event loop, a pipeline's writes cost no interpreter hand-over
    (feats/_io.py's, on a thread, do)."""
    return await pipelined(client, commands)


async def write_and_wait(client: Any, commands: list[tuple[Any, ...]]) -> tuple[Any, Any]:
    """The write script and WAIT on one connection: WAIT counts that connection's writes."""
    if not hasattr(client, "get_node_from_key"):
        reply, acked = await pipelined(client, commands)
        return reply, acked
    # Cluster: both on one connection to the master of our one slot.
    node = client.get_node_from_key(commands[0][3])
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
    if isinstance(reply, Exception):
        raise reply
    return reply, acked


def breather() -> Breathe:
    """Nothing to breathe: an asyncio storage's work runs on its own event loop, between
    its awaits."""
    return still


async def execute_large(client: Any, args: Sequence[Any], breathe: Breathe) -> Any:
    """``client.execute_command(*args)``, its reply undecoded (feats/_io.py's packs a
    large command between breaths, for the App's background threads)."""
    return await client.execute_command(*args, **{NEVER_DECODE: True})


async def read_within(connection: Any, limit: int) -> Any:
    """The reply to the command just sent, undecoded, read as redis-py does (feats/_io.py's
    cuts off a reply over ``limit``: the App's tail, which reads the log, is sync)."""
    return await connection.read_response(disable_decoding=True)


def forget_connections(client: Any) -> list[Any]:
    """In a forked child: forget the connections inherited from the parent, unclosed.

    Their transports belong to the parent's event loop; reusing or closing them here could
    corrupt the parent's streams. They are returned to be kept referenced, never closed.
    """
    pool: Any = getattr(client, "connection_pool", None)
    if pool is None or not hasattr(pool, "_available_connections"):
        return []
    kept = [pool._available_connections, list(pool._in_use_connections)]
    reset: Any = pool.reset  # untyped in redis-py
    reset()
    return kept


def block_in_one_call(connection: Any) -> None:
    """Nothing to do: an asyncio connection's reads wait in the event loop."""


def check_loop(owner: Any) -> None:
    """Refuse, clearly, to use a redis.asyncio client on another event loop than its first.

    Its connections belong to the loop they were opened on: on a closed one they fail with
    "Event loop is closed", on another running one they hang or worse (a crash under
    uvloop). The App itself follows changes on threads and works under any loop.
    """
    loop = asyncio.get_running_loop()
    first = owner._loop
    if first is None:
        owner._loop = loop
    elif first is not loop:
        state = "closed" if first.is_closed() else "another one, still running"
        raise FeatsError(
            f"this RedisStorage's redis.asyncio client was first used on another event loop "
            f"({state}) and cannot be used on this one: make the client and the storage "
            "inside the loop that uses them (one asyncio.run for their whole life)"
        )
