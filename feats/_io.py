"""How the sync storages do what differs between the shells (waits, WAIT on one connection,
fork), and what both shells share in talking to redis-py: errors, and the tail's own client.

feats/aio/_io.py has the same names for the asyncio storages; feats/_storage.py, generated
from feats/aio/_storage.py, imports them from here.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import hiredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.sentinel
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE
from redis.retry import Retry

from ._breath import Breathe, Breather
from ._errors import StorageError
from ._layout import tail_socket_timeout
from ._memory import MemoryLog
from ._stored import RawEntry

if TYPE_CHECKING:
    from ._storage import RedisStorage

__all__ = [
    "ReplyTooLarge",
    "breather",
    "execute_large",
    "follower_storage",
    "forget_connections",
    "read_within",
    "storage_errors",
    "tail_client",
    "wait_for_entries",
    "write_and_wait",
]

_SAFE_KWARGS = frozenset(
    {
        "host",
        "port",
        "db",
        "path",
        "username",
        "password",
        "credential_provider",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_keepalive_options",
        "encoding",
        "encoding_errors",
        "client_name",
        "protocol",
        "health_check_interval",
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_data",
        "ssl_ca_path",
        "ssl_check_hostname",
        "ssl_min_version",
        "ssl_ciphers",
        "ssl_password",
    }
)
"""Connection settings that mean the same to sync and asyncio redis-py connections; the
rest (retries, pools, event handlers) belong to the client they came from."""


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """redis-py's and the OS's errors as one StorageError that says what failed and how."""
    try:
        yield
    except redis.exceptions.MaxConnectionsError as error:
        raise StorageError(
            f"Redis {what}: the client's connection pool is exhausted ({error}); "
            "give it a larger max_connections",
            reachable=True,
        ) from error
    except redis.ResponseError as error:
        # Redis answered and refused (NOPERM, WRONGTYPE, a script error): reachable.
        raise StorageError(f"Redis {what} refused: {error}", reachable=True) from error
    except (redis.RedisError, OSError) as error:
        raise StorageError(f"Redis {what} failed: {error}") from error


def _sync_connection_class(connection_class: type) -> type:
    """The sync redis-py connection class of the same kind as an asyncio (or sync) one."""
    if not issubclass(connection_class, redis.asyncio.connection.AbstractConnection):
        return connection_class
    if not connection_class.__module__.startswith("redis.asyncio"):
        raise StorageError(_NO_TWIN.format(connection_class.__name__))
    for module, name in (
        (redis.sentinel, "SentinelManagedSSLConnection"),
        (redis.sentinel, "SentinelManagedConnection"),
        (redis.connection, "UnixDomainSocketConnection"),
        (redis.connection, "SSLConnection"),
        (redis.connection, "Connection"),
    ):
        if connection_class.__name__ == name:
            found: type = getattr(module, name)
            return found
    raise StorageError(
        _NO_TWIN.format(f"{connection_class.__module__}.{connection_class.__name__}")
    )


_NO_TWIN = (
    "cannot follow changes through a {}: pass RedisStorage(..., tail_redis=...), a sync "
    "redis.Redis (or RedisCluster) client for the same server, for the App's tail"
)


def _settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if key in _SAFE_KWARGS}


def _address(client: Any) -> tuple[str, int]:
    kwargs = client.connection_pool.connection_kwargs
    return kwargs["host"], kwargs["port"]


def tail_client(client: Any, block_ms: int) -> tuple[Any, bool]:
    """A sync client for the App's background tail, from the user's (sync or asyncio) one,
    and whether it is the tail's own (False: shared, its BLOCK fitted to its timeout).

    Its own pool, so a blocking XREAD never takes a connection the application needs and
    close() can cut it short; a socket timeout above the BLOCK, so a black-holed connection
    is noticed; no retries, so a fault reaches the tail (stale, backoff) instead of hiding
    in the client. Plain and Sentinel-managed clients of either shell get one, and so does
    an asyncio Cluster client (a sync one for the same nodes); a sync Cluster client is
    shared.
    """
    limits: dict[str, Any] = {
        "socket_timeout": tail_socket_timeout(block_ms),
        "retry": Retry(NoBackoff(), 0),
    }
    if isinstance(client, redis.cluster.RedisCluster):
        return client, False
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        kwargs = dict(client.connection_kwargs)
        ssl = "SSL" in getattr(kwargs.get("connection_class"), "__name__", "")
        node_class: Any = redis.cluster.ClusterNode  # untyped in redis-py
        # Before its first command an asyncio cluster client knows only its startup nodes.
        known = client.get_nodes() or list(client.nodes_manager.startup_nodes.values())
        nodes = [node_class(node.host, node.port) for node in known]
        twin = redis.cluster.RedisCluster(
            startup_nodes=nodes, ssl=ssl, **_settings(kwargs), **limits
        )
        return twin, True
    pool: Any = getattr(client, "connection_pool", None)
    if pool is None or not hasattr(pool, "connection_kwargs"):
        raise StorageError(_NO_TWIN.format(type(client).__name__))
    connection_class = _sync_connection_class(pool.connection_class)
    # A sync client keeps every setting (a subclass may need its own); an asyncio one's are
    # filtered to those that mean the same to a sync connection.
    sync = not issubclass(pool.connection_class, redis.asyncio.connection.AbstractConnection)
    kwargs = dict(pool.connection_kwargs) if sync else _settings(dict(pool.connection_kwargs))
    for name in limits:
        kwargs.pop(name, None)
    kwargs.pop("retry_on_timeout", None)
    kwargs.pop("connection_pool", None)
    sentinel_pools = (
        redis.sentinel.SentinelConnectionPool,
        redis.asyncio.sentinel.SentinelConnectionPool,
    )
    if isinstance(pool, sentinel_pools):
        manager = pool.sentinel_manager
        if isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool):
            sentinel_class: Any = redis.sentinel.Sentinel  # untyped in redis-py
            manager = sentinel_class(
                [_address(sentinel) for sentinel in manager.sentinels],
                min_other_sentinels=manager.min_other_sentinels,
                sentinel_kwargs=_settings(dict(manager.sentinel_kwargs)),
                **_settings(dict(manager.connection_kwargs)),
            )
        pool_class: Any = redis.sentinel.SentinelConnectionPool  # untyped in redis-py
        own: Any = pool_class(
            pool.service_name,
            manager,
            is_master=pool.is_master,
            check_connection=pool.check_connection,
            connection_class=connection_class,
            max_connections=4,
            **kwargs,
            **limits,
        )
    elif isinstance(pool, redis.ConnectionPool | redis.asyncio.ConnectionPool):
        own = redis.ConnectionPool(
            connection_class=connection_class, max_connections=4, **kwargs, **limits
        )
    else:
        raise StorageError(_NO_TWIN.format(type(pool).__name__))
    return redis.Redis(connection_pool=own), True


def follower_storage(
    client: Any, namespace: str, *, block_ms: int, tail_redis: Any | None = None
) -> RedisStorage:
    """The sync storage an App's background threads use: on the tail's own client."""
    from ._storage import RedisStorage

    own, owned = (tail_redis, True) if tail_redis is not None else tail_client(client, block_ms)
    return RedisStorage(own, namespace, block_ms=block_ms, owned=owned)


def block_in_one_call(connection: Any) -> None:
    """Make the tail's held connection wait for a reply in one blocking call.

    A socket with a Python timeout waits in poll() and then reads, each call giving up the
    interpreter and taking it back: behind a busy event loop every taking back can wait a
    whole switch interval (5 ms), so a change would wait twice. The kernel's receive
    timeout (SO_RCVTIMEO) still notices a black-holed connection: the read fails, and the
    tail reconnects.
    """
    sock = getattr(connection, "_sock", None)
    seconds = getattr(connection, "socket_timeout", None)
    if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket) or not seconds:
        return  # TLS keeps Python's timeout: an SSL read the kernel times out fails its own way
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


class ReplyTooLarge(Exception):
    """A reply passed the size its reader allows; its connection was closed, the rest
    unread. Never leaves the storage: it reads what it wanted another way."""


READ_CHUNK_BYTES = 64 * 1024


_PUSH: Any = getattr(hiredis, "PushNotification", None)
"""How hiredis (3.2 and later) marks a RESP3 push message, which is no command's reply."""


