"""A loopback TCP fault proxy: forwards to a target and can reset, black-hole or refuse traffic."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
import weakref
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ._common import LOOPBACK, ServerError, claim_port, release_port, wait_until

if TYPE_CHECKING:
    from .redis_server import RedisServer

T = TypeVar("T")

_CHUNK = 65536
_CONTROL_TIMEOUT = 5.0


class ProxyMode(enum.Enum):
    """What the proxy does with traffic; set by restore(), blackhole() and refuse()."""

    FORWARD = "forward"
    # Bytes are read and held; they flow again on restore(), like a partition that heals.
    STALL = "stall"
    # Bytes are read and thrown away; a connection that lost bytes never speaks again.
    DROP = "drop"
    # New connections are accepted and immediately reset.
    REFUSE = "refuse"


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of the proxy's counters (connections_seen counts refused ones too)."""

    connections_seen: int
    active_connections: int
    connections_reset: int
    bytes_to_target: int
    bytes_from_target: int
    listening: bool
    mode: ProxyMode


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Abort a connection so the peer sees ECONNRESET rather than a clean EOF."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Linger with a zero timeout turns close() into an RST.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    def __init__(self, client: asyncio.StreamWriter, task: asyncio.Task[None]) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task = task
        # Set once a byte was dropped: the byte stream is corrupt, so it must never resume.
        self.doomed = False

    def reset(self) -> None:
        _rst(self.client)
        _rst(self.upstream)
        self.task.cancel()


class _Core:
    """The proxy's state, touched only on its loop; kept apart so the finalizer can own it."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.host = LOOPBACK
        self.port: int | None = None
        # Read at connect time so retarget() applies to new connections only.
        self.target = (proxy.target_host, proxy.target_port)
        self.connect_timeout = proxy.connect_timeout
        self.name = proxy.name
        self.server: asyncio.Server | None = None
        self.connections: set[_Connection] = set()
        self.mode = ProxyMode.FORWARD
        self.mode_changed: asyncio.Event | None = None
        self.seen = 0
        self.reset = 0
        self.bytes_up = 0
        self.bytes_down = 0

    async def listen(self) -> None:
        if self.mode_changed is None:
            self.mode_changed = asyncio.Event()
        if self.port is not None:
            self.server = await asyncio.start_server(self.handle, self.host, self.port)
            return
        for _ in range(50):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, 0))
            port: int = sock.getsockname()[1]
            # A port reserved by a server that is down right now must stay free for it.
            if not claim_port(port):
                sock.close()
                continue
            self.port = port
            self.server = await asyncio.start_server(self.handle, sock=sock)
            return
        raise ServerError(f"{self.name}: could not find a free loopback port")

    async def unlisten(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()

    async def set_mode(self, mode: ProxyMode) -> None:
        self.mode = mode
        # Waking every waiter with a fresh event lets each one re-read the mode.
        changed, self.mode_changed = self.mode_changed, asyncio.Event()
        if changed is not None:
            changed.set()

    async def restore(self) -> None:
        await self.set_mode(ProxyMode.FORWARD)
        if self.server is None:
            await self.listen()

    async def wait_mode_change(self) -> None:
        event = self.mode_changed
        assert event is not None
        await event.wait()

    async def reset_all(self, *, count: bool = True) -> int:
        connections = list(self.connections)
        for conn in connections:
            conn.reset()
        if count:
            self.reset += len(connections)
        return len(connections)

    async def shutdown(self) -> None:
        await self.unlisten()
        tasks = [conn.task for conn in self.connections]
        await self.reset_all(count=False)
        # Let the cancelled handlers unwind so closing the loop leaves no pending task behind.
        if tasks:
            await asyncio.wait(tasks, timeout=_CONTROL_TIMEOUT)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.seen += 1
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(writer, task)
        self.connections.add(conn)
        try:
            await self.serve(conn, reader)
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only reset_all()/shutdown cancel handlers, and on Python 3.11 a cancelled
            # start_server handler makes asyncio log a spurious traceback.
            pass
        finally:
            self.connections.discard(conn)
            for side in (conn.client, conn.upstream):
                if side is not None and not side.transport.is_closing():
                    side.transport.abort()

    async def serve(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        while self.mode is not ProxyMode.FORWARD:
            if self.mode is ProxyMode.REFUSE:
                _rst(conn.client)
                return
            if self.mode is ProxyMode.DROP:
                conn.doomed = True
                while await reader.read(_CHUNK):
                    pass
                return
            await self.wait_mode_change()
        host, port = self.target
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.connect_timeout
            )
        except (OSError, TimeoutError):
            # The target is down: make the client see a reset, as it would without the proxy.
            _rst(conn.client)
            return
        conn.upstream = up_writer
        pumps = [
            asyncio.create_task(self.pump(conn, reader, up_writer, upstream=True)),
            asyncio.create_task(self.pump(conn, up_reader, conn.client, upstream=False)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def pump(
        self,
        conn: _Connection,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        while data := await src.read(_CHUNK):
            while not conn.doomed:
                if self.mode is ProxyMode.FORWARD or self.mode is ProxyMode.REFUSE:
                    dst.write(data)
                    await dst.drain()
                    if upstream:
                        self.bytes_up += len(data)
                    else:
                        self.bytes_down += len(data)
                    break
                if self.mode is ProxyMode.DROP:
                    conn.doomed = True
                    break
                await self.wait_mode_change()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


def _shutdown(core: _Core, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Finalizer: bounded teardown that never hangs interpreter exit."""
    if loop.is_running():
        future = asyncio.run_coroutine_threadsafe(core.shutdown(), loop)
        # Teardown is best effort; the daemon thread cannot outlive the interpreter anyway.
        with contextlib.suppress(Exception):
            future.result(timeout=_CONTROL_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=_CONTROL_TIMEOUT)
    if core.port is not None:
        release_port(core.port)