def read_within(connection: Any, limit: int) -> Any:
    """The reply to the command just sent on ``connection``, undecoded; ReplyTooLarge once
    more than ``limit`` bytes of it arrived (the caller closes the connection).

    XREAD has no size cap and Redis sends an entry whole: reading the reply here, a chunk at
    a time, is what keeps one hostile entry of 50 MB from costing an App 50 MB and more.
    A connection without a socket of its own reads as redis-py does.
    """
    sock = getattr(connection, "_sock", None)
    if not isinstance(sock, socket.socket):
        return connection.read_response(disable_decoding=True)
    reader = hiredis.Reader(
        protocolError=redis.exceptions.InvalidResponse, replyError=redis.ResponseError
    )
    received = 0
    while True:
        reply = reader.gets()
        if reply is False:
            chunk = sock.recv(READ_CHUNK_BYTES)
            if not chunk:
                raise redis.ConnectionError("Connection closed by server.")
            received += len(chunk)
            if received > limit:
                raise ReplyTooLarge(f"a reply of over {limit} bytes")
            reader.feed(chunk)
        elif _PUSH is None or not isinstance(reply, _PUSH):
            break
    if isinstance(reply, redis.ResponseError):
        raise reply
    return reply


def check_loop(owner: Any) -> None:
    """Nothing to check: a sync client belongs to no event loop."""