class FaultProxy:
    """TCP proxy on 127.0.0.1 in its own thread and event loop, so sync and async tests share it.

    Every control method is thread-safe and returns once the proxy applied it; the ``a``-prefixed
    twins do the same without blocking the caller's event loop. Calling a sync control from the
    proxy's own loop is an error (it would deadlock).
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        scheme: str = "redis",
        connect_timeout: float = 5.0,
        name: str = "proxy",
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.scheme = scheme
        self.connect_timeout = connect_timeout
        self.name = name
        self.host = LOOPBACK
        self._core = _Core(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @classmethod
    def for_server(cls, server: RedisServer, **kwargs: Any) -> FaultProxy:
        """Proxy ``server``; its URL keeps the server's scheme (TLS passes through)."""
        scheme = "rediss" if server.tls else "redis"
        return cls(server.host, server.port, scheme=scheme, **kwargs)

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._core.port is None:
            raise ServerError(f"{self.name} has no port yet: call start() first")
        return self._core.port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    # -- counters ------------------------------------------------------------------------

    @property
    def connections_seen(self) -> int:
        return self._core.seen

    @property
    def active_connections(self) -> int:
        return len(self._core.connections)

    @property
    def mode(self) -> ProxyMode:
        return self._core.mode

    def stats(self) -> ProxyStats:
        core = self._core
        return ProxyStats(
            connections_seen=core.seen,
            active_connections=len(core.connections),
            connections_reset=core.reset,
            bytes_to_target=core.bytes_up,
            bytes_from_target=core.bytes_down,
            listening=core.server is not None,
            mode=core.mode,
        )

    def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        """Block until at least ``count`` connections were accepted in total."""
        wait_until(
            lambda: True if self._core.seen >= count else None,
            timeout=timeout,
            what=f"{self.name} to see {count} connections (saw {self._core.seen})",
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_run_loop, args=(loop,), name=self.name, daemon=True)
        self._loop = loop
        thread.start()
        self._finalizer = weakref.finalize(self, _shutdown, self._core, loop, thread)
        self._call(self._core.listen())
        return self

    def close(self) -> None:
        """Reset every connection, stop listening and join the proxy thread (bounded)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        host, port = self._core.target
        return f"<FaultProxy {self.name} {self._core.port}->{host}:{port} {self._core.mode.value}>"

    # -- controls (sync) -----------------------------------------------------------------

    def reset_all(self) -> int:
        """RST every current connection on both sides; returns how many were reset."""
        return self._call(self._core.reset_all())

    def blackhole(self, *, drop: bool = True) -> None:
        """Keep accepting and reading, never forward or answer (existing and new connections).

        ``drop=True`` discards the bytes: a connection that lost any byte stays silent for good,
        even after restore(), as after a middlebox silently dropped its state. ``drop=False``
        holds them instead and delivers them on restore(), like a network partition healing
        (a write sent meanwhile may then still be applied: reset_all() first to rule that out).
        """
        self._call(self._core.set_mode(ProxyMode.DROP if drop else ProxyMode.STALL))

    def refuse(self) -> None:
        """Accept new connections only to reset them at once; existing ones are untouched."""
        self._call(self._core.set_mode(ProxyMode.REFUSE))

    def cut(self) -> None:
        """Stop listening (new connections get ECONNREFUSED); existing ones are untouched."""
        self._call(self._core.unlisten())

    def restore(self) -> None:
        """Forward normally again, listening again on the same port if cut() closed it."""
        self._call(self._core.restore())

    def retarget(self, host: str, port: int) -> None:
        """Send new connections elsewhere; existing ones keep their upstream."""
        self.target_host, self.target_port = host, port
        self._core.target = (host, port)

    # -- controls (async) ----------------------------------------------------------------

    async def areset_all(self) -> int:
        return await self._acall(self._core.reset_all())

    async def ablackhole(self, *, drop: bool = True) -> None:
        await self._acall(self._core.set_mode(ProxyMode.DROP if drop else ProxyMode.STALL))

    async def arefuse(self) -> None:
        await self._acall(self._core.set_mode(ProxyMode.REFUSE))

    async def acut(self) -> None:
        await self._acall(self._core.unlisten())

    async def arestore(self) -> None:
        await self._acall(self._core.restore())

    # -- plumbing ------------------------------------------------------------------------

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        loop = self._loop
        if loop is None or loop.is_closed() or self._finalizer is None or not self._finalizer.alive:
            coro.close()
            raise ServerError(f"{self.name} is not running")
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise RuntimeError("sync FaultProxy controls cannot be called from the proxy's loop")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._submit(coro).result(timeout=_CONTROL_TIMEOUT)

    async def _acall(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wait_for(asyncio.wrap_future(self._submit(coro)), _CONTROL_TIMEOUT)