def wait_for_entries(log: MemoryLog, after: str, block_ms: int) -> list[RawEntry]:
    """A blocking read of an in-memory log, as XREAD BLOCK would."""
    return log.wait(after, block_ms)


def pipelined(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` in one round trip (no transaction); their replies, undecoded."""
    with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command, **{NEVER_DECODE: True})
        replies: list[Any] = pipe.execute()
    return replies


def _connection(pool: Any) -> Any:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 asks for a command name
        return pool.get_connection("PIPELINE")


def sent_as_one_buffer(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """``pipelined``, the commands going out as one buffer in one ``sendall``.

    For the exposure writer's megabytes in large values, each of which redis-py's pipeline
    sends apart: every system call gives up the interpreter and must take it back, a whole
    switch interval (5 ms) away behind an event loop or a thread evaluating flat out. On a
    client of another kind (a cluster, a subclass) it is ``pipelined``.
    """
    pool: Any = getattr(client, "connection_pool", None)
    if type(client) is not redis.Redis or pool is None:
        return pipelined(client, commands)
    connection = _connection(pool)
    try:
        connection.send_packed_command([b"".join(connection.pack_commands(commands))])
        replies = [connection.read_response(disable_decoding=True) for _ in commands]
    except BaseException:
        # A reply left unread would answer the next command sent on this connection.
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
    return replies


def breather() -> Breathe:
    """What the sync storages breathe with during long work: they run on the App's
    background threads, which an event loop shares."""
    return Breather()


PACKED_SLICE = 256
"""Arguments packed in one go, between two breaths, by ``execute_large``."""
PACKED_BUFFER_BYTES = 256 * 1024
"""About how much ``execute_large`` hands the kernel in one ``sendall``."""


def execute_large(client: Any, args: Sequence[Any], breathe: Breathe) -> Any:
    """``client.execute_command(*args)``, its reply undecoded, for a command of megabytes
    (a re-seed of thousands of features, a catalog entry of thousands of declarations).

    redis-py packs a command in one call that holds the interpreter for as long as the
    command is big (18 ms for a re-seed of 10,000 features); here it is packed a slice at a
    time between breaths, and sent in a few large buffers. On a client of another kind (a
    cluster, a subclass) it is ``execute_command``.
    """
    pool: Any = getattr(client, "connection_pool", None)
    if type(client) is not redis.Redis or pool is None:
        return client.execute_command(*args, **{NEVER_DECODE: True})
    connection = _connection(pool)
    try:
        encode = connection.encoder.encode
        buffers: list[bytes] = []
        pieces = [b"*%d\r\n" % len(args)]
        size = 0
        for count, arg in enumerate(args):
            if not count % PACKED_SLICE:
                breathe()
            data = encode(arg)
            pieces.append(b"$%d\r\n" % len(data))
            if len(data) >= PACKED_BUFFER_BYTES:
                # Sent as it is: copying megabytes into a buffer is one long call more.
                buffers += (b"".join(pieces), data)
                pieces, size = [b"\r\n"], 0
                continue
            pieces += (data, b"\r\n")
            size += len(data)
            if size >= PACKED_BUFFER_BYTES:
                buffers.append(b"".join(pieces))
                pieces, size = [], 0
        buffers.append(b"".join(pieces))
        connection.send_packed_command(buffers)
        return connection.read_response(disable_decoding=True)
    except redis.ResponseError:
        raise  # Redis answered: the connection is in step
    except BaseException:
        # A reply left unread would answer the next command sent on this connection.
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def write_and_wait(client: Any, commands: list[tuple[Any, ...]]) -> tuple[Any, Any]:
    """The write script and WAIT on one connection: WAIT counts that connection's writes."""
    if hasattr(client, "get_node_from_key"):
        # Cluster: the master of our one slot, through its own single-node client.
        client = client.get_node_from_key(commands[0][3]).redis_connection
    reply, acked = pipelined(client, commands)
    return reply, acked


def forget_connections(client: Any) -> list[Any]:
    """In a forked child: drop the connections inherited from the parent (redis-py notices
    the new pid too; doing it here keeps a child from ever reading the parent's replies)."""
    pool: Any = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.reset()
    return []
